"""What a CardioMorphNet model needs to be applied as it was trained: the record stored in its checkpoint
(``extra["preprocessing"]``, plus ``extra["reduction"]`` read by the Slicer bridge) the check that
refuses a request with other settings, and :func:`check_grid` (a sequence at another pixel size or frame
count than the model's training grid is refused); :func:`resolve_reduction` (the grid to apply to one sequence) and
:func:`reduce_sequence` (apply it) are what the runner (:mod:`.runner`) and the trainers' callers use.

Record (plain builtins)::

    {"intensity_percentile": 99.0,            # intensities divided by this percentile of each sequence
     "reduction": {"factor": 2, "crop": 40, "frames": 10} or None,   # in-plane averaging, crop (pixels
                                              # around the heart, after averaging), frames kept (ED, ES kept);
                                              # None: not recorded (the caller prepared the sequences)
     "preset": "demo" or None,                # reduction resolved from each study's pixel size
     "grid": {"target_pixel_mm": 4.0, "crop_mm": 125.0, "frames": 8} or None,  # the preset's rule
                                              # (:class:`GridRule`; older records: from PRESET_GRIDS)
     "pixel_mm": 4.0, "frames_per_sequence": 10, "slices": 12}   # the training grid (median over subjects)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import MotionError

Reduction = Tuple[int, Optional[int], Optional[int]]  # (in-plane factor, crop pixels, frames kept)


@dataclass(frozen=True)
class GridRule:
    """A reduction given in millimetres, resolved per sequence from its pixel size: in-plane pixels of
    about ``target_pixel_mm`` (integer averaging factor), a square crop of about ``crop_mm`` around the
    heart, about ``frames`` evenly spaced frames with ED and ES kept."""

    target_pixel_mm: float
    crop_mm: float
    frames: int

    def resolve(self, pixel_mm: float) -> Reduction:
        """``(factor, crop pixels, frames)`` for a sequence of ``pixel_mm`` (in-plane, mm) pixels; the crop
        is a multiple of 4 pixels of the averaged grid (at least 4)."""
        factor = max(1, int(round(self.target_pixel_mm / pixel_mm)))
        crop = int(4 * round(self.crop_mm / (pixel_mm * factor) / 4))
        return factor, max(crop, 4), int(self.frames)


DEMO_GRID = GridRule(4.0, 125.0, 8)  # the main job's (and the tiny/demo presets') reduction
PRESET_GRIDS: Dict[str, Optional[GridRule]] = {"tiny": DEMO_GRID, "demo": DEMO_GRID, "default": None, "large": None}


class MotionPreprocessingError(MotionError, ValueError):
    """A model is asked to run with other preprocessing than it was trained with."""


def preprocessing_record(sequences: Sequence, config, reduction: Optional[Tuple[int, Optional[int], Optional[int]]] = None,
                         preset: Optional[str] = None) -> Dict[str, Any]:
    """The record of how the training ``sequences`` (already reduced) were prepared (see module docstring).
    ``reduction`` (factor, crop, frames) as applied, or ``preset``: the preset whose reduction was resolved
    from each study's pixel size; neither: the grid reduction is not recorded."""
    record: Dict[str, Any] = {"intensity_percentile": float(config.intensity_percentile), "preset": preset,
                              "reduction": None}
    if preset and PRESET_GRIDS.get(preset) is not None:
        record["grid"] = asdict(PRESET_GRIDS[preset])
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


def _preset_grid(record: Optional[Mapping[str, Any]], preset: str, model_name: str) -> Optional[GridRule]:
    """The grid rule of ``preset``: the one stored in ``record`` (``"grid"``), else :data:`PRESET_GRIDS`."""
    stored = (record or {}).get("grid")
    if stored and (record or {}).get("preset") == preset:
        return GridRule(float(stored["target_pixel_mm"]), float(stored["crop_mm"]), int(stored["frames"]))
    if preset not in PRESET_GRIDS:
        raise MotionPreprocessingError(f"{model_name}: unknown preset {preset!r} (known: {', '.join(PRESET_GRIDS)})")
    return PRESET_GRIDS[preset]


