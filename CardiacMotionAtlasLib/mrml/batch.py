"""Headless batch: every study in a folder through the module's Logic, one Slicer scene bundle per
subject (cine slices as volume sequences with a browser, segmentations as label sequences, the clinical
indices of the SAX segmentation as a table), plus ``summary.csv``.

In 3D Slicer without a window::

    Slicer --no-main-window --python-script CardiacMotionAtlas/Scripts/CardiacMotionAtlasBatch.py \\
        --input /data/cohort --output /data/cohort_scenes

or in plain Python with ``slicer-core``: ``python -m CardiacMotionAtlasLib.mrml.batch --input ... --output ...``.

With ``--models models.json`` (a model registry, e.g. the main job's) every subject also goes through the
methods, each in a background CLI process exactly as from the GUI: NISF++ reconstructs its 4D intensities
and labels from the cine slices (``--nisf-spacing`` mm), then the atlas is fitted to those labels
(``--atlas-setting all|ed_es|ed``; without NISF++ to the SAX label stack) and its mesh sequence, template
and volume curve join the bundle.

Idempotent: a subject whose ``<subject>.mrb`` exists is skipped; bundles are written to a temporary
name and renamed; a subject that fails is recorded in the summary with its error and the batch goes on.
A problem that stops the whole batch (a bad registry, a missing input folder) exits 2 with one line naming
the file; an unexpected error exits 2 with one line and the path of a log holding the traceback.
"""

from __future__ import annotations

import argparse
import csv
import io as _io
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..errors import CardiacMotionAtlasError, run_guarded
from ..io.atomic import atomic_write_text
from .logic import CardiacMotionAtlasLogic
from .scene import create_standalone_scene, save_scene_bundle
from .tables import clinical_indices_to_table_node

SUMMARY_COLUMNS = ["subject", "status", "seconds", "error", "nisf", "atlas", "LVEDV", "LVESV", "LVEF", "RVEDV", "RVESV", "RVEF", "LVM"]


