"""One runner for CT motion synthesis: a loaded model and one CT frame in, annotated frame pairs out.

:func:`run_synthesis` is what ``cardiac-atlas synth sample``, the cohort batch's ``synth`` pipeline, the
Slicer Logic (through the CLI) and the main job's CT stage call. It checks and prepares the conditioning
frame (an :class:`~CardiacMotionAtlasLib.data.ImageSequence`, a NIfTI file or a subject folder holding
``frame_name``), its labels (optional: an array, an ImageSequence or a label file in ``label_convention``;
with ``labels_beside`` the ``seg_<frame name>`` file next to a frame file when present), maps a cine frame
to the HU-like scale the model learnt when the model folder's ``inputs.json`` says it was trained on cine
frames, samples ``n`` latents of ``mode`` and writes every output into a staging folder that is published
at ``out`` at once (a failure leaves nothing new at ``out``). Pairs complete in a previous output at
``out`` for the same latent and model version are carried over (hard links), not recomputed.

Outputs under ``out`` (names fixed here and in :mod:`.pairs`; frames on the conditioning frame's grid,
RAS mm, flow convention ``generated_ED(p) = conditioning_ES(p + w(p))``)::

    pair_<iii>/conditioning_ES.nii.gz, generated_ED.nii.gz     the frame pair (HU)
    pair_<iii>/flow.nii.gz                                     the flow, ITK displacement field (LPS vectors)
    pair_<iii>/flow_ras_mm.nii.gz                              the flow's R, A, S components (mm)
    pair_<iii>/labels_ES.nii.gz, labels_generated_ED.nii.gz    labels (only with labels)
    pair_<iii>/pair.json                                       latent, model version, files, stats
    samples.csv                                                one row per pair (implied LVEF %, flow mm, ...)

Key results (:meth:`SynthesisRun.key_results`): ``pairs`` (count), ``implied_lvef_mean_pct`` and
``implied_lvef_sd_pct`` (%, over the samples; NaN without labels, the SD NaN for one sample),
``max_flow_mm`` (largest flow magnitude over the samples, mm) and ``seconds`` (wall time, s).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ..data.image_sequence import ImageSequence
from ..errors import InputFileError
from ..io.atomic import staged_output_dir
from .errors import SynthesisError
from .grid import as_frame
from .pairs import PAIR_FOLDER, SAMPLE_TABLE, generate_pairs
from .sample import LATENT_MODES
from .train import TrainedSynthesis

PathLike = Union[str, Path]
LabelsLike = Union[None, PathLike, np.ndarray, ImageSequence]
INPUTS_RECORD = "inputs.json"
"""Beside ``synth.pt``: ``{"modality": "ct" | "cine", ...}``, the scale the model's frames were on."""
DEFAULT_FRAME = "ct_ES.nii.gz"
"""The conditioning frame of a subject folder (the phantom layout's ES CT)."""


@dataclass(frozen=True)
class SynthesisRun:
    """The result of :func:`run_synthesis`: the subject, the model version, each pair's JSON record
    (``pair.json``: latent, files, stats in mm and %), the sample table's rows (as in ``samples.csv``),
    the published paths (``"samples"`` -> ``out/samples.csv``, ``"pair_<iii>"`` -> ``out/pair_<iii>``)
    and the run's wall time (s)."""

    subject_id: str
    model_version: str
    modality: str
    records: Tuple[Dict, ...]
    rows: Tuple[Dict, ...]
    paths: Dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def folders(self) -> Tuple[Path, ...]:
        """The published ``pair_<iii>`` folders, in sample order."""
        return tuple(self.paths[PAIR_FOLDER.format(i)] for i in range(len(self.records)))

    def implied_lvef_pct(self) -> np.ndarray:
        """Each sample's implied LVEF (%; NaN where the pair has no labels)."""
        return np.array([_stat(r, "implied_lvef_pct") for r in self.records], float)

    def key_results(self) -> Dict[str, float]:
        """Flat scalars for a cohort summary table (see the module docstring)."""
        lvef = self.implied_lvef_pct()
        finite = lvef[np.isfinite(lvef)]
        return {"pairs": float(len(self.records)),
                "implied_lvef_mean_pct": float(finite.mean()) if finite.size else float("nan"),
                "implied_lvef_sd_pct": float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
                "max_flow_mm": float(max(_stat(r, "max_flow_mm") for r in self.records)),
                "seconds": float(self.seconds)}


def _stat(record: Dict, key: str) -> float:
    value = record.get("stats", {}).get(key)
    return float("nan") if value is None else float(value)


def model_inputs(checkpoint: Optional[PathLike]) -> Dict:
    """The model folder's ``inputs.json`` (``{"modality": "ct"}`` when absent: models trained before it,
    or held in memory only)."""
    if checkpoint is None:
        return {"modality": "ct"}
    path = Path(checkpoint).parent / INPUTS_RECORD
    if not path.is_file():
        return {"modality": "ct"}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputFileError(path, f"unreadable ({error})") from None
    if not isinstance(value, dict) or value.get("modality") not in ("ct", "cine"):
        raise InputFileError(path, "expected {\"modality\": \"ct\" | \"cine\", ...}")
    return value