def resolve_reduction(record: Optional[Mapping[str, Any]], model_name: str, pixel_mm: float,
                      factor: Optional[int] = None, crop: Optional[int] = None, frames: Optional[int] = None,
                      preset: Optional[str] = None) -> Tuple[Optional[Reduction], Optional[str]]:
    """``(reduction, description)`` to apply to a sequence of ``pixel_mm`` pixels: with a stored grid, the
    stored one (explicit options must agree, :func:`resolve_request`; description = what the model stores);
    without, the request (a preset's rule resolved for ``pixel_mm``, explicit options winning; description
    None). ``reduction`` None: the full grid."""
    stored = bool(record) and bool(record.get("preset") or record.get("reduction"))
    resolved = resolve_request(record, model_name, factor, crop, frames, preset)
    if stored:
        how, value = resolved
        if how == "reduction":
            return value, f"factor {value[0]}, crop {value[1]}, frames {value[2]}"
        rule = _preset_grid(record, value, model_name)
        return (rule.resolve(pixel_mm) if rule else None), f"preset {value}"
    rule = _preset_grid(None, preset, model_name) if preset else None
    base: Reduction = rule.resolve(pixel_mm) if rule else (1, None, None)
    merged = (factor if factor is not None else base[0], crop if crop is not None else base[1],
              frames if frames is not None else base[2])
    return (None if merged == (1, None, None) else merged), None


def reduce_sequence(sequence, reduction: Optional[Reduction]):
    """``sequence`` (a :class:`~.data.MotionSequence`) reduced by ``(factor, crop, frames)``: in-plane
    averaging, a crop around the heart, evenly spaced frames with ED and ES kept (``None``/``(1, None,
    None)``: unchanged). The IJK->RAS matrix follows (outputs stay in place in RAS)."""
    from .data import evenly_spaced_frames, resample_sequence

    factor, crop, count = reduction or (1, None, None)
    kept = evenly_spaced_frames(sequence.n_frames, count, sequence.ed_frame, sequence.es_frame) if count else None
    if (factor or 1) != 1 or crop or kept is not None:
        sequence = resample_sequence(sequence, factor or 1, crop, kept)
    return sequence


PIXEL_TOLERANCE = 1.25  # largest ratio of in-plane pixel sizes (either way) a model is applied across
FRAMES_TOLERANCE = 1.5  # largest ratio of frame counts (either way)


def check_grid(record: Optional[Mapping[str, Any]], model_name: str, pixel_mm: float, n_frames: int,
               subject: str = "sequence") -> None:
    """Refuse to apply a model to a sequence (after its reduction) whose in-plane pixel size (mm) or frame
    count differs from the training grid stored in ``record`` (``pixel_mm``, ``frames_per_sequence``) by
    more than :data:`PIXEL_TOLERANCE` / :data:`FRAMES_TOLERANCE` (the networks' velocities are in voxels
    per frame step: at another grid they mean other motion). A record without them (older checkpoints)
    is not checked. Raises :class:`MotionPreprocessingError` naming the model, the subject and both grids."""
    if not record:
        return
    trained_pixel, trained_frames = record.get("pixel_mm"), record.get("frames_per_sequence")
    problems = []
    if trained_pixel and pixel_mm > 0 and max(pixel_mm / trained_pixel, trained_pixel / pixel_mm) > PIXEL_TOLERANCE:
        problems.append(f"{pixel_mm:.3g} mm pixels (trained at {float(trained_pixel):.3g} mm)")
    if trained_frames and n_frames > 0 and max(n_frames / trained_frames, trained_frames / n_frames) > FRAMES_TOLERANCE:
        problems.append(f"{int(n_frames)} frames (trained with {int(trained_frames)})")
    if problems:
        raise MotionPreprocessingError(
            f"{model_name}: {subject} has {' and '.join(problems)}; a model applied to another grid gives wrong "
            f"motion: train a model at this grid or reduce the study to the model's grid")


def stored_reduction(record: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """``extra["reduction"]`` for the Slicer bridge (``mrml.motion_settings``): the recorded reduction, or
    ``{"preset": name}``; None when nothing is recorded."""
    if not record:
        return None
    if record.get("preset"):
        return {"preset": record["preset"]}
    return dict(record["reduction"]) if record.get("reduction") else None


__all__ = ["DEMO_GRID", "FRAMES_TOLERANCE", "GridRule", "PIXEL_TOLERANCE", "check_grid", "MotionPreprocessingError", "PRESET_GRIDS", "Reduction", "preprocessing_record",
           "reduce_sequence", "resolve_reduction", "resolve_request", "stored_reduction"]
