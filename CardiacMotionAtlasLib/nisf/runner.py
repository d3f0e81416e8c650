"""The one NISF++ runner: fit a new subject with a trained model (network frozen), sample its 4D
intensities and labels, compute the clinical indices of the sampled labels and publish every output at
once. The CLI (``nisf reconstruct``), the cohort batch (pipeline ``nisf``), the Slicer Logic (through
the CLI) and the main job call :func:`reconstruct_subject` and nothing else.

Outputs (names decided here, once) in ``out/``, published from a staging folder beside it
(:func:`~CardiacMotionAtlasLib.io.atomic.staged_output_dir`; a failure leaves nothing at ``out``)::

    intensity.nii.gz          (t, z, y, x) float32 sampled intensities (study's stored units), IJK->RAS (RAS mm)
    labels.nii.gz             (t, z, y, x) uint8 sampled labels (0 bg, 1 LV BP, 2 LV myo, 3 RV BP)
    slices.json               per slice: nominal/corrected IJK->RAS, RAS rigid correction, intensity scale;
                              the subject's standardised frame, global pose and the sampled grid
    subject_fit.pt            the fitted subject (``weights_only``; ``nisf sample`` reloads it)
    indices.json              clinical indices (ml, %, g) of the sampled labels at ED (the phase nearest 0)
                              and ES (the smallest LV blood pool), LV volume curve (ml), fit loss and time (s)
    meshes/<label>_<nnn>.vtp  marching-cubes label surfaces per frame (only with ``mesh_labels``)

With ``sample=False`` only ``slices.json`` and ``subject_fit.pt`` are written. A resumable fit
(``checkpoint=True``) keeps its checkpoint beside ``out`` (:func:`fit_checkpoint_path`) until the outputs
are published, then removes it.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.cine_study import CineStudy
from ..data.image_sequence import ImageSequence
from ..io.atomic import atomic_write_text, staged_output_dir
from .config import FitConfig
from .errors import NISFConfigError
from .fit import fit_subject
from .model import SubjectFit
from .outputs import write_fit, write_sampled
from .sampling import sample_grid, standard_grid
from .train import TrainedNISF

PathLike = Union[str, Path]
INDICES_NAME = "indices.json"


@dataclass(frozen=True)
class NISFRun:
    """What :func:`reconstruct_subject` made: the fit, the sampled sequences (RAS mm; ``None`` with
    ``sample=False``), the clinical indices of the sampled labels (ml, %, g; empty when undefined), the ED
    and ES frames they use, the final fit loss, the fit time (s) and the published paths under ``out``."""

    subject_id: str
    fit: SubjectFit
    intensity: Optional[ImageSequence]
    labels: Optional[ImageSequence]
    indices: Dict[str, float]
    ed_frame: Optional[int]
    es_frame: Optional[int]
    fit_loss: float
    fit_seconds: float
    paths: Dict[str, Path] = field(default_factory=dict)

    def key_results(self) -> Dict[str, float]:
        """Flat scalars for a cohort summary, finite ones only: ``fit_loss`` (the last step's), ``fit_s`` (s)
        and the clinical indices of the sampled labels (ml, %, g) rounded to 4 decimals."""
        results = {"fit_loss": float(self.fit_loss), "fit_s": round(self.fit_seconds, 3)}
        results.update({name: round(float(value), 4) for name, value in self.indices.items()})
        return {name: value for name, value in results.items() if math.isfinite(value)}


def fit_checkpoint_path(out: PathLike) -> Path:
    """Where a resumable fit of ``out`` keeps its checkpoint: ``<out>.fit_checkpoint.pt`` beside ``out``."""
    out = Path(out)
    return out.parent / f"{out.name}.fit_checkpoint.pt"


def equally_spaced_phases(count: int) -> list:
    """``count`` equally spaced normalised cycle phases ``i / count``."""
    if int(count) < 1:
        raise NISFConfigError(f"phases must be >= 1, got {count}")
    return [i / int(count) for i in range(int(count))]


def _phase_list(phases: Union[int, Sequence[float], None]) -> Optional[list]:
    if phases is None:
        return None
    if isinstance(phases, (int, np.integer)):
        return equally_spaced_phases(int(phases))
    return [float(p) for p in phases]


def sampled_indices(labels: ImageSequence) -> Tuple[Dict[str, float], Optional[int], Optional[int], np.ndarray]:
    """Clinical indices (ml, %, g) of a sampled label sequence: ED = the frame whose phase is nearest 0
    (cyclic), ES = the frame of the smallest LV blood pool; ``({}, None, None, lv)`` with fewer than 2
    frames or no LV blood pool. Also returns the LV blood pool volume per frame (ml)."""
    from ..analysis.clinical_indices import clinical_indices_from_labels
    from ..analysis.volumes import label_volumes_ml

    lv = label_volumes_ml(labels, 1)
    if labels.n_frames < 2 or not np.any(lv > 0):
        return {}, None, None, lv
    phases = np.asarray(labels.phases, float) % 1.0
    ed = int(np.argmin(np.minimum(phases, 1.0 - phases)))
    es = int(np.argmin(lv))
    indices = clinical_indices_from_labels(labels, ed_frame=ed, es_frame=es).as_dict()
    return {name: float(value) for name, value in indices.items()}, ed, es, lv


def _read_subject(subject: Union[CineStudy, PathLike]) -> CineStudy:
    if isinstance(subject, CineStudy):
        return subject
    from ..io.layouts import read_study

    return read_study(Path(subject))


def _json_number(value: float) -> Optional[float]:
    return float(value) if math.isfinite(value) else None


def reconstruct_subject(trained: TrainedNISF, subject: Union[CineStudy, PathLike], out: PathLike, *,
                        fit_config: Optional[FitConfig] = None, steps: Optional[int] = None,
                        seed: Optional[int] = None, use_labels: bool = False, sample: bool = True,
                        spacing_mm: float = 1.25, grid: Optional[Tuple[np.ndarray, Sequence[int]]] = None,
                        phases: Union[int, Sequence[float], None] = None, mesh_labels: Sequence[int] = (),
                        checkpoint: bool = False, resume: bool = False, progress=None,
                        cancel=None, intensity: bool = True) -> NISFRun:
    """Fit ``subject`` (a :class:`CineStudy` or a study folder in any layout) with the network of
    ``trained`` frozen, sample it and publish the outputs of the module docstring at ``out``.

    ``fit_config``: default the model's stored fit config; ``steps``/``seed`` override it. ``use_labels``:
    also fit the study's labels (Dice). Sampling grid: ``grid`` (``(ijk_to_ras, shape_zyx)``, RAS mm) or an
    isotropic ``spacing_mm`` grid aligned with the subject's standardised frame; ``phases``: a count of
    equally spaced phases, explicit phases (normalised cycle phase), or ``None`` for the study's frames.
    ``checkpoint``/``resume``: checkpoint the fit at :func:`fit_checkpoint_path` / continue from it.
    ``intensity=False``: labels only (no ``intensity.nii.gz``; the labels sampled coarse to fine,
    :mod:`.refine`, several times faster than with intensities, which need every voxel).
    Bad input raises before anything is written (``NISFInputError``, ``CineStudyError``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(20, "output path exists and is not a folder", str(out))
    if grid is None and not spacing_mm > 0:
        raise NISFConfigError(f"grid spacing must be > 0 mm, got {spacing_mm}")
    phase_list = _phase_list(phases)
    config = fit_config if fit_config is not None else trained.config.fit
    if steps is not None:
        config = replace(config, steps=int(steps))
    if seed is not None:
        config = replace(config, seed=int(seed))
    study = _read_subject(subject)
    checkpoint_file = fit_checkpoint_path(out) if (checkpoint or resume) else None

    started = time.perf_counter()
    fit = fit_subject(trained, study, config, use_labels=use_labels, checkpoint_path=checkpoint_file,
                      resume=resume, progress=progress, cancel=cancel)
    seconds = time.perf_counter() - started
    losses = fit.history.get("loss") or []
    loss = float(losses[-1]) if losses else float("nan")

    want_intensity, intensity = bool(intensity), None
    labels = None
    indices: Dict[str, float] = {}
    ed = es = None
    if sample:
        ijk_to_ras, shape = grid if grid is not None else standard_grid(fit, spacing_mm)
        sampled = sample_grid(fit, ijk_to_ras, shape, phase_list, name=fit.subject.subject_id,
                              want_intensity=want_intensity)
        intensity, labels = sampled.intensity, sampled.labels
        indices, ed, es, lv = sampled_indices(labels)
    with staged_output_dir(out) as staging:
        if sample:
            written = write_sampled(fit, sampled, staging, mesh_labels=mesh_labels)
            record = {"subject": fit.subject.subject_id, "ed_frame": ed, "es_frame": es,
                      "phases": np.asarray(labels.phases).tolist(),
                      "indices": {name: _json_number(value) for name, value in indices.items()},
                      "lv_volume_ml": [float(v) for v in lv], "fit_loss": _json_number(loss),
                      "fit_s": round(seconds, 3)}
            atomic_write_text(staging / INDICES_NAME, json.dumps(record, indent=1, sort_keys=True) + "\n")
            written["indices"] = staging / INDICES_NAME
        else:
            written = write_fit(fit, staging)
    paths = {what: out / Path(path).relative_to(staging) for what, path in written.items()}
    if checkpoint_file is not None:
        checkpoint_file.unlink(missing_ok=True)
    return NISFRun(fit.subject.subject_id, fit, intensity, labels, indices, ed, es, loss, seconds, paths)


__all__ = ["INDICES_NAME", "NISFRun", "equally_spaced_phases", "fit_checkpoint_path", "reconstruct_subject",
           "sampled_indices"]
