"""What a CardioMorphNet model needs to be applied as it was trained: the record stored in its checkpoint
(``extra["preprocessing"]``, plus ``extra["reduction"]`` read by the Slicer bridge) and the check that
refuses a request with other settings.

Record (plain builtins)::

    {"intensity_percentile": 99.0,            # intensities divided by this percentile of each sequence
     "reduction": {"factor": 2, "crop": 40, "frames": 10} or None,   # in-plane averaging, crop (pixels
                                              # around the heart, after averaging), frames kept (ED, ES kept);
                                              # None: not recorded (the caller prepared the sequences)
     "preset": "demo" or None,                # reduction resolved from each study's pixel size
     "pixel_mm": 4.0, "frames_per_sequence": 10, "slices": 12}   # the training grid (median over subjects)
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import MotionError


class MotionPreprocessingError(MotionError, ValueError):
    """A model is asked to run with other preprocessing than it was trained with."""


def preprocessing_record(sequences: Sequence, config, reduction: Optional[Tuple[int, Optional[int], Optional[int]]] = None,
                         preset: Optional[str] = None) -> Dict[str, Any]:
    """The record of how the training ``sequences`` (already reduced) were prepared (see module docstring).
    ``reduction`` (factor, crop, frames) as applied, or ``preset``: the preset whose reduction was resolved
    from each study's pixel size; neither: the grid reduction is not recorded."""
    record: Dict[str, Any] = {"intensity_percentile": float(config.intensity_percentile), "preset": preset,
                              "reduction": None}
    if reduction is not None:
        factor, crop, frames = reduction
        record["reduction"] = {"factor": int(factor or 1), "crop": int(crop) if crop else None,
                               "frames": int(frames) if frames else None}
    if sequences:
        record["pixel_mm"] = float(np.median([float(s.spacing[0]) for s in sequences]))
        record["frames_per_sequence"] = int(np.median([s.n_frames for s in sequences]))
        record["slices"] = int(np.median([s.shape_zyx[0] for s in sequences]))
    return record


def resolve_request(record: Optional[Mapping[str, Any]], model_name: str, factor: Optional[int] = None,
                    crop: Optional[int] = None, frames: Optional[int] = None, preset: Optional[str] = None,
                    intensity_percentile: Optional[float] = None):
    """The settings to apply a model with: ``("reduction", (factor, crop, frames))`` (the stored values
    where the request leaves them unset), ``("preset", name)`` (resolve from the study's pixel size) or
    ``None`` (nothing stored and nothing asked). Raises :class:`MotionPreprocessingError` naming the model
    when an explicit request differs from what the model was trained with."""
    asked = {k: v for k, v in (("factor", factor), ("crop", crop or None), ("frames", frames or None)) if v is not None}
    if not record:
        if preset:
            return ("preset", preset)
        return ("reduction", (factor or 1, crop or None, frames or None)) if asked else None
    stored_percentile = record.get("intensity_percentile")
    if intensity_percentile is not None and stored_percentile is not None and \
            abs(float(intensity_percentile) - float(stored_percentile)) > 1e-9:
        raise MotionPreprocessingError(f"{model_name}: trained with intensities normalised by the "
                                       f"{stored_percentile}th percentile, asked for {intensity_percentile}")
    stored_preset = record.get("preset")
    if not stored_preset and not record.get("reduction"):  # the grid was not recorded: the request as given
        return resolve_request(None, model_name, factor, crop, frames, preset)
    if stored_preset:
        if asked or (preset and preset != stored_preset):
            given = ", ".join([f"{k} {v}" for k, v in asked.items()] + ([f"preset {preset}"] if preset else []))
            raise MotionPreprocessingError(
                f"{model_name}: trained with the '{stored_preset}' preset (reduction resolved from each study's "
                f"pixel size); got {given}: leave the grid options unset")
        return ("preset", stored_preset)
    stored = record.get("reduction") or {"factor": 1, "crop": None, "frames": None}
    if preset:
        raise MotionPreprocessingError(
            f"{model_name}: trained with factor {stored['factor']}, crop {stored['crop'] or 'none'}, frames "
            f"{stored['frames'] or 'all'}, not with a preset; got preset {preset}: leave the grid options unset")
    wrong = {k: v for k, v in asked.items() if v != stored.get(k)}
    if wrong:
        raise MotionPreprocessingError(
            f"{model_name}: trained with factor {stored['factor']}, crop {stored['crop'] or 'none'}, frames "
            f"{stored['frames'] or 'all'}; got " + ", ".join(f"{k} {v}" for k, v in wrong.items())
            + ": a model applied to another grid gives wrong motion; leave them unset to use the stored ones")
    return ("reduction", (int(stored["factor"] or 1), stored.get("crop") or None, stored.get("frames") or None))


def stored_reduction(record: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """``extra["reduction"]`` for the Slicer bridge (``mrml.motion_settings``): the recorded reduction, or
    ``{"preset": name}``; None when nothing is recorded."""
    if not record:
        return None
    if record.get("preset"):
        return {"preset": record["preset"]}
    return dict(record["reduction"]) if record.get("reduction") else None


__all__ = ["MotionPreprocessingError", "preprocessing_record", "resolve_request", "stored_reduction"]
