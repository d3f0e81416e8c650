"""The README main job's motion stage: CardioMorphNet trained on the training subjects of a phantom
cohort (``phantom.cohort.write_cohort`` folders) and applied to each held-out subject (the main job holds
out one subject of the training family and one of a family the model never saw).

To stay within ~3 minutes on one CPU thread the sequences are reduced (:data:`~..motion.preprocessing.DEMO_GRID`:
in-plane pixels of ~4 mm, a ~125 mm crop around the heart, 8 frames with ED and ES kept; stored in the
checkpoint as the ``tiny``/``demo`` preset, so the runner applies it to each held-out subject) and the model
is small and briefly trained: a demonstration of the outputs, not of the accuracy (see ``benchmarks/motion.py``
for that). Each held-out subject goes through :func:`~..motion.runner.run_motion` (its outputs, published at
once in ``out/<subject>/``: see that module); this stage adds ``summary.json`` there (with the disk-summation
baseline of the subject's SAX labels and the truth); in ``out``: ``summary.json`` (training subjects and
every held-out subject's summary) and the checkpoint ``motion_model.pt`` (a rerun resumes from it; one of
another configuration is replaced).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..errors import CheckpointError
from ..io.atomic import atomic_write_text
from ..io.layout_ukbb import read_ukbb_study
from ..motion import MotionConfig, sequence_from_study, train_motion
from ..motion.data import MotionSequence
from ..motion.errors import MotionInputError
from ..motion.preprocessing import DEMO_GRID, preprocessing_record, reduce_sequence
from ..motion.runner import run_motion
from .held_out import fmt, held_out_role, split_cohort, subject_label, training_families

DEMO_CONFIG = MotionConfig(seg_steps=300, steps=100, seg_batch=2, posterior_samples=8, checkpoint_every=20)
TARGET_PIXEL_MM, CROP_MM, FRAMES = DEMO_GRID.target_pixel_mm, DEMO_GRID.crop_mm, DEMO_GRID.frames


def _reduced(folder: Path, config: MotionConfig = DEMO_CONFIG) -> MotionSequence:
    """A training subject's SAX sequence reduced by :data:`DEMO_GRID` resolved for its pixel size."""
    sequence = sequence_from_study(read_ukbb_study(folder), config.intensity_percentile, ed_es_only=True)
    return reduce_sequence(sequence, DEMO_GRID.resolve(float(sequence.spacing[0])))


def _truth(folder: Path) -> Optional[Dict[str, float]]:
    sidecar = folder / "phantom.json"
    if not sidecar.is_file():
        return None
    return {k: float(v) for k, v in json.loads(sidecar.read_text()).get("clinical_indices", {}).items()}


def _disk_summation(folder: Path) -> Dict[str, float]:
    """The baseline: indices by disk summation of the subject's given SAX labels (ED and ES), full grid."""
    from ..analysis.clinical_indices import clinical_indices_from_labels

    study = read_ukbb_study(folder)
    labels = study.sax_stack(labels=True)
    return {k: float(v) for k, v in clinical_indices_from_labels(labels, ed_frame=study.ed_frame,
                                                                 es_frame=study.es_frame).as_dict().items()}


def _estimate_held_out(trained, folder: Path, out: Path, train_families) -> Dict:
    """Run the model on one held-out subject (:func:`run_motion`: the checkpoint's reduction, outputs in
    ``out/<subject>/``) and evaluate it against the phantom's truth; returns its summary."""
    study = read_ukbb_study(folder)
    subject_out = out / study.subject_id
    run = run_motion(trained, study, subject_out)
    held_out, estimate = run.sequence, run.estimate
    summary = {
        "subject_id": held_out.subject_id, **held_out_role(folder, train_families),
        "grid_zyx": list(held_out.shape_zyx), "frames": held_out.n_frames,
        "pixel_mm": float(held_out.spacing[0]),
        "indices": estimate.indices,
        "index_bounds95": {k: list(v) for k, v in estimate.index_bounds.items()},
        "truth_indices": _truth(folder),
        "disk_summation_indices": _disk_summation(folder),
        "peak_strain_percent": {k: float(v[np.argmax(np.abs(v))]) for k, v in estimate.strain.items()},
        "mean_uncertainty_nats_myocardium_es": float(estimate.entropy[estimate.es_frame][estimate.ed_labels == 2].mean()),
        "estimate_s": run.estimate_s, "refine_steps": estimate.metadata.get("refine_steps", 0),
        "refine_targets": estimate.metadata.get("refine_targets", "SegNet's labels"),
        "trajectory": estimate.metadata.get("trajectory", "chain"),
    }
    atomic_write_text(subject_out / "summary.json", json.dumps(summary, indent=1, default=float) + "\n")
    paths = {name: str(path) for name, path in run.paths.items()}
    return {**summary, "paths": {**paths, "summary": str(subject_out / "summary.json")}}