def study_folders(input_dir: Path) -> List[Path]:
    """Sub-folders of ``input_dir`` (one study each), sorted; hidden folders are ignored."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise CardiacMotionAtlasError(f"{input_dir}: input folder does not exist")
    return sorted(p for p in input_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def _run_methods(scene, folder: Path, study, logic: CardiacMotionAtlasLogic, models: Dict[str, Path], work: Path,
                 atlas_setting: str, nisf_spacing: float, row: Dict) -> None:
    """NISF++ then atlas fit for one subject (see the module docstring); raises on a failed run."""
    labels_source = None
    if "nisf" in models:
        run = logic.run_nisf_reconstruction(scene, models["nisf"], folder, spacing_mm=nisf_spacing, wait=True,
                                            work_dir=work / "nisf")
        if not run.ok:
            raise CardiacMotionAtlasError(f"NISF++ failed: {run.error_message()}")
        labels_source = run.output_dir / "labels.nii.gz"
        row["nisf"] = "ok"
    if "atlas" in models:
        if labels_source is None:
            if not study.sax or any(s.labels is None for s in study.sax):
                raise CardiacMotionAtlasError(f"{folder}: no labels for the atlas fit (no NISF++ model, no SAX labels)")
            labels_source = study.sax_stack(labels=True)
        run = logic.run_atlas_fit(scene, models["atlas"], labels_source, atlas_setting, wait=True,
                                  work_dir=work / "atlas")
        if not run.ok:
            raise CardiacMotionAtlasError(f"atlas fit failed: {run.error_message()}")
        row["atlas"] = "ok"


def process_subject(folder: Path, output_dir: Path, logic: CardiacMotionAtlasLogic,
                    models: Optional[Dict[str, Path]] = None, atlas_setting: str = "all",
                    nisf_spacing: float = 2.0) -> Dict:
    """Load one study into a fresh scene, add its indices table (and the method results with ``models``:
    ``method -> checkpoint``) and save ``<subject>.mrb``."""
    from ..analysis.clinical_indices import clinical_indices_from_labels
    from ..io.layouts import read_study

    app = create_standalone_scene()
    try:
        scene = app.scene
        logic.load_study(scene, folder)
        study = read_study(folder)
        row: Dict = {"subject": study.subject_id}
        if study.sax and all(s.labels is not None for s in study.sax):
            indices = clinical_indices_from_labels(study.sax_stack(labels=True), ed_frame=study.ed_frame,
                                                   es_frame=study.es_frame)
            clinical_indices_to_table_node(scene, indices, name=f"{study.subject_id} clinical indices",
                                           subject_ids=[study.subject_id])
            row.update(indices.as_dict())
        if models:
            with tempfile.TemporaryDirectory(prefix=f".{folder.name}.runs.", dir=output_dir) as work:
                _run_methods(scene, folder, study, logic, models, Path(work), atlas_setting, nisf_spacing, row)
        destination = output_dir / f"{folder.name}.mrb"
        # MRML names the bundle's inner folder after the file, so write the real name in a private
        # temporary folder next to the destination, then rename (same file system: atomic)
        with tempfile.TemporaryDirectory(prefix=f".{folder.name}.", dir=output_dir) as staging:
            save_scene_bundle(scene, Path(staging) / destination.name)
            os.replace(Path(staging) / destination.name, destination)
        return row
    finally:
        app.close()


def models_from_registry(registry: Path) -> Dict[str, Path]:
    """``method -> checkpoint`` (first registered model of each method, sha256 verified)."""
    from ..registry import list_models, resolve_checkpoint

    found: Dict[str, Path] = {}
    for name, model in sorted(list_models(registry).items()):
        if model.method in ("nisf", "atlas") and model.method not in found:
            found[model.method] = resolve_checkpoint(registry, name, model.method)
    return found


def process_folder(input_dir: Path, output_dir: Path, progress=None, models: Optional[Dict[str, Path]] = None,
                   atlas_setting: str = "all", nisf_spacing: float = 2.0) -> List[Dict]:
    """Process every study folder; returns the summary rows (also written to ``summary.csv``)."""
    output_dir = Path(output_dir)
    folders = study_folders(input_dir)  # a bad input folder is refused before anything is created
    output_dir.mkdir(parents=True, exist_ok=True)
    logic = CardiacMotionAtlasLogic()
    rows = []
    if progress is not None:
        progress.start(len(folders), "batch")
    for index, folder in enumerate(folders):
        start = time.perf_counter()
        if (output_dir / f"{folder.name}.mrb").exists():
            row = {"subject": folder.name, "status": "skipped (done)"}
        else:
            try:
                row = {**process_subject(folder, output_dir, logic, models, atlas_setting, nisf_spacing),
                       "status": "ok"}
            except Exception as error:  # noqa: BLE001 - one bad subject must not stop the cohort
                row = {"subject": folder.name, "status": "failed", "error": f"{type(error).__name__}: {error}"}
        row["seconds"] = round(time.perf_counter() - start, 2)
        rows.append(row)
        if progress is not None:
            progress.update(index + 1, subject=folder.name, status=row["status"])
    if progress is not None:
        progress.close()
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, SUMMARY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.2f}" if isinstance(v, (float, np.floating)) else v) for k, v in row.items()})
    atomic_write_text(output_dir / "summary.csv", buffer.getvalue())
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    from ..training.progress import make_progress_reporter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="folder of study folders")
    parser.add_argument("--output", type=Path, required=True, help="where the .mrb bundles and summary.csv go")
    parser.add_argument("--models", type=Path, help="model registry (JSON): also run NISF++ and the atlas fit")
    parser.add_argument("--atlas-setting", choices=("all", "ed_es", "ed"), default="all")
    parser.add_argument("--nisf-spacing", type=float, default=2.0, help="NISF++ output grid spacing (mm)")
    parser.add_argument("--progress", default="auto", choices=("auto", "bar", "lines", "none"))
    args = parser.parse_args(argv)

    def run() -> int:
        models = models_from_registry(args.models) if args.models else None
        rows = process_folder(args.input, args.output, make_progress_reporter(args.progress), models,
                              args.atlas_setting, args.nisf_spacing)
        failed = [r for r in rows if r["status"] == "failed"]
        print(f"{len(rows) - len(failed)} of {len(rows)} subjects done; summary: {args.output / 'summary.csv'}")
        for row in failed:
            print(f"  {row['subject']}: {row['error']}")
        return 1 if failed else 0

    return run_guarded("CardiacMotionAtlas batch", run)


if __name__ == "__main__":
    raise SystemExit(main())
