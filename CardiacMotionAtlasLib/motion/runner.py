"""One CardioMorphNet run on one subject: the function that the CLI (``motion estimate``), the cohort batch,
the Slicer Logic (through the CLI) and the main job call, so a result does not depend on the door.

    trained = load_motion("motion.pt")
    run = run_motion(trained, "subject_dir/", "out/")           # or a CineStudy, or a MotionSequence
    run.estimate.indices, run.paths["indices_json"], run.key_results()

Steps: read the study (any layout, :func:`~CardiacMotionAtlasLib.io.layouts.read_study`) -> its SAX stack
with the ED/ES labels, intensities normalised by the percentile the model was trained with -> the grid
reduction stored in the checkpoint (:mod:`.preprocessing`; explicit options that differ are refused,
:class:`~.preprocessing.MotionPreprocessingError`) -> :func:`~.estimate.estimate_motion` -> every output
written into a staging folder beside ``out`` and published at once (a failure leaves nothing at ``out``).

Output files (names decided here; ``paths`` keys in brackets), under ``out``:

- ``dvf/ed_to_frameNN.nii.gz`` (+ ``_uncertainty``) and ``dvf/step_frameNN.nii.gz`` [``dvf_folder``,
  ``dvf_es``]: ED -> frame NN and frame-to-frame displacement fields (RAS mm in memory, ITK/LPS vector NIfTI
  on disk: Slicer grid transforms); only with ``dvfs=True``;
- ``uncertainty.nii.gz`` [``uncertainty``]: 4D differential entropy (nats); ``displacement_std.nii.gz``
  [``displacement_std``]: 4D posterior std (mm); ``warped_labels.nii.gz`` [``warped_labels``]: ED labels
  carried to every frame (uint8);
- ``indices.csv`` / ``indices.json`` [``indices_csv``, ``indices_json``]: nine clinical indices (ml, %, g)
  with 95 % intervals; ``strain.csv`` [``strain``] (%), ``volumes.csv`` [``volumes``] (ml) per frame with
  bounds; ``volume_curves.png`` [``volume_plot``].
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Union

import numpy as np

from ..data.cine_study import CineStudy
from ..io.atomic import staged_output_dir
from .data import MotionSequence, sequence_from_study
from .estimate import MotionEstimate, estimate_motion
from .preprocessing import Reduction, reduce_sequence, resolve_reduction
from .model import TrainedMotion

Subject = Union[MotionSequence, CineStudy, str, "os.PathLike[str]"]


@dataclass(frozen=True)
class MotionRun:
    """What one :func:`run_motion` produced: the estimate (in memory), the sequence it was estimated on
    (after the model's preprocessing; RAS mm, normalised cycle phase), the reduction applied ``(factor,
    crop pixels, frames)`` (None: full grid), the published files (name -> path under ``out``) and the
    estimation time (s, without reading and writing)."""

    estimate: MotionEstimate
    sequence: MotionSequence
    reduction: Optional[Reduction]
    paths: Mapping[str, Path] = field(default_factory=dict)
    estimate_s: float = 0.0

    def key_results(self) -> Dict[str, float]:
        """Flat scalar results for a cohort summary: the finite clinical indices (ml, %, g; as in
        ``indices.json``) and ``displacement_std_mm``, the mean posterior displacement std over the 4D grid (mm)."""
        results = {name: round(float(value), 4) for name, value in self.estimate.indices.items()
                   if np.isfinite(value)}
        results["displacement_std_mm"] = round(float(np.mean(self.estimate.displacement_std_mm())), 4)
        return results


def _sequence(subject: Subject, percentile: float) -> MotionSequence:
    """The subject's SAX sequence at its own grid (ED/ES labels only), intensities normalised by ``percentile``."""
    if isinstance(subject, MotionSequence):
        return subject
    if not isinstance(subject, CineStudy):
        from ..io.layouts import read_study

        subject = read_study(Path(subject))
    return sequence_from_study(subject, percentile, ed_es_only=True)


def run_motion(trained: TrainedMotion, subject: Subject, out: Union[str, "os.PathLike[str]"], *,
               factor: Optional[int] = None, crop: Optional[int] = None, frames: Optional[int] = None,
               preset: Optional[str] = None, samples: Optional[int] = None, refine_steps: Optional[int] = None,
               use_given_ed_labels: bool = True, seed: int = 0, dvfs: bool = True, progress=None,
               log: Optional[Callable[[str], None]] = None, trajectory: Optional[str] = None) -> MotionRun:
    """Estimate the motion of ``subject`` with ``trained`` and publish every output (module docstring) at ``out``.

    ``subject``: a study folder/file (read in any layout), a :class:`CineStudy`, or a :class:`MotionSequence`
    at the study's grid (``sequence_from_study`` with the model's ``intensity_percentile``; it is reduced
    here). ``factor``/``crop``/``frames``/``preset``: the grid reduction; with one stored in the checkpoint
    they may be left unset and must agree with it; without, they are applied as given (a preset resolved
    from the sequence's pixel size, explicit options winning). ``samples``, ``refine_steps``, ``seed``,
    ``use_given_ed_labels``, ``trajectory`` (None: the default, ``"svf"`` where the study gives ED and ES labels;
    ``"chain"``: the previous refined chain): as :func:`estimate_motion` (defaults: the model's config). ``dvfs``: also write
    the displacement fields. ``progress``: a ProgressReporter. ``log``: receives one line naming the stored
    preprocessing applied. Bad input raises the library's errors before anything is written."""
    final = Path(out)
    if final.exists() and not final.is_dir():  # refused before the estimation, as the publication would
        raise NotADirectoryError(20, "output path exists and is not a folder", str(final))
    sequence = _sequence(subject, float(trained.config.intensity_percentile))
    model_name = Path(trained.checkpoint_path).name if trained.checkpoint_path else "the motion model"
    reduction, stored = resolve_reduction(trained.preprocessing, model_name, float(sequence.spacing[0]),
                                          factor, crop, frames, preset)
    if stored is not None and log is not None:
        log(f"preprocessing stored in {model_name}: {stored}")
    sequence = reduce_sequence(sequence, reduction)
    start = time.perf_counter()
    estimate = estimate_motion(trained, sequence, samples=samples, use_given_ed_labels=use_given_ed_labels, seed=seed,
                               progress=progress, refine_steps=refine_steps,
                               **({} if trajectory is None else {"trajectory": trajectory}))
    estimate_s = time.perf_counter() - start
    from . import outputs

    with staged_output_dir(final) as staging:  # every output appears at once, or none
        written = outputs.write_motion_outputs(estimate, staging, dvfs=dvfs)
    paths = {name: final / Path(path).relative_to(staging) for name, path in written.items()}
    return MotionRun(estimate, sequence, reduction, paths, estimate_s)


__all__ = ["MotionRun", "run_motion"]
