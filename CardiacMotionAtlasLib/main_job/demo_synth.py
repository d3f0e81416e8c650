"""Demo of the generative CT motion part on the built-in synthetic cohort (the README's main job).

1. Takes the training hearts (the main job: its training subjects, posed as in their acquisitions;
   standalone: ``n_subjects - 1`` ellipsoidal phantom hearts); each gives an ES/ED CT pair with the exact
   flow on the working grid (32^3 x 4.5 mm around the heart).
2. Trains the PWC flow estimator (pyramid) and the systole-conditioned CVAE on them (checkpoints in
   ``out/model``; a rerun resumes).
3. For every held-out subject (the main job: one of the training family, one of a family the model never
   saw): reconstructs its true flow on the working grid (EPE next to the zero-flow baseline), takes its ES
   CT frame (the cohort's ``ct_ES.nii.gz`` at the subject's own protocol when present, else simulated at
   1.5 mm) and writes ``n_samples`` annotated pairs with the method's runner
   (:func:`~CardiacMotionAtlasLib.synthesis.runner.run_synthesis`) into ``out/pairs/<subject>/pair_<i>/``
   (conditioning frame, generated ED frame, flow as NIfTI + Slicer-loadable displacement field, warped labels, JSON
   record); their implied LVEF is compared with the truth and with the training cohort's mean LVEF.
4. Writes ``out/summary.json`` with the key numbers (returned as a dict too).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from ..analysis.clinical_indices import LV_BLOOD_POOL, LV_MYOCARDIUM
from ..io.atomic import atomic_write_text
from ..io.nifti import read_nifti
from ..phantom.ct import CTConfig, simulate_ct
from ..phantom.heart import PhantomHeart
from ..phantom.parameters import sample_subject_parameters
from ..synthesis import SynthConfig, phantom_pairs, run_synthesis, train_synthesis
from ..synthesis.data import stack_pairs
from ..synthesis.pairs import check_pair, read_pair
from ..training.progress import NullProgress
from .held_out import CROSS_FAMILY, IN_FAMILY, fmt, subject_label


def demo_config(seed: int = 0) -> SynthConfig:
    """The default working grid and networks with fewer steps (about 1.5 minutes on one free CPU thread)."""
    return replace(SynthConfig(seed=seed), estimator_steps=120, cvae_steps=160, checkpoint_every=40)


@dataclass
class HeldOutCT:
    """A held-out subject of the CT stage: its (posed) phantom heart and, optionally, its cohort folder,
    whose ``ct_ES.nii.gz``/``seg_ct_ES.nii.gz`` (the subject's own CT protocol) condition the generator;
    without them the ES frame is simulated with the stage's CT config."""

    heart: object
    folder: Optional[Path] = None


def _conditioning_frame(item: HeldOutCT, ct: CTConfig, seed: int):
    """(ES frame, its labels) of a held-out subject: the cohort's CT files when present, else simulated."""
    folder = None if item.folder is None else Path(item.folder)
    if folder is not None and (folder / "ct_ES.nii.gz").is_file() and (folder / "seg_ct_ES.nii.gz").is_file():
        image = read_nifti(folder / "ct_ES.nii.gz", name="ct_ES")
        labels = read_nifti(folder / "seg_ct_ES.nii.gz", labels=True, name="seg_ct_ES")
        return image, labels.array[0], "cohort CT (subject's protocol)"
    simulated = simulate_ct(item.heart, [item.heart.es_phase], ct, seed=seed)
    return simulated.image, simulated.labels.array[0], "simulated CT"


def _apply_to_held_out(trained, item: HeldOutCT, config: SynthConfig, ct: CTConfig, out: Path, seed: int,
                       n_samples: int, train_families: Sequence[str], progress) -> Dict:
    heart = item.heart
    family = getattr(heart, "family", "ellipsoidal")
    # reconstruction of the subject's true flow on the working grid (posterior mean); baseline: zero flow
    test_pair = phantom_pairs([heart], config, seed=seed)[0]
    test = stack_pairs([test_pair], config, trained.device)
    with torch.no_grad():
        features = trained.model.condition(test.es)
        mu, _ = trained.model.cvae.encode(test.flow, test.es, features)
        recon = trained.model.cvae.decode(mu, test.es, features)
    epe_vox = torch.linalg.vector_norm(recon - test.flow, dim=1)[0].cpu().numpy()
    zero_vox = torch.linalg.vector_norm(test.flow, dim=1)[0].cpu().numpy()
    heart_mask = test_pair.labels_ed > 0

    image, labels, source = _conditioning_frame(item, ct, seed)
    run = run_synthesis(trained, image, out / "pairs" / heart.subject_id, labels=labels, n=n_samples,
                        mode="random", seed=seed, es_phase=float(heart.es_phase), subject_id=heart.subject_id,
                        progress=progress)
    samples = []  # evaluation of the written pairs: annotation error, LVEF implied by the written labels
    for folder in run.folders:
        pair = read_pair(folder)
        es_labels, ed_labels = pair["labels_conditioning"].array[0], pair["labels_generated"].array[0]
        ml = pair["conditioning"].voxel_volume_ml()
        lv_es, lv_ed = (es_labels == LV_BLOOD_POOL).sum() * ml, (ed_labels == LV_BLOOD_POOL).sum() * ml
        myo_es, myo_ed = (es_labels == LV_MYOCARDIUM).sum() * ml, (ed_labels == LV_MYOCARDIUM).sum() * ml
        samples.append({
            "folder": str(folder),
            "files": {k: str(folder / v) for k, v in pair["record"]["files"].items()},
            "max_flow_mm": pair["record"]["stats"]["max_flow_mm"],
            "negative_jacobian_fraction": pair["record"]["stats"]["negative_jacobian_fraction"],
            "annotation_max_error_hu": check_pair(folder),
            "implied_lvef_pct": float(100.0 * (lv_ed - lv_es) / max(lv_ed, 1e-9)),
            "myocardial_volume_change_pct": float(100.0 * (myo_ed - myo_es) / max(myo_es, 1e-9)),
        })
    return {
        "subject": heart.subject_id, "family": family,
        "role": IN_FAMILY if family in train_families else CROSS_FAMILY,
        "conditioning": source, "ct_grid": list(image.shape_zyx),
        "reconstruction_epe_heart_vox": float(epe_vox[heart_mask].mean()),
        "reconstruction_epe_grid_vox": float(epe_vox.mean()),
        "zero_flow_epe_heart_vox": float(zero_vox[heart_mask].mean()),
        "true_lvef_pct": float(heart.clinical_indices()["LVEF"]),
        "implied_lvef_mean_pct": float(np.mean([p["implied_lvef_pct"] for p in samples])),
        "implied_lvef_range_pct": [float(min(p["implied_lvef_pct"] for p in samples)),
                                   float(max(p["implied_lvef_pct"] for p in samples))],
        "pairs": samples,
    }


def run_synth_demo(out: Union[str, Path], seed: int = 0, n_subjects: int = 8, n_samples: int = 3, progress=None,
                   config: Optional[SynthConfig] = None, device: Union[str, torch.device] = "cpu",
                   ct: Optional[CTConfig] = None, train_hearts: Optional[Sequence] = None,
                   held_out: Optional[Sequence[HeldOutCT]] = None) -> Dict:
    """Train on ``train_hearts`` and write ``n_samples`` annotated CT pairs for every ``held_out`` subject
    into ``out/pairs/<subject>/``; returns key numbers and file paths (also in ``out/summary.json``): the
    training subjects and, per held-out subject in ``"held_out"``, the reconstruction EPE of its true flow
    next to the zero-flow baseline and its samples' implied LVEF next to the truth (the first held-out
    subject's numbers are repeated at the top level). Without ``train_hearts``/``held_out``: ellipsoidal
    phantom subjects ``0 .. n_subjects - 2`` train and subject ``n_subjects - 1`` is held out.
    ``config``/``ct`` default to :func:`demo_config` and ``CTConfig()`` (1.5 mm; the held-out ES frame is
    simulated with it unless its cohort folder has CT files); tests pass tiny ones."""
    if train_hearts is None or held_out is None:
        if n_subjects < 2:
            raise ValueError(f"n_subjects must be >= 2 (training + one held-out), got {n_subjects}")
        hearts = [PhantomHeart(sample_subject_parameters(seed, i)) for i in range(n_subjects)]
        train_hearts = hearts[:-1] if train_hearts is None else train_hearts
        held_out = [HeldOutCT(hearts[-1])] if held_out is None else held_out
    train_hearts, held_out = list(train_hearts), list(held_out)
    if not train_hearts or not held_out:
        raise ValueError("the CT stage needs >= 1 training and >= 1 held-out subject")
    overlap = {h.subject_id for h in train_hearts} & {item.heart.subject_id for item in held_out}
    if overlap:
        raise ValueError(f"held-out subjects are among the training subjects: {sorted(overlap)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = (config or demo_config(seed)).validate()
    ct = ct or CTConfig()
    progress = progress or NullProgress()
    started = time.time()
    pairs = phantom_pairs(train_hearts, config, seed=seed)
    trained = train_synthesis(pairs, config, out_dir=out / "model", resume=True, device=device, progress=progress)
    train_families = sorted({getattr(h, "family", "ellipsoidal") for h in train_hearts})
    train_lvef = [float(h.clinical_indices()["LVEF"]) for h in train_hearts]
    held = [_apply_to_held_out(trained, item, config, ct, out, seed, n_samples, train_families, progress)
            for item in held_out]
    for entry in held:  # the population-prior baseline for the implied LVEF: the training subjects' mean
        entry["training_mean_lvef_pct"] = float(np.mean(train_lvef))
    first = held[0]
    summary = {
        "held_out_subject": first["subject"],
        "training_subjects": [h.subject_id for h in train_hearts],
        "train_families": train_families,
        "model": str(out / "model" / "synth.pt"),
        "model_version": trained.model_version,
        "working_grid": f"{config.working_size}^3 x {config.working_voxel_mm} mm",
        "reconstruction_epe_heart_vox": first["reconstruction_epe_heart_vox"],
        "reconstruction_epe_grid_vox": first["reconstruction_epe_grid_vox"],
        "true_lvef_pct": first["true_lvef_pct"],
        "ct_grid": first["ct_grid"],
        "pairs": first["pairs"],
        "held_out": held,
        "seconds": time.time() - started,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    return summary


def synth_sizes(size: str, seed: int = 0):
    """(SynthConfig, CTConfig) of the main job's ``size`` (``"tiny"`` or ``"quick"``)."""
    if size == "tiny":
        return replace(SynthConfig.tiny(), seed=seed), CTConfig.tiny()
    return demo_config(seed), CTConfig()


def synth_report_lines(result: Dict) -> list:
    """Markdown lines for the main job's report: every held-out subject's reconstruction EPE (zero-flow
    baseline beside it) and its generated pairs' implied LVEF against the truth (in-family and
    cross-family side by side)."""
    held = result.get("held_out") or [{"subject": result["held_out_subject"], "pairs": result["pairs"],
                                       "reconstruction_epe_heart_vox": result["reconstruction_epe_heart_vox"],
                                       "true_lvef_pct": result["true_lvef_pct"]}]
    lines = ["## Generative CT motion: annotated frame pairs for held-out subjects", "",
             f"CVAE trained on {len(result['training_subjects'])} subjects "
             f"({', '.join(result.get('train_families', []))}; working grid {result['working_grid']}); each held-out "
             "subject's ES frame (its own CT protocol when the cohort has CT) conditions the generated pairs.", "",
             "| held-out subject | true ES->ED flow reconstruction EPE in the heart, voxels | zero flow (baseline) "
             "| implied LVEF of the samples % (mean) | true LVEF % | training-cohort mean LVEF % (baseline) |",
             "|---|---|---|---|---|---|"]
    for h in held:
        lines.append(f"| {subject_label(h)} | {fmt(h['reconstruction_epe_heart_vox'])} | "
                     f"{fmt(h.get('zero_flow_epe_heart_vox'))} | {fmt(h.get('implied_lvef_mean_pct'), 1)} | "
                     f"{fmt(h['true_lvef_pct'], 1)} | {fmt(h.get('training_mean_lvef_pct'), 1)} |")
    lines += ["", "| held-out subject | pair | max flow mm | negative Jacobian % | annotation error HU | "
              "implied LVEF % | myocardial volume change % |", "|---|---|---|---|---|---|---|"]
    for h in held:
        for sample in h["pairs"]:
            lines.append(f"| {h['subject']} | `{sample['folder']}` | {sample['max_flow_mm']:.1f} | "
                         f"{100 * sample['negative_jacobian_fraction']:.3f} | "
                         f"{sample['annotation_max_error_hu']:.2g} | "
                         f"{sample['implied_lvef_pct']:.1f} | {sample['myocardial_volume_change_pct']:.1f} |")
    return lines + [""]


def synth_summary_rows(result: Dict) -> List[Dict]:
    """Rows of the report's held-out summary table."""
    rows = []
    for h in result.get("held_out", []):
        rows.append({"method": "CT motion CVAE", "metric": "flow reconstruction EPE vox", "entry": h,
                     "value": h["reconstruction_epe_heart_vox"], "baseline": h["zero_flow_epe_heart_vox"],
                     "baseline_name": "zero flow"})
        rows.append({"method": "CT motion CVAE", "metric": "implied LVEF abs. error %", "entry": h,
                     "value": abs(h["implied_lvef_mean_pct"] - h["true_lvef_pct"]),
                     "baseline": abs(h["training_mean_lvef_pct"] - h["true_lvef_pct"]),
                     "baseline_name": "training-cohort mean LVEF"})
    return rows


__all__ = ["HeldOutCT", "demo_config", "run_synth_demo", "synth_report_lines", "synth_sizes", "synth_summary_rows"]
