"""The atlas' one runner (:func:`run_atlas_fit`): every output published at once under the names of its
docstring, nothing left behind on failure, key results that match the files, and the same outputs as
``cardiac-atlas atlas fit`` for the same subject."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.atlas.config import FitConfig, MeshConfig
from CardiacMotionAtlasLib.atlas.errors import AtlasConfigError
from CardiacMotionAtlasLib.atlas.evaluation import cavity_volume_curve
from CardiacMotionAtlasLib.atlas.fit import FittedSubject
from CardiacMotionAtlasLib.atlas.model import load_atlas
from CardiacMotionAtlasLib.atlas.runner import run_atlas_fit
from CardiacMotionAtlasLib.cli.main import main
from CardiacMotionAtlasLib.data import ImageSequence
from CardiacMotionAtlasLib.errors import CineStudyError, InputFileError
from CardiacMotionAtlasLib.io.meshes import read_mesh_sequence
from CardiacMotionAtlasLib.io.nifti import write_nifti

FIT = FitConfig.tiny()
FAST = dict(steps=3, fit_config=FIT, mesh_config=MeshConfig.tiny())


def _leftovers(folder: Path):
    return [p.name for p in folder.iterdir() if ".staging." in p.name]


@pytest.fixture(scope="module")
def run(tiny_atlas, tiny_subjects, tiny_motion, tmp_path_factory):
    out = tmp_path_factory.mktemp("runner") / "fit"
    return run_atlas_fit(tiny_atlas, tiny_subjects[3], out, setting="ed_es", phases=4, motion=tiny_motion, **FAST)


def test_runner_publishes_every_output_and_returns_its_paths(run):
    out = run.paths["codes"].parent
    assert {p.name for p in out.iterdir()} == {p.name for p in run.paths.values()} == {
        "phantom003_codes.pt", "meshes", "template", "volume_curve.png", "volume_curve.json"}
    assert not _leftovers(out.parent)
    meshes = sorted(p.name for p in run.paths["meshes"].iterdir())
    assert meshes == [f"phantom003_atlas_myocardium_{i:03d}.vtp" for i in range(4)]
    on_disk = read_mesh_sequence(run.paths["meshes"])
    np.testing.assert_allclose(on_disk.vertices, run.meshes.vertices, atol=1e-3)
    template = read_mesh_sequence(run.paths["template"])
    assert template.n_frames == 4 and np.array_equal(template.faces, on_disk.faces)  # dense correspondence
    codes = FittedSubject.load(run.paths["codes"])
    assert torch.equal(codes.shape_code, run.fitted.shape_code.cpu()) and codes.setting == "ed_es"
    assert run.paths["volume_curve_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_key_results_are_finite_and_match_the_written_files(run):
    record = json.loads(run.paths["volume_curve_json"].read_text())
    key = run.key_results()
    assert set(key) == {"sdf_error_mm", "fit_s", "LVEDV", "LVESV", "LVEF"}
    assert all(np.isfinite(v) for v in key.values()) and key["fit_s"] > 0 and key["LVEDV"] > key["LVESV"] > 0
    assert record["key_results"] == pytest.approx(key)
    # the volumes come from the meshes on disk, measured again here in the subject's canonical frame
    lv_ml = cavity_volume_curve(read_mesh_sequence(run.paths["meshes"]), run.fitted.frame)
    np.testing.assert_allclose(record["lv_ml"], lv_ml, rtol=1e-3)
    assert key["LVEDV"] == pytest.approx(lv_ml[0], rel=1e-3) and key["LVESV"] == pytest.approx(lv_ml.min(), rel=1e-3)
    assert key["LVEF"] == pytest.approx(100 * (lv_ml[0] - lv_ml.min()) / lv_ml[0], rel=1e-3)
    assert record["sdf_error_mm"] == key["sdf_error_mm"] and record["setting"] == "ed_es"


def test_a_failure_while_writing_leaves_nothing_and_keeps_an_earlier_output(tiny_atlas, tiny_subjects, tiny_motion,
                                                                            tmp_path, monkeypatch):
    from CardiacMotionAtlasLib.io import meshes as mesh_io

    write = mesh_io.write_mesh_sequence
    calls = []

    def broken(mesh, folder, *args, **kwargs):  # the subject's meshes are written, then the template fails
        calls.append(Path(folder).name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device (simulated)")
        return write(mesh, folder, *args, **kwargs)

    monkeypatch.setattr(mesh_io, "write_mesh_sequence", broken)
    with pytest.raises(OSError, match="simulated"):
        run_atlas_fit(tiny_atlas, tiny_subjects[3], tmp_path / "fit", phases=2, motion=tiny_motion, **FAST)
    assert calls == ["meshes", "template"] and list(tmp_path.iterdir()) == []

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "volume_curve.json").write_text("{}")
    calls.clear()
    with pytest.raises(OSError, match="simulated"):
        run_atlas_fit(tiny_atlas, tiny_subjects[3], earlier, phases=2, motion=tiny_motion, **FAST)
    assert [p.name for p in earlier.iterdir()] == ["volume_curve.json"] and not _leftovers(tmp_path)
    assert (earlier / "volume_curve.json").read_text() == "{}"


def test_bad_options_and_inputs_are_refused_before_anything_is_written(tiny_atlas, tiny_subjects, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(AtlasConfigError, match="setting"):
        run_atlas_fit(tiny_atlas, tiny_subjects[3], out, setting="es")
    with pytest.raises(AtlasConfigError, match="phases"):
        run_atlas_fit(tiny_atlas, tiny_subjects[3], out, phases=0)
    labels = _labels_file(tmp_path, tiny_subjects)
    with pytest.raises(CineStudyError, match="labels.nii.gz.*no SAX segmentation"):
        run_atlas_fit(tiny_atlas, labels, out, labels="sax", label_convention="product")
    with pytest.raises(InputFileError, match="labels.nii.gz.*not a phantom subject folder"):
        run_atlas_fit(tiny_atlas, labels, out, labels="ground_truth", label_convention="product")
    with pytest.raises(CineStudyError, match="missing.nii.gz"):
        run_atlas_fit(tiny_atlas, tmp_path / "missing.nii.gz", out)
    assert not out.exists() and not _leftovers(tmp_path)


def _labels_file(folder: Path, subjects) -> Path:
    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart

    heart = PhantomHeart.from_seed(0, 3, kind="hypertrophy")
    matrix, shape = heart.bounding_grid(3.0)
    phases = np.arange(3) / 3
    labels = ImageSequence(heart.label_volumes(matrix, shape, phases).astype(np.uint8), matrix, phases, 1.0)
    return write_nifti(labels, folder / "subj01" / "labels.nii.gz", labels=True, label_convention=None)


def test_cli_and_runner_give_the_same_outputs(tiny_atlas, tiny_subjects, tmp_path, capsys):
    """``atlas fit --labels FILE`` and the runner given the same file (read by the runner itself) with the
    CLI's tiny-preset configs: the same codes, meshes and volume curve."""
    from CardiacMotionAtlasLib.cli.presets import atlas_preset

    checkpoint = tiny_atlas.save(tmp_path / "atlas.pt")
    labels = _labels_file(tmp_path, tiny_subjects)
    cli_out = tmp_path / "cli"
    assert main(["atlas", "fit", "--atlas", str(checkpoint), "--labels", str(labels), "--label-convention", "product",
                 "--setting", "ed", "--steps", "3", "--phases", "3", "--seed", "2", "--out", str(cli_out),
                 "--device", "cpu", "--progress", "none"]) == 0
    assert "fit preset tiny" in capsys.readouterr().out

    preset = atlas_preset("tiny")
    run = run_atlas_fit(load_atlas(checkpoint, "cpu"), labels, tmp_path / "runner", setting="ed", phases=3,
                        fit_config=replace(preset.fit, steps=3), mesh_config=preset.mesh, seed=2,
                        label_convention="product")
    assert sorted(p.name for p in cli_out.iterdir()) == sorted(p.name for p in run.paths["codes"].parent.iterdir())
    for name in sorted(p.name for p in (cli_out / "meshes").iterdir()):
        assert (cli_out / "meshes" / name).read_bytes() == (run.paths["meshes"] / name).read_bytes(), name
    cli_codes = FittedSubject.load(cli_out / "subj01_codes.pt")
    assert torch.equal(cli_codes.shape_code, run.fitted.shape_code.cpu())
    assert torch.equal(cli_codes.time_code, run.fitted.time_code.cpu())
    record = json.loads((cli_out / "volume_curve.json").read_text())
    untimed = {k: v for k, v in run.key_results().items() if k != "fit_s"}
    assert record["lv_ml"] == run.lv_ml.tolist() and {k: record["key_results"][k] for k in untimed} == untimed
    assert record["preset"] == "tiny" and record["atlas_complete"] is True
