"""The grid reduction a CardioMorphNet model was trained with, so that a run applies the same one.

A motion checkpoint (``motion/train.py``) stores the network config (``MotionConfig``: sizes, loss weights,
schedule) and the weights, not how the training sequences were reduced (in-plane averaging ``factor``,
``crop`` pixels around the heart, ``frames`` kept). Those are found, in this order:

1. ``extra["reduction"]`` of the checkpoint (``{"factor", "crop", "frames"}``, or ``{"preset": name}``), which
   ``motion.train_motion`` stores from its preprocessing record (``motion.preprocessing``);
2. the cohort record ``<checkpoint stem>.cohort.json`` that ``cardiac-atlas motion train`` writes next to
   the checkpoint (``"reduction": {"factor", "crop", "frames"}``);
3. a checkpoint whose config is exactly a preset's (the main job's ``motion_model.pt`` is the ``demo``
   preset): that preset's reduction, resolved from each study's own pixel size (``--preset``).

Reading the checkpoint needs torch; without it only the cohort record is read. Nothing found: the
settings are not recorded and the caller's values are used as given.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Union

from .method_runs import MethodInputError

PathLike = Union[str, os.PathLike]
CHECKPOINT_KIND = "cardiomorphnet"


@dataclass(frozen=True)
class MotionTrainingSettings:
    """How a motion model's training sequences were reduced. ``crop``/``frames`` None: not reduced;
    ``preset``: resolved per study from its pixel size by that preset; ``source``: where this was read
    ('' when nothing is recorded: then nothing is enforced)."""

    factor: int = 1
    crop: Optional[int] = None
    frames: Optional[int] = None
    preset: Optional[str] = None
    source: str = ""

    @property
    def known(self) -> bool:
        return bool(self.source)

    def describe(self) -> str:
        """One line for the GUI: what the model was trained with and where that was read."""
        if not self.known:
            return "not recorded with this model: set factor, crop and frames as it was trained"
        if self.preset is not None:
            return (f"preset '{self.preset}': reduction resolved from each study's pixel size "
                    f"(read from {self.source})")
        return (f"factor {self.factor}, crop {self.crop or 'none'}, frames {self.frames or 'all'} "
                f"(read from {self.source})")

    def check(self, checkpoint: PathLike, factor: Optional[int], crop: Optional[int],
              frames: Optional[int]) -> None:
        """Refuse (:class:`MethodInputError`) explicit settings that differ from the stored ones
        (``None`` - and 0 for crop/frames - means: the stored value)."""
        if not self.known:
            return
        given = {k: v for k, v in (("factor", factor), ("crop", crop or None), ("frames", frames or None))
                 if v is not None}
        if self.preset is not None:
            if given:
                raise MethodInputError(
                    f"{Path(checkpoint).name}: trained with the '{self.preset}' preset, whose reduction is "
                    f"resolved from the study's pixel size ({self.source}); got "
                    + ", ".join(f"{k} {v}" for k, v in given.items()) + ": leave factor, crop and frames unset")
            return
        stored = {"factor": self.factor, "crop": self.crop, "frames": self.frames}
        wrong = {k: v for k, v in given.items() if v != stored[k]}
        if wrong:
            raise MethodInputError(
                f"{Path(checkpoint).name}: trained with factor {self.factor}, crop {self.crop or 'none'}, frames "
                f"{self.frames or 'all'} ({self.source}); got " + ", ".join(f"{k} {v}" for k, v in wrong.items())
                + ": a model applied to another grid reduction gives wrong motion; leave them unset to use the "
                  "stored ones")

    def cli_arguments(self, factor: Optional[int], crop: Optional[int], frames: Optional[int]) -> List[str]:
        """``motion estimate`` options: the stored reduction when known, else the given values."""
        if self.known and self.preset is not None:
            return ["--preset", self.preset]
        if self.known:
            factor, crop, frames = self.factor, self.crop, self.frames
        arguments = ["--factor", str(int(factor or 1))]
        if crop:
            arguments += ["--crop", str(int(crop))]
        if frames:
            arguments += ["--frames", str(int(frames))]
        return arguments


def _from_reduction(reduction: object, source: str) -> Optional[MotionTrainingSettings]:
    if isinstance(reduction, dict) and reduction.get("preset"):
        return MotionTrainingSettings(preset=str(reduction["preset"]), source=source)
    if not isinstance(reduction, dict) or "factor" not in reduction:
        return None

    def optional_int(value: object) -> Optional[int]:
        return int(value) if value not in (None, 0, "") else None

    return MotionTrainingSettings(int(reduction.get("factor") or 1), optional_int(reduction.get("crop")),
                                  optional_int(reduction.get("frames")), None, source)


def _from_checkpoint(path: Path) -> Optional[MotionTrainingSettings]:
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    from dataclasses import asdict

    from ..motion import MotionConfig
    from ..training.checkpoint import load_checkpoint
    from ..training.config import config_from_dict

    checkpoint = load_checkpoint(path, expected_kind=CHECKPOINT_KIND, map_location="cpu")
    stored = _from_reduction(checkpoint.extra.get("reduction"), f"{path.name} (checkpoint)")
    if stored is not None:
        return stored
    config = asdict(config_from_dict(MotionConfig, checkpoint.config, source=path))
    from ..cli.presets import motion_preset

    for name in ("demo", "tiny"):
        preset = motion_preset(name)
        if preset.reduction is not None and asdict(preset.config) == config:
            return MotionTrainingSettings(preset=name, source=f"{path.name} (config of the '{name}' preset)")
    return None


def read_motion_training_settings(checkpoint: PathLike) -> MotionTrainingSettings:
    """The grid reduction ``checkpoint`` was trained with (see module docstring); a bad checkpoint raises
    the library's ``CheckpointError`` naming the file."""
    path = Path(checkpoint)
    if not path.is_file():
        raise MethodInputError(f"{path}: no CardioMorphNet checkpoint (train one, or pick one from the registry)")
    record_path = path.with_name(path.stem + ".cohort.json")
    from_checkpoint = _from_checkpoint(path)
    if from_checkpoint is not None and from_checkpoint.preset is None:
        return from_checkpoint
    if record_path.is_file():
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise MethodInputError(f"{record_path}: not a cohort record ({error})") from error
        stored = _from_reduction(record.get("reduction"), record_path.name)
        if stored is not None:
            return stored
    return from_checkpoint or MotionTrainingSettings()


__all__ = ["MotionTrainingSettings", "read_motion_training_settings"]
