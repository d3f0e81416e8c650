"""The README main job's motion stage: CardioMorphNet trained on all but the last subject of a phantom
cohort (``phantom.cohort.write_cohort`` folders) and applied to the held-out last subject.

To stay within ~3 minutes on one CPU thread the sequences are reduced (in-plane pixels of ~4 mm, a
~125 mm crop around the heart, 8 frames with ED and ES kept) and the model is small and briefly trained:
a demonstration of the outputs, not of the accuracy (see ``benchmarks/motion.py`` for that). Outputs
(all written atomically into ``out``): ``dvf/ed_to_frameNN.nii.gz`` (+ ``_uncertainty``), 
``uncertainty.nii.gz``, ``displacement_std.nii.gz``, ``warped_labels.nii.gz``, ``indices.csv/json``,
``strain.csv``, ``volumes.csv``, ``volume_curves.png``, ``summary.json`` and the checkpoint
``motion_model.pt`` (a rerun resumes from it; one of another configuration is replaced).
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
from ..motion import MotionConfig, estimate_motion, sequence_from_study, train_motion, write_motion_outputs
from ..motion.data import MotionSequence, evenly_spaced_frames, resample_sequence
from ..motion.errors import MotionInputError

DEMO_CONFIG = MotionConfig(seg_steps=300, steps=100, seg_batch=2, posterior_samples=8, checkpoint_every=20)
TARGET_PIXEL_MM, CROP_MM, FRAMES = 4.0, 125.0, 8


def _reduced(folder: Path, config: MotionConfig = DEMO_CONFIG) -> MotionSequence:
    sequence = sequence_from_study(read_ukbb_study(folder), config.intensity_percentile, ed_es_only=True)
    pixel = float(sequence.spacing[0])
    factor = max(1, int(round(TARGET_PIXEL_MM / pixel)))
    crop = int(4 * round(CROP_MM / (pixel * factor) / 4))
    frames = evenly_spaced_frames(sequence.n_frames, FRAMES, sequence.ed_frame, sequence.es_frame)
    return resample_sequence(sequence, factor, crop, frames)


def _truth(folder: Path) -> Optional[Dict[str, float]]:
    sidecar = folder / "phantom.json"
    if not sidecar.is_file():
        return None
    return {k: float(v) for k, v in json.loads(sidecar.read_text()).get("clinical_indices", {}).items()}


def run_motion_demo(cohort_folders: List[Path], out: Path, progress=None, device: str = "cpu",
                    size: str = "quick") -> dict:
    """Train on ``cohort_folders[:-1]``, estimate the motion of ``cohort_folders[-1]``, write the outputs
    into ``out``; returns key numbers (indices with 95 % bounds, analytic indices when the folder is a
    phantom subject, timings) and the file paths. ``progress``: a ProgressReporter for the training;
    ``size``: ``"quick"`` (:data:`DEMO_CONFIG`) or ``"tiny"`` (``MotionConfig.tiny()``, tests)."""
    config = MotionConfig.tiny() if size == "tiny" else DEMO_CONFIG
    folders = [Path(f) for f in cohort_folders]
    if len(folders) < 2:
        raise MotionInputError(None, f"the motion demo needs >= 2 subject folders (train + held-out), got {len(folders)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    train = [_reduced(folder, config) for folder in folders[:-1]]
    held_out = _reduced(folders[-1], config)
    checkpoint = out / "motion_model.pt"
    try:
        trained = train_motion(train, config, checkpoint_path=checkpoint, resume=True, device=device,
                               progress=progress)
    except CheckpointError:  # a checkpoint of another demo version or cohort: train afresh (atomic overwrite)
        trained = train_motion(train, config, checkpoint_path=checkpoint, resume=False, device=device,
                               progress=progress)
    train_s = time.perf_counter() - start
    t0 = time.perf_counter()
    estimate = estimate_motion(trained, held_out)
    estimate_s = time.perf_counter() - t0
    paths = write_motion_outputs(estimate, out)
    truth = _truth(folders[-1])
    summary = {
        "subject_id": held_out.subject_id,
        "train_subjects": [s.subject_id for s in train],
        "grid_zyx": list(held_out.shape_zyx), "frames": held_out.n_frames,
        "pixel_mm": float(held_out.spacing[0]),
        "indices": estimate.indices,
        "index_bounds95": {k: list(v) for k, v in estimate.index_bounds.items()},
        "truth_indices": truth,
        "peak_strain_percent": {k: float(v[np.argmax(np.abs(v))]) for k, v in estimate.strain.items()},
        "mean_uncertainty_nats_myocardium_es": float(estimate.entropy[estimate.es_frame][estimate.ed_labels == 2].mean()),
        "train_s": train_s, "estimate_s": estimate_s, "refine_steps": estimate.metadata.get("refine_steps", 0),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=float) + "\n")
    paths["summary"] = str(out / "summary.json")
    paths["checkpoint"] = str(out / "motion_model.pt")
    return {**summary, "paths": paths}


def motion_report_lines(result: dict) -> List[str]:
    """Markdown lines for the main job's report."""
    names = ("LVEDV", "LVESV", "LVEF", "RVEDV", "RVESV", "RVEF", "LVM")
    truth = result.get("truth_indices") or {}
    bounds = result.get("index_bounds95", {})
    rows = []
    for name in names:
        if name in result["indices"]:
            low, high = bounds.get(name, (float("nan"), float("nan")))
            rows.append(f"| {name} | {result['indices'][name]:.1f} | {low:.1f} - {high:.1f} | "
                        f"{truth.get(name, float('nan')):.1f} |")
    strain = ", ".join(f"{k} {v:.1f} %" for k, v in result.get("peak_strain_percent", {}).items())
    return ["## CardioMorphNet: motion of a held-out subject", "",
            f"Trained on {len(result['train_subjects'])} subjects (ED/ES labels; {result['train_s']:.0f} s), estimated "
            f"for {result['subject_id']} in {result['estimate_s']:.1f} s on a reduced grid ({result['pixel_mm']:.1f} mm "
            f"pixels, {result['frames']} frames; posterior mean refined on the subject against SegNet's labels in "
            f"{result.get('refine_steps', 0)} steps). A short demo training on a coarse grid: the accuracy is "
            f"measured by the motion benchmark.", "",
            "| index | estimated | 95 % posterior interval | truth |", "|---|---|---|---|", *rows, "",
            f"Peak strain: {strain}. DVFs (`dvf/`, grid transforms in Slicer), uncertainty, warped labels, strain "
            f"and the volume curves: `{Path(result['paths']['summary']).parent}`.", ""]


__all__ = ["DEMO_CONFIG", "run_motion_demo", "motion_report_lines"]