def run_motion_demo(cohort_folders: List[Path], out: Path, progress=None, device: str = "cpu",
                    size: str = "quick", held_out: Optional[List[Path]] = None) -> dict:
    """Train on ``cohort_folders`` and estimate the motion of every ``held_out`` subject (``held_out``
    None: train on ``cohort_folders[:-1]``, estimate the last), writing each one's outputs into
    ``out/<subject>/``; returns the training subjects and timings and, per held-out subject in
    ``"held_out"``, key numbers (indices with 95 % bounds, the analytic indices and the disk-summation
    baseline when the folder is a phantom subject) and the file paths. ``progress``: a ProgressReporter
    for the training; ``size``: ``"quick"`` (:data:`DEMO_CONFIG`) or ``"tiny"`` (``MotionConfig.tiny()``)."""
    config = MotionConfig.tiny() if size == "tiny" else DEMO_CONFIG
    train_folders, held_folders = split_cohort(cohort_folders, held_out)
    if not train_folders or not held_folders:
        raise MotionInputError(None, f"the motion demo needs >= 1 training and >= 1 held-out subject folder, got "
                                     f"{len(train_folders)} and {len(held_folders)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train = [_reduced(folder, config) for folder in train_folders]
    checkpoint = out / "motion_model.pt"
    # the checkpoint records the reduction as the preset's (resolved from each study's pixel size)
    record = preprocessing_record(train, config, preset="tiny" if size == "tiny" else "demo")
    try:
        trained = train_motion(train, config, checkpoint_path=checkpoint, resume=True, device=device,
                               progress=progress, preprocessing=record)
    except CheckpointError:  # a checkpoint of another demo version or cohort: train afresh (atomic overwrite)
        trained = train_motion(train, config, checkpoint_path=checkpoint, resume=False, device=device,
                               progress=progress, preprocessing=record)
    train_s = time.perf_counter() - start
    families = training_families(train_folders)
    held = [_estimate_held_out(trained, folder, out, families) for folder in held_folders]
    summary = {"train_subjects": [s.subject_id for s in train], "train_families": families, "train_s": train_s,
               "held_out": held, "checkpoint": str(checkpoint)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=float) + "\n")
    return {**summary, "paths": {"summary": str(out / "summary.json"), "checkpoint": str(checkpoint)}}


MOTION_INDICES = ("LVEDV", "LVESV", "LVEF", "RVEDV", "RVESV", "RVEF", "LVM")


def _trajectory_words(held: dict) -> str:
    """How the full-cycle motion of a held-out subject was obtained, for the report."""
    if held.get("trajectory") == "svf":
        return "full cycle as one velocity field fitted to the given ED/ES labels, scaled per frame"
    return (f"frame-to-frame chain, posterior mean refined on the subject in {held.get('refine_steps', 0)} steps "
            f"against {held.get('refine_targets', 'SegNet' + chr(39) + 's labels')}")


def motion_report_lines(result: dict) -> List[str]:
    """Markdown lines for the main job's report: every held-out subject's indices (with the posterior
    interval) next to the disk-summation baseline and the truth (in-family and cross-family side by side)."""
    held = result["held_out"]
    first = held[0]
    lines = ["## CardioMorphNet: motion of held-out subjects", "",
             f"Trained on {len(result['train_subjects'])} subjects ({', '.join(result['train_families'])}; ED/ES "
             f"labels; {result['train_s']:.0f} s), estimated for each held-out subject on a reduced grid "
             f"({first['pixel_mm']:.1f} mm pixels, {first['frames']} frames; {_trajectory_words(first)}; "
             + ", ".join(f"{h['subject_id']} {h['estimate_s']:.1f} s" for h in held)
             + "). A short demo training on a coarse grid: the accuracy is measured by the motion benchmark. "
             "Baseline: disk summation of the subject's given SAX labels at ED and ES (full grid).", "",
             "| held-out subject | index | CardioMorphNet | 95 % posterior interval | disk summation of SAX labels "
             "(baseline) | truth |", "|---|---|---|---|---|---|"]
    for h in held:
        truth = h.get("truth_indices") or {}
        disks = h.get("disk_summation_indices") or {}
        bounds = h.get("index_bounds95", {})
        label = subject_label({**h, "subject": h["subject_id"]})
        for name in MOTION_INDICES:
            if name in h["indices"]:
                low, high = bounds.get(name, (float("nan"), float("nan")))
                lines.append(f"| {label} | {name} | {fmt(h['indices'][name], 1)} | {fmt(low, 1)} - {fmt(high, 1)} | "
                             f"{fmt(disks.get(name), 1)} | {fmt(truth.get(name), 1)} |")
    lines.append("")
    for h in held:
        strain = ", ".join(f"{k} {v:.1f} %" for k, v in h.get("peak_strain_percent", {}).items())
        lines.append(f"- {h['subject_id']}: peak strain {strain}; DVFs (`dvf/`, grid transforms in Slicer), "
                     f"uncertainty, warped labels, strain and the volume curves in "
                     f"`{Path(h['paths']['summary']).parent}`.")
    return lines + [""]


def motion_summary_rows(result: dict) -> List[Dict]:
    """Rows of the report's held-out summary table (|LVEF error| and |LVEDV error| against the truth)."""
    rows = []
    for h in result["held_out"]:
        truth = h.get("truth_indices") or {}
        disks = h.get("disk_summation_indices") or {}
        entry = {**h, "subject": h["subject_id"]}
        for name, unit in (("LVEF", "%"), ("LVEDV", "ml")):
            if name in truth and name in h["indices"]:
                rows.append({"method": "CardioMorphNet", "metric": f"{name} abs. error {unit}", "entry": entry,
                             "value": abs(h["indices"][name] - truth[name]),
                             "baseline": abs(disks.get(name, float("nan")) - truth[name]),
                             "baseline_name": "disk summation of SAX labels"})
    return rows


__all__ = ["DEMO_CONFIG", "MOTION_INDICES", "run_motion_demo", "motion_report_lines", "motion_summary_rows"]
