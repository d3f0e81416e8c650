"""The README's main job on the built-in synthetic cohort.

1. Writes a phantom cohort (UK Biobank-style studies + ground truth; resumable).
2. Reads every study back with the same reader used for real cohorts.
3. Measures clinical indices from the SAX segmentations (disk summation) and from the ground-truth
   meshes, and compares both with the phantom's analytic indices.
4. Writes ``indices.csv``, ``volume_curves.png`` and ``report.md`` into the output folder.
5. Runs the method stages on the cohort, each training on all subjects but the last and applying the
   model to that held-out subject (see each stage's module): ``atlas`` (NDF atlas, whole cycle from the
   ED frame alone, :mod:`.demo_atlas`) and ``nisf`` (NISF++ 4D labels from the cine slices,
   :mod:`.demo_nisf`). Their sections are appended to ``report.md``.
"""

from __future__ import annotations

import csv
import io as _io
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..analysis.clinical_indices import clinical_indices_from_labels, clinical_indices_from_meshes
from ..analysis.volume_curves import VolumeCurve, plot_volume_curves
from ..io.atomic import atomic_write_text
from ..io.layout_ukbb import read_ukbb_study
from ..io.meshes import read_mesh_sequence
from ..phantom.cohort import SIDECAR, CohortConfig, write_cohort
from ..training.progress import NullProgress, ProgressReporter
from .sax_stack import sax_stack

INDEX_NAMES = ("LVEDV", "LVESV", "LVEF", "RVEDV", "RVESV", "RVEF", "LVM")


def measure_subject(folder: Path) -> Dict:
    """Indices of one cohort subject: truth, from SAX labels, from ground-truth meshes."""
    study = read_ukbb_study(folder)
    sidecar = json.loads((folder / SIDECAR).read_text())
    labels = sax_stack(study, labels=True)
    from_labels = clinical_indices_from_labels(labels, ed_frame=study.ed_frame, es_frame=study.es_frame).as_dict()
    gt_phases = sidecar["gt_phases"]
    cavity = read_mesh_sequence(sorted((folder / "ground_truth" / "meshes").glob("lv_cavity_*.vtp")), phases=gt_phases)
    wall = read_mesh_sequence(sorted((folder / "ground_truth" / "meshes").glob("myocardium_*.vtp")), phases=gt_phases)
    from_meshes = clinical_indices_from_meshes(cavity, lv_myocardium=wall, ed_frame=0,
                                               es_frame=sidecar["gt_es_index"]).as_dict()
    volume_ml = labels.voxel_volume_ml()
    curve = (labels.array == 1).reshape(labels.n_frames, -1).sum(1) * volume_ml
    return {
        "subject": study.subject_id,
        "kind": sidecar["parameters"]["kind"],
        "truth": sidecar["clinical_indices"],
        "sax_labels": from_labels,
        "meshes": from_meshes,
        "lv_curve": VolumeCurve(labels.phases, curve, f"{study.subject_id} LV (SAX labels)"),
        "lv_truth": VolumeCurve(np.asarray(sidecar["volume_curve"]["phases"]),
                                np.asarray(sidecar["volume_curve"]["lv_ml"]), f"{study.subject_id} LV truth"),
    }


def _csv(rows: List[Dict]) -> str:
    buffer = _io.StringIO()
    columns = ["subject", "kind"] + [f"{name}_{source}" for name in INDEX_NAMES
                                     for source in ("truth", "sax_labels", "meshes")]
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    for row in rows:
        record = {"subject": row["subject"], "kind": row["kind"]}
        for name in INDEX_NAMES:
            for source in ("truth", "sax_labels", "meshes"):
                value = row[source].get(name, float("nan"))
                record[f"{name}_{source}"] = f"{value:.2f}"
        writer.writerow(record)
    return buffer.getvalue()


