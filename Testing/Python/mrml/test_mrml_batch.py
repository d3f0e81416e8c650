"""Headless batch over a phantom cohort with the real MRML library."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

from CardiacMotionAtlasLib.mrml.scene import create_standalone_scene, load_scene_bundle  # noqa: E402
from CardiacMotionAtlasLib.mrml.tables import table_node_to_indices  # noqa: E402
from CardiacMotionAtlasLib.phantom.cohort import CohortConfig, write_cohort  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[3] / "CardiacMotionAtlas" / "Scripts" / "CardiacMotionAtlasBatch.py"


def test_batch_script_writes_bundles_and_reports_bad_subjects(tmp_path):
    config = CohortConfig.tiny(1)
    config.ct = None
    cohort = tmp_path / "cohort"
    write_cohort(cohort, config)
    broken = cohort / "broken_subject"
    broken.mkdir()
    (broken / "sa.nii.gz").write_bytes(b"not a nifti file")
    out = tmp_path / "scenes"
    result = subprocess.run([sys.executable, str(SCRIPT), "--input", str(cohort), "--output", str(out),
                             "--progress", "none"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr  # one subject failed
    assert "broken_subject" in result.stdout and "sa.nii.gz" in result.stdout
    rows = {r["subject"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["phantom000"]["status"] == "ok" and rows["broken_subject"]["status"] == "failed"
    assert sorted(p.name for p in out.iterdir()) == ["phantom000.mrb", "summary.csv"]  # nothing partial

    app = create_standalone_scene()
    try:
        load_scene_bundle(app.scene, out / "phantom000.mrb")
        tables = [n for n in app.scene.GetNodesByClass("vtkMRMLTableNode") if "clinical indices" in n.GetName()]
        assert len(tables) == 1
        indices = table_node_to_indices(tables[0])[0]
        assert indices["LVEF"] == pytest.approx(float(rows["phantom000"]["LVEF"]), abs=0.01)
        sequences = app.scene.GetNodesByClass("vtkMRMLSequenceNode")
        assert sequences.GetNumberOfItems() >= 2 * 11  # images + labels of every slice
        first = sequences.GetItemAsObject(0)
        assert first.GetNumberOfDataNodes() == config.cmr.n_frames
    finally:
        app.close()

    rerun = subprocess.run([sys.executable, str(SCRIPT), "--input", str(cohort), "--output", str(out),
                            "--progress", "none"], capture_output=True, text=True, timeout=300)
    rows = {r["subject"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["phantom000"]["status"] == "skipped (done)"
    assert np.isfinite(float(rows["phantom000"]["seconds"]))
    assert rerun.returncode == 1


def test_batch_with_registry_models_adds_nisf_and_atlas_results_to_each_bundle(tmp_path):
    from CardiacMotionAtlasLib.mrml.batch import main
    from CardiacMotionAtlasLib.mrml.models import sequence_node_to_mesh_sequence
    from CardiacMotionAtlasLib.mrml.selftest import train_tiny_models
    from CardiacMotionAtlasLib.registry import register_checkpoint

    models = train_tiny_models(tmp_path / "models", nisf_steps=200)
    registry = tmp_path / "models.json"
    register_checkpoint(registry, "tiny-atlas", "atlas", models["atlas"])
    register_checkpoint(registry, "tiny-nisf", "nisf", models["nisf"])
    config = CohortConfig.tiny(1)
    config.ct = None
    cohort = tmp_path / "cohort"
    write_cohort(cohort, config)
    out = tmp_path / "scenes"
    assert main(["--input", str(cohort), "--output", str(out), "--models", str(registry), "--nisf-spacing", "4",
                 "--progress", "none"]) == 0
    rows = {r["subject"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert rows["phantom000"]["nisf"] == "ok" and rows["phantom000"]["atlas"] == "ok"
    assert sorted(p.name for p in out.iterdir()) == ["phantom000.mrb", "summary.csv"]  # work folders removed
    app = create_standalone_scene()
    try:
        load_scene_bundle(app.scene, out / "phantom000.mrb")
        names = [app.scene.GetNodesByClass("vtkMRMLSequenceNode").GetItemAsObject(i).GetName()
                 for i in range(app.scene.GetNodesByClass("vtkMRMLSequenceNode").GetNumberOfItems())]
        assert any("NISF++ labels" in n for n in names)
        meshes = [app.scene.GetFirstNodeByName(n) for n in names if "atlas myocardium" in n]
        assert len(meshes) == 1
        mesh = sequence_node_to_mesh_sequence(meshes[0])
        assert mesh.n_frames == 25 and np.isfinite(mesh.vertices).all()
    finally:
        app.close()
