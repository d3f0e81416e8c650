"""Main-job stage: train NISF++ on a phantom cohort's cine studies and reconstruct held-out subjects'
4D intensities and labels from their SAX + LAX slices (intensities only: no labels at test time).

Trains on the training studies (checkpoint ``nisf/nisf.pt``; a rerun resumes or reuses it), fits every
held-out study (latent, global pose, per-slice rigid offsets and intensity scales; network frozen; the
main job holds out one subject of the training family and one of a family the model never saw) and
writes into ``out/nisf/<subject>/`` (:func:`~CardiacMotionAtlasLib.nisf.reconstruct_subject`, the
method's one runner):

- ``intensity.nii.gz`` / ``labels.nii.gz``: the super-resolved 4D sequences on the subject's ground-truth
  grid (isotropic, RAS) at its ground-truth phases (ES included), with IJK->RAS;
- ``slices.json`` (corrected slice geometry and intensity scales), ``subject_fit.pt`` (reload with
  ``cardiac-atlas nisf sample`` for any other grid or phase count), ``indices.json`` (indices of the
  sampled labels);

and ``out/nisf/nisf_reconstruction.json``: the training subjects and, per held-out subject, Dice / HD95
per class against the phantom's analytic labels, next to the baseline of the given SAX labels resampled
to the same grid (nearest neighbour, no motion correction; note that this baseline uses the subject's
labels, which the model never sees).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..io.atomic import atomic_write_text
from ..io.layouts import read_study
from ..io.nifti import read_nifti
from ..training.progress import NullProgress, ProgressReporter
from .held_out import fmt, held_out_role, split_cohort, subject_label, training_families

CLASSES = ("LV", "myo", "RV")


def _quick_config():
    from dataclasses import replace

    from ..nisf import NISFConfig
    from ..nisf.config import FitConfig

    config = NISFConfig(steps=800, slices_per_step=12, points_per_slice=192)
    config.psf = replace(config.psf, samples=2)
    config.fit = FitConfig(steps=300, slices_per_step=12, points_per_slice=192)
    return config


def _mean_scores(predicted: np.ndarray, truth: np.ndarray, ijk_to_ras: np.ndarray) -> Dict[str, float]:
    from ..nisf.evaluation import segmentation_scores

    per_frame = [segmentation_scores(p, t, ijk_to_ras) for p, t in zip(predicted, truth)]
    return {key: float(np.nanmean([s[key] for s in per_frame])) for key in per_frame[0]}


def _reconstruct_held_out(trained, folder: Path, out: Path, train_families: Sequence[str], progress) -> Dict:
    """Reconstruct one held-out subject into ``out/<subject>/`` with the NISF++ runner (on its ground-truth
    grid at its ground-truth phases) and score it (and the SAX-label baseline) against its analytic labels."""
    from ..nisf import reconstruct_subject
    from ..nisf.evaluation import resample_sax_stack

    study = read_study(folder)
    truth = read_nifti(folder / "ground_truth" / "labels_iso.nii.gz", labels=True)
    sidecar = json.loads((folder / "phantom.json").read_text())
    phases = [float(p) for p in sidecar["gt_phases"]]
    run = reconstruct_subject(trained, study, out / study.subject_id, use_labels=False,
                              grid=(truth.ijk_to_ras, truth.shape_zyx), phases=phases, progress=progress)
    paths = {what: str(path) for what, path in run.paths.items()}

    frames = [int(f) for f in sidecar["gt_cine_frames"]]
    baseline = resample_sax_stack(study, truth.ijk_to_ras, truth.shape_zyx, frames, labels=True)
    return {"subject": study.subject_id, **held_out_role(folder, train_families), "frames": len(phases),
            "spacing_mm": float(truth.spacing[0]),
            "nisf": _mean_scores(run.labels.array, truth.array, truth.ijk_to_ras),
            "sax_nearest": _mean_scores(baseline, truth.array, truth.ijk_to_ras), **paths}


def run_nisf_demo(cohort_folders: Sequence[Path], out: Path, size: str = "quick", device: str = "auto",
                  progress: Optional[ProgressReporter] = None, held_out: Optional[Sequence[Path]] = None) -> Dict:
    """Train on ``cohort_folders`` and reconstruct every ``held_out`` subject (``held_out`` None: train on
    ``cohort_folders[:-1]``, reconstruct the last); returns key numbers and paths, one entry per held-out
    subject in ``"held_out"``. ``size``: ``"tiny"`` (seconds) or ``"quick"`` (a few minutes on 2 CPU cores)."""
    from ..nisf import NISFConfig, train_nisf

    train_folders, held_folders = split_cohort(cohort_folders, held_out)
    if not train_folders or not held_folders:
        raise ValueError(f"the NISF++ stage needs at least 1 training subject and 1 held out, got "
                         f"{len(train_folders)} and {len(held_folders)}")
    progress = progress or NullProgress()
    out = Path(out) / "nisf"
    out.mkdir(parents=True, exist_ok=True)
    config = NISFConfig.tiny() if size == "tiny" else _quick_config()

    studies = [read_study(folder) for folder in train_folders]
    checkpoint = out / "nisf.pt"
    trained = train_nisf(studies, config, checkpoint_path=checkpoint, resume=checkpoint.exists(), device=device,
                         progress=progress)
    families = training_families(train_folders)
    held = [_reconstruct_held_out(trained, folder, out, families, progress) for folder in held_folders]
    result = {"train_subjects": len(studies), "train_subject_ids": [s.subject_id for s in studies],
              "train_families": families, "steps": config.steps, "fit_steps": config.fit.steps,
              "checkpoint": str(checkpoint), "held_out": held}
    atomic_write_text(out / "nisf_reconstruction.json", json.dumps(result, indent=1))
    return result


def _mean_dice(scores: Dict[str, float]) -> float:
    return float(np.nanmean([scores[f"dice_{c}"] for c in CLASSES]))


def nisf_report_lines(result: Dict) -> List[str]:
    """Markdown lines for the main job's report: every held-out subject's Dice/HD95 next to the
    SAX-label baseline (in-family and cross-family rows side by side)."""
    def row(label: str, name: str, scores: Dict[str, float]) -> str:
        return (f"| {label} | {name} | " + " | ".join(fmt(scores[f'dice_{c}'], 3) for c in CLASSES) + " | "
                + " | ".join(fmt(scores[f'hd95_{c}'], 1) for c in CLASSES) + " |")

    held = result["held_out"]
    grids = ", ".join(f"{h['subject']} {h['spacing_mm']:.2f} mm x {h['frames']} phases" for h in held)
    lines = [
        "## NISF++: 4D labels of held-out subjects from their cine slices", "",
        f"Trained on {result['train_subjects']} subjects ({', '.join(result['train_families'])}; {result['steps']} "
        f"steps); each held-out subject reconstructed from intensities alone ({result['fit_steps']} fitting steps) "
        f"on its ground-truth grid at its ground-truth phases ({grids}): "
        + ", ".join(f"`{h['labels']}`" for h in held) + ".", "",
        "| held-out subject | method | Dice LV | Dice myo | Dice RV | HD95 LV mm | HD95 myo mm | HD95 RV mm |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for h in held:
        label = subject_label(h)
        lines += [row(label, "NISF++ (intensities only)", h["nisf"]),
                  row(label, "given SAX labels, nearest (baseline; uses the labels)", h["sax_nearest"])]
    return lines + [""]


def nisf_summary_rows(result: Dict) -> List[Dict]:
    """Rows of the report's held-out summary table."""
    return [{"method": "NISF++ (intensities only)", "metric": "mean Dice (LV, myo, RV)", "entry": h,
             "value": _mean_dice(h["nisf"]), "baseline": _mean_dice(h["sax_nearest"]),
             "baseline_name": "SAX labels resampled (nearest)"} for h in result["held_out"]]


__all__ = ["run_nisf_demo", "nisf_report_lines", "nisf_summary_rows"]