def read_frame(subject: Union[ImageSequence, PathLike], frame_name: str = DEFAULT_FRAME) -> Tuple[ImageSequence, Optional[Path]]:
    """(the conditioning frame, its file or None): ``subject`` as is, a NIfTI file, or ``frame_name`` in
    a subject folder; a file must hold one 3D volume."""
    from ..io.nifti import read_nifti

    if isinstance(subject, ImageSequence):
        return subject, None
    path = Path(subject)
    if path.is_dir():
        path = path / frame_name
        if not path.is_file():
            raise InputFileError(path, "no CT frame to condition on in the subject folder")
    frame = read_nifti(path)
    if frame.n_frames != 1:
        raise InputFileError(path, f"{frame.n_frames} frames; the conditioning frame must be one 3D volume")
    return frame, path


def prepare_labels(labels: LabelsLike, frame: ImageSequence, convention: str = "product") -> Optional[np.ndarray]:
    """Product-convention labels ``(z, y, x)`` of the frame's grid from an array, an ImageSequence or a
    label file in ``convention`` (refused when the grid differs or the anatomy reads as another
    convention), or None."""
    from ..io.label_conventions import check_label_anatomy, to_product
    from ..io.nifti import read_nifti

    if labels is None:
        return None
    source: Optional[Path] = None
    if isinstance(labels, (str, Path)):
        source = Path(labels)
        labels = read_nifti(source, labels=True, allowed_labels=(0, 1, 2, 3))
    if isinstance(labels, ImageSequence):
        problem = None
        if labels.n_frames != 1:
            problem = f"{labels.n_frames} frames; expected one 3D label map"
        elif labels.shape_zyx != frame.shape_zyx or not (abs(labels.ijk_to_ras - frame.ijk_to_ras) < 1e-3).all():
            problem = "grid differs from the conditioning frame's"
        if problem is not None:
            raise InputFileError(source, problem) if source is not None else SynthesisError(f"labels: {problem}")
        array = labels.array[0]
    else:
        array = np.asarray(labels)
        if array.shape != tuple(frame.shape_zyx):
            raise SynthesisError(f"labels grid {array.shape} != conditioning frame grid {tuple(frame.shape_zyx)}")
    array = to_product(array, convention, source)
    check_label_anatomy(array, source, convention)
    return array


def run_synthesis(trained: TrainedSynthesis, subject: Union[ImageSequence, PathLike], out: PathLike, *,
                  labels: LabelsLike = None, labels_beside: bool = False, label_convention: str = "product",
                  frame_name: str = DEFAULT_FRAME, n: int = 3, mode: str = "random", seed: int = 0,
                  es_phase: float = 0.35, subject_id: Optional[str] = None, progress=None) -> SynthesisRun:
    """Write ``n`` annotated pairs generated from ``subject``'s ES CT frame into ``out`` (see the module
    docstring) and return them. ``mode``: latent layout (``random`` draws from the prior, a ``line``
    through its mean, a ``grid`` over two latent axes), deterministic in ``seed``; ``es_phase``:
    normalised cycle phase of the conditioning frame; ``subject_id`` defaults to the frame's name;
    ``progress``: a ProgressReporter or None. Raises InputFileError / SynthesisError before writing
    anything for bad input."""
    started = time.time()
    if int(n) < 1:
        raise SynthesisError(f"number of samples must be >= 1, got {n}")
    if mode not in LATENT_MODES:
        raise SynthesisError(f"unknown latent mode {mode!r}: expected one of {', '.join(LATENT_MODES)}")
    if not 0.0 <= float(es_phase) < 1.0:
        raise SynthesisError(f"es_phase {es_phase} outside [0, 1)")
    frame, frame_path = read_frame(subject, frame_name)
    if labels is None and labels_beside and frame_path is not None:
        beside = frame_path.with_name("seg_" + frame_path.name)
        labels = beside if beside.is_file() else None
    label_array = prepare_labels(labels, frame, label_convention)
    inputs = model_inputs(trained.checkpoint_path)
    volume, matrix = as_frame(frame, None, "conditioning frame")
    if inputs["modality"] == "cine":  # the model learnt cine frames on a HU-like scale: map this one alike
        from .data import cine_to_hu

        volume = cine_to_hu(volume, float(inputs.get("cine_percentile", 99.0)), float(inputs.get("cine_hu_scale", 500.0)))
    subject_id = frame.name if subject_id is None else str(subject_id)
    final = Path(out)
    with staged_output_dir(final) as staging:
        folders = generate_pairs(trained, volume, staging, ijk_to_ras=matrix, labels=label_array, n=int(n), mode=mode,
                                 seed=int(seed), es_phase=float(es_phase), subject_id=subject_id, progress=progress,
                                 resume_from=final)
        records = tuple(json.loads((folder / "pair.json").read_text(encoding="utf-8")) for folder in folders)
        rows = tuple(_read_rows(staging / SAMPLE_TABLE))
    paths = {"samples": final / SAMPLE_TABLE, **{folder.name: final / folder.name for folder in folders}}
    return SynthesisRun(subject_id, trained.model_version, inputs["modality"], records, rows, paths,
                        time.time() - started)


def _read_rows(path: Path) -> list:
    import csv

    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


__all__ = ["DEFAULT_FRAME", "INPUTS_RECORD", "SynthesisRun", "model_inputs", "prepare_labels", "read_frame",
           "run_synthesis"]
