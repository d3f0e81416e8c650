"""Main-job stage: train the NDF atlas on a phantom cohort and recover held-out subjects' whole cycles
from their ED frame alone (the CT-style setting).

Reads the cohort folders written by :func:`~CardiacMotionAtlasLib.phantom.cohort.write_cohort` (their
ground-truth 4D label maps, as a user would give per-frame segmentations), trains on the training
subjects (checkpoint ``atlas/atlas.pt``; a rerun resumes or reuses it), fits every held-out subject's
codes from its ED frame (the main job holds out one subject of the training family and one of a family
the atlas never saw), and writes into ``out/atlas/``:

- ``template/atlas_template_myocardium_NNN.vtp``: the atlas template over the cycle (canonical frame, mm);
- per held-out subject, in ``<subject>/``, what the atlas' runner writes
  (:func:`~CardiacMotionAtlasLib.atlas.runner.run_atlas_fit`, the same call as ``cardiac-atlas atlas fit``
  and the batch's ``atlas-fit``): ``meshes/<subject>_atlas_myocardium_NNN.vtp``, the recovered LV
  myocardium over the cycle (RAS mm, ``phases`` equally spaced phases, one vertex set and face list
  shared by every frame and subject), ``<subject>_codes.pt`` (the fitted codes; reload with
  ``cardiac-atlas atlas mesh --subject``), ``volume_curve.png``/``.json`` (the recovered LV cavity volume);
  and this stage's ``volume_curve_vs_truth.png`` (recovered vs true LV cavity volume);
- ``atlas_fit.json``: the training subjects and, per held-out subject, the surface errors (chamfer /
  HD95, mm) at the ground-truth phases and the LVEF next to the static-ED baseline (the ED mesh held
  still: what the ED frame alone gives without a motion model), the chamfer at the observed ED frame,
  and the recovered ES phase and LVEF with their spread over codes drawn with the training codes'
  variance (:func:`~CardiacMotionAtlasLib.atlas.timing.prediction_spread`: ED alone does not show them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..analysis.volume_curves import VolumeCurve, plot_volume_curves
from ..io.atomic import atomic_write_text
from ..io.meshes import read_mesh_sequence, write_mesh_sequence
from ..metrics.surface import chamfer_distance, hausdorff95
from ..training.progress import NullProgress, ProgressReporter
from .held_out import fmt, held_out_role, split_cohort, subject_label, training_families

TRUTH_CURVE_PNG = "volume_curve_vs_truth.png"
"""Per held-out subject: recovered vs true LV cavity volume at the ground-truth phases (beside the runner's
``volume_curve.png``, the recovered curve alone)."""


def _truth_meshes(folder: Path):
    sidecar = json.loads((folder / "phantom.json").read_text())
    phases = [float(p) for p in sidecar["gt_phases"]]
    files = sorted((folder / "ground_truth" / "meshes").glob("myocardium_*.vtp"))
    return read_mesh_sequence(files, phases=phases, name="myocardium"), int(sidecar["gt_es_index"])


def _surface_errors(predicted, truth) -> np.ndarray:
    """``(t, 2)`` chamfer and HD95 (mm) per frame, vertex-to-surface in both directions."""
    return np.array([[chamfer_distance((predicted.vertices[i], predicted.faces), (truth.vertices[i], truth.faces)),
                      hausdorff95((predicted.vertices[i], predicted.faces), (truth.vertices[i], truth.faces))]
                     for i in range(truth.n_frames)])


def _fit_held_out(atlas, folder: Path, seed: int, out: Path, phases: int, motion, sampling, fit_config, mesh_config,
                  train_families: Sequence[str], progress) -> Dict:
    """Fit one held-out subject from its ED frame with the atlas' runner (its outputs in
    ``out/<subject>/``), and measure it against its ground truth next to the static-ED baseline."""
    from ..atlas.evaluation import cavity_volume_curve
    from ..atlas.inputs import subject_from_label_input
    from ..atlas.meshing import subject_mesh_sequence
    from ..atlas.runner import run_atlas_fit
    from ..atlas.timing import prediction_spread

    data = subject_from_label_input(folder, sampling, seed=seed)
    run = run_atlas_fit(atlas, data, out / data.subject_id, setting="ed", phases=phases, fit_config=fit_config,
                        mesh_config=mesh_config, motion=motion, write_template=False, progress=progress)
    fitted, mesh, subject_out = run.fitted, run.meshes, out / data.subject_id

    truth, es_index = _truth_meshes(folder)
    at_truth = subject_mesh_sequence(atlas, fitted, truth.phases, motion, mesh_config)
    errors = _surface_errors(at_truth, truth)
    static = _surface_errors(type(truth)(np.repeat(truth.vertices[:1], truth.n_frames, 0), truth.faces,
                                         truth.phases), truth)
    recovered_ml = cavity_volume_curve(at_truth, fitted.frame)
    true_ml = cavity_volume_curve(truth, fitted.frame)
    plot_volume_curves([VolumeCurve(truth.phases, true_ml, f"{fitted.subject_id} truth"),
                        VolumeCurve(truth.phases, recovered_ml, f"{fitted.subject_id} atlas (ED alone)")],
                       subject_out / TRUTH_CURVE_PNG,
                       title="LV cavity volume: atlas motion recovered from ED alone")

    def ef(curve: np.ndarray) -> float:
        return float(100.0 * (curve[0] - curve[es_index]) / curve[0])

    # what ED alone does not show, stated as a spread over codes drawn with the training codes' variance
    spread = prediction_spread(atlas, fitted, motion, mesh_config, n_samples=8, seed=seed)

    return {
        "subject": fitted.subject_id, **held_out_role(folder, train_families), "fit_seconds": fitted.seconds,
        "chamfer_mm": float(errors[:, 0].mean()), "hd95_mm": float(errors[:, 1].mean()),
        "ES_chamfer_mm": float(errors[es_index, 0]),
        "static_ED_chamfer_mm": float(static[:, 0].mean()), "static_ED_hd95_mm": float(static[:, 1].mean()),
        "static_ED_ES_chamfer_mm": float(static[es_index, 0]),
        "EF_recovered_pct": ef(recovered_ml), "EF_true_pct": ef(true_ml), "EF_static_ED_pct": 0.0,
        "ED_chamfer_mm": float(errors[0, 0]) if abs(float(truth.phases[0])) < 1e-6 else None,
        "ES_phase_true": float(truth.phases[es_index]), "ES_phase_recovered": spread["es_phase"],
        "ES_phase_samples_mean": spread["es_phase_mean"], "ES_phase_samples_sd": spread["es_phase_sd"],
        "EF_samples_mean_pct": spread["lvef_mean"], "EF_samples_sd_pct": spread["lvef_sd"],
        "spread_samples": spread["n_samples"], "residual_warp": fitted.residual is not None,
        "n_vertices": int(mesh.n_vertices), "meshes": str(run.paths["meshes"]), "codes": str(run.paths["codes"]),
        "volume_curve": str(subject_out / TRUTH_CURVE_PNG), "n_meshes": int(mesh.n_frames),
    }


def run_atlas_demo(cohort_folders: Sequence[Path], out: Path, size: str = "quick", phases: int = 25,
                   device: str = "auto", progress: Optional[ProgressReporter] = None,
                   held_out: Optional[Sequence[Path]] = None) -> Dict:
    """Train on ``cohort_folders`` and fit every ``held_out`` subject from ED alone (``held_out`` None:
    train on ``cohort_folders[:-1]``, hold out the last); returns key numbers and paths, one entry per
    held-out subject in ``"held_out"`` (see the module docstring). ``size``: ``"tiny"`` (seconds) or
    ``"quick"`` (minutes)."""
    from ..atlas.config import AtlasConfig, FitConfig, MeshConfig
    from ..atlas.inputs import subject_from_label_input
    from ..atlas.meshing import template_mesh_sequence, track_template
    from ..atlas.train import train_atlas

    train_folders, held_folders = split_cohort(cohort_folders, held_out)
    if len(train_folders) < 2 or not held_folders:
        raise ValueError(f"the atlas stage needs at least 2 training subjects and 1 held out, got "
                         f"{len(train_folders)} and {len(held_folders)}")
    progress = progress or NullProgress()
    out = Path(out) / "atlas"
    out.mkdir(parents=True, exist_ok=True)
    tiny = size == "tiny"
    config = AtlasConfig.tiny() if tiny else AtlasConfig.quick()
    fit_config = FitConfig.tiny() if tiny else FitConfig(steps=200, points_per_frame=1000)
    mesh_config = MeshConfig.tiny() if tiny else MeshConfig(resolution=56, tracking_steps=24)

    train_subjects = [subject_from_label_input(folder, config.sampling, seed=index)
                      for index, folder in enumerate(train_folders)]
    checkpoint = out / "atlas.pt"
    atlas = train_atlas(train_subjects, config, device=device, checkpoint_path=checkpoint,
                        resume=checkpoint.exists(), progress=progress)

    motion = track_template(atlas, mesh_config)
    cycle = np.arange(phases) / phases
    template = template_mesh_sequence(atlas, cycle, motion, mesh_config)
    write_mesh_sequence(template, out / "template", name=template.name)
    families = training_families(train_folders)
    held = [_fit_held_out(atlas, folder, len(train_folders) + 1 + k, out, phases, motion, config.sampling, fit_config,
                          mesh_config, families, progress) for k, folder in enumerate(held_folders)]
    result = {
        "setting": "ed", "train_subjects": len(train_subjects),
        "train_subject_ids": [folder.name for folder in train_folders], "train_families": families,
        "train_seconds_per_step": atlas.training_seconds_per_step, "checkpoint": str(checkpoint),
        "template": str(out / "template"), "held_out": held,
    }
    atomic_write_text(out / "atlas_fit.json", json.dumps(result, indent=1))
    return result


def atlas_report_lines(result: Dict) -> List[str]:
    """Markdown lines for the main job's report: every held-out subject's surface errors and LVEF
    next to the static-ED baseline (in-family and cross-family rows side by side)."""
    held = result["held_out"]
    fit_times = ", ".join(f"{h['subject']} {h['fit_seconds']:.1f} s" for h in held)
    lines = [
        "## NDF atlas: whole cycle recovered from the ED frame alone", "",
        f"Atlas trained on {result['train_subjects']} subjects ({', '.join(result['train_families'])}; "
        f"{result['train_seconds_per_step']:.2f} s/step); each held-out subject fitted from its ED frame alone "
        f"({fit_times}); {held[0]['n_meshes']} meshes of "
        f"{held[0]['n_vertices']} vertices per subject (shared connectivity) in "
        f"`{Path(held[0]['meshes']).parent.parent}/<subject>/meshes`, template in `{result['template']}`.", "",
        "| held-out subject | method | chamfer mm | HD95 mm | chamfer at ES mm | LVEF % (truth) |",
        "|---|---|---|---|---|---|",
    ]
    for h in held:
        label = subject_label(h)
        lines += [f"| {label} | atlas, ED alone | {fmt(h['chamfer_mm'])} | {fmt(h['hd95_mm'])} | "
                  f"{fmt(h['ES_chamfer_mm'])} | {fmt(h['EF_recovered_pct'], 1)} ({fmt(h['EF_true_pct'], 1)}) |",
                  f"| {label} | static ED mesh (baseline) | {fmt(h['static_ED_chamfer_mm'])} | "
                  f"{fmt(h['static_ED_hd95_mm'])} | {fmt(h['static_ED_ES_chamfer_mm'])} | "
                  f"{fmt(h['EF_static_ED_pct'], 1)} ({fmt(h['EF_true_pct'], 1)}) |"]
    lines += ["", "Surface errors against the ground-truth myocardium, mean over the ground-truth phases; LVEF "
              "measured the same way on the recovered and the true meshes. Volume curves: "
              + ", ".join(f"`{h['volume_curve']}`" for h in held) + ".", ""]
    spread = [h for h in held if "EF_samples_sd_pct" in h]
    if spread:
        lines += ["From ED alone the motion and timing come from the cohort; their spread over "
                  f"{spread[0]['spread_samples']} codes drawn around the fit with the training codes' variance (mean +/- sd):", ""]
        lines += [f"- {subject_label(h)}: observed ED frame chamfer {fmt(h.get('ED_chamfer_mm'))} mm; ES phase "
                  f"{fmt(h['ES_phase_recovered'])} (samples {fmt(h['ES_phase_samples_mean'])} +/- "
                  f"{fmt(h['ES_phase_samples_sd'])}, truth {fmt(h['ES_phase_true'])}); LVEF "
                  f"{fmt(h['EF_recovered_pct'], 1)} % (samples {fmt(h['EF_samples_mean_pct'], 1)} +/- "
                  f"{fmt(h['EF_samples_sd_pct'], 1)} %, truth {fmt(h['EF_true_pct'], 1)} %)" for h in spread]
        lines.append("")
    return lines


def atlas_summary_rows(result: Dict) -> List[Dict]:
    """Rows of the report's held-out summary table."""
    return [row for h in result["held_out"] for row in (
        {"method": "NDF atlas (ED alone)", "metric": "chamfer mm", "entry": h, "value": h["chamfer_mm"],
         "baseline": h["static_ED_chamfer_mm"], "baseline_name": "static ED mesh"},
        {"method": "NDF atlas (ED alone)", "metric": "LVEF abs. error %", "entry": h,
         "value": abs(h["EF_recovered_pct"] - h["EF_true_pct"]),
         "baseline": abs(h["EF_static_ED_pct"] - h["EF_true_pct"]), "baseline_name": "static ED mesh"})]


__all__ = ["run_atlas_demo", "atlas_report_lines", "atlas_summary_rows"]