def _report(rows: List[Dict], out: Path, config: CohortConfig) -> str:
    lines = ["# CardiacMotionAtlas: synthetic cohort report", "",
             f"{len(rows)} phantom subjects (seed {config.seed}); cine CMR {config.cmr.n_frames} frames, "
             f"{config.cmr.pixel_mm} mm pixels, {config.cmr.slice_thickness_mm} mm slices every "
             f"{config.cmr.slice_spacing_mm} mm.", "",
             "Clinical indices: analytic truth / from SAX segmentations (disk summation) / from ground-truth meshes.", "",
             "| subject | kind | " + " | ".join(INDEX_NAMES) + " |", "|---|---|" + "---|" * len(INDEX_NAMES)]
    for row in rows:
        cells = [" / ".join(f"{row[s][n]:.1f}" for s in ("truth", "sax_labels", "meshes")) for n in INDEX_NAMES]
        lines.append(f"| {row['subject']} | {row['kind']} | " + " | ".join(cells) + " |")
    lines += ["", "Mean absolute error of the SAX-segmentation indices against the truth "
              "(the limit of disk summation at this slice spacing):", ""]
    for name in INDEX_NAMES:
        errors = [abs(r["sax_labels"][name] - r["truth"][name]) for r in rows]
        lines.append(f"- {name}: {np.mean(errors):.2f}")
    lines += ["", "Files:", f"- cohort (UK Biobank-style studies + ground_truth/): `{out / 'cohort'}`",
              f"- indices: `{out / 'indices.csv'}`", f"- volume curves: `{out / 'volume_curves.png'}`"]
    return "\n".join(lines) + "\n"


STAGES = ("atlas", "nisf")
MODEL_REGISTRY = "models.json"
"""Method stages of the main job, in the order they run."""


def _run_stages(stages: Sequence[str], folders: List[Path], out: Path, size: str, device: str,
                progress: ProgressReporter) -> List[str]:
    """Run the method stages; returns their report lines."""
    from ..registry import register_checkpoint

    lines: List[str] = []
    source = f"CardiacMotionAtlas main job ({size}) on the synthetic cohort, trained on {len(folders) - 1} subjects"
    for stage in stages:
        if stage == "atlas":
            from .demo_atlas import atlas_report_lines, run_atlas_demo
            result = run_atlas_demo(folders, out, size=size, device=device, progress=progress)
            lines += atlas_report_lines(result)
            register_checkpoint(out / MODEL_REGISTRY, f"phantom-atlas-{size}", "atlas", result["checkpoint"], source)
        elif stage == "nisf":
            from .demo_nisf import nisf_report_lines, run_nisf_demo
            result = run_nisf_demo(folders, out, size=size, device=device, progress=progress)
            lines += nisf_report_lines(result)
            register_checkpoint(out / MODEL_REGISTRY, f"phantom-nisf-{size}", "nisf", result["checkpoint"], source)
        else:
            raise ValueError(f"unknown main-job stage {stage!r} (known: {', '.join(STAGES)})")
    if stages:
        lines += [f"Trained models are listed (with sha256) in `{out / MODEL_REGISTRY}`.", ""]
    return lines


def run_synthetic_cohort(out: Path, config: Optional[CohortConfig] = None,
                         progress: Optional[ProgressReporter] = None, stages: Sequence[str] = STAGES,
                         size: str = "quick", device: str = "auto") -> Path:
    """Run the main job into ``out``; returns the report path. ``stages``: method stages to run after
    the indices (any of :data:`STAGES`); ``size``: ``"quick"`` or ``"tiny"`` models."""
    out = Path(out)
    config = config or CohortConfig()
    progress = progress or NullProgress()
    folders = write_cohort(out / "cohort", config, progress)
    rows = []
    progress.start(len(folders), "measure indices")
    for index, folder in enumerate(folders):
        rows.append(measure_subject(folder))
        progress.update(index + 1, subject=folder.name)
    progress.close()
    atomic_write_text(out / "indices.csv", _csv(rows))
    curves = {}
    for row in rows:
        curves[row["lv_curve"].name] = row["lv_curve"]
    plot_volume_curves(curves, out / "volume_curves.png", title="LV volume from SAX segmentations")
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        raise ValueError(f"unknown main-job stage(s) {unknown} (known: {', '.join(STAGES)})")
    stage_lines = _run_stages(stages, folders, out, size, device, progress)
    report = out / "report.md"
    atomic_write_text(report, _report(rows, out, config) + ("\n" + "\n".join(stage_lines) if stage_lines else ""))
    return report


__all__ = ["INDEX_NAMES", "STAGES", "measure_subject", "run_synthetic_cohort"]
