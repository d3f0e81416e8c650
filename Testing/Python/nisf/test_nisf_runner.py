"""The one NISF++ runner (``nisf.reconstruct_subject``): every output published at once under the names of
its docstring, nothing left behind by a failure, key results that match the written files, and the CLI
giving the same outputs as the runner for the same subject."""

from __future__ import annotations

import json

import numpy as np
import pytest

from CardiacMotionAtlasLib.analysis.clinical_indices import clinical_indices_from_labels
from CardiacMotionAtlasLib.analysis.volumes import label_volumes_ml
from CardiacMotionAtlasLib.io.nifti import read_nifti
from CardiacMotionAtlasLib.nisf import NISFInputError, load_nisf, reconstruct_subject
from CardiacMotionAtlasLib.nisf.fit import load_subject_fit
from CardiacMotionAtlasLib.nisf import outputs as nisf_outputs
from CardiacMotionAtlasLib.nisf.errors import NISFConfigError
from CardiacMotionAtlasLib.nisf.runner import fit_checkpoint_path

STEPS = 4
OUTPUTS = {"intensity.nii.gz", "labels.nii.gz", "slices.json", "subject_fit.pt", "indices.json"}


@pytest.fixture(scope="module")
def model(tiny_trained):
    """The tiny model as the CLI loads it (from its checkpoint, on the CPU)."""
    return load_nisf(tiny_trained.checkpoint_path, device="cpu")


@pytest.fixture(scope="module")
def study_folder(nisf_sims, tmp_path_factory):
    from CardiacMotionAtlasLib.io.layout_ukbb import write_ukbb_study

    study = nisf_sims[1].study
    folder = tmp_path_factory.mktemp("studies") / study.subject_id
    write_ukbb_study(study, folder)
    return folder


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_runner_publishes_every_output_and_key_results_match_the_files(model, study_folder, tmp_path):
    out = tmp_path / "recon"
    run = reconstruct_subject(model, study_folder, out, steps=STEPS, spacing_mm=8.0, phases=3, mesh_labels=(1,))
    assert set(_names(out)) == OUTPUTS | {"meshes"}
    assert _names(tmp_path) == ["recon"]  # no staging folder, no fit checkpoint left beside
    assert all(path.exists() and out in path.parents for path in run.paths.values())
    assert {path.name for what, path in run.paths.items() if what != "meshes_lv_bloodpool"} == OUTPUTS
    assert list((out / "meshes").glob("lv_bloodpool_*.vtp"))

    labels = read_nifti(run.paths["labels"], labels=True)
    np.testing.assert_array_equal(labels.array, run.labels.array)
    np.testing.assert_allclose(labels.ijk_to_ras, run.labels.ijk_to_ras, atol=1e-4)
    assert labels.n_frames == 3 and np.allclose(labels.phases, [0, 1 / 3, 2 / 3])
    assert read_nifti(run.paths["intensity"]).array.shape == labels.array.shape

    results = run.key_results()
    assert results and all(np.isfinite(v) for v in results.values())
    assert results["fit_loss"] == pytest.approx(run.fit.history["loss"][-1]) and len(run.fit.history["loss"]) == STEPS
    record = json.loads(run.paths["indices"].read_text())
    assert record["fit_loss"] == pytest.approx(results["fit_loss"])
    lv = label_volumes_ml(labels, 1)
    np.testing.assert_allclose(record["lv_volume_ml"], lv, rtol=1e-5)
    assert "LVEF" in results  # indices of the labels read back from the file, ES at the smallest LV pool
    expected = clinical_indices_from_labels(labels, ed_frame=0, es_frame=int(np.argmin(lv))).as_dict()
    assert record["es_frame"] == int(np.argmin(lv)) and record["ed_frame"] == 0
    for name in ("LVEDV", "LVESV", "LVEF"):
        assert results[name] == pytest.approx(expected[name], rel=1e-4, abs=1e-3)
        assert record["indices"][name] == pytest.approx(expected[name], rel=1e-4, abs=1e-3)
    restored = load_subject_fit(model, run.paths["subject_fit"])
    assert np.array_equal(restored.latent.cpu().numpy(), run.fit.latent.cpu().numpy())


def test_failure_while_writing_leaves_nothing_and_resume_publishes_the_same(model, study_folder, tmp_path,
                                                                            monkeypatch):
    reference = reconstruct_subject(model, study_folder, tmp_path / "reference", steps=STEPS, spacing_mm=8.0,
                                    phases=2)
    out = tmp_path / "recon"

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device (simulated)")

    with monkeypatch.context() as patch:  # the labels and intensities are written, then the fit's file fails
        patch.setattr(nisf_outputs, "save_subject_fit", broken)
        with pytest.raises(OSError, match="simulated"):
            reconstruct_subject(model, study_folder, out, steps=STEPS, spacing_mm=8.0, phases=2, checkpoint=True)
    assert not out.exists()
    assert _names(tmp_path) == sorted(["reference", fit_checkpoint_path(out).name])  # only the fit's checkpoint
    resumed = reconstruct_subject(model, study_folder, out, steps=STEPS, spacing_mm=8.0, phases=2, resume=True)
    assert resumed.fit.history["loss"] == []  # nothing refitted: the finished fit came from its checkpoint
    assert set(_names(out)) == OUTPUTS and not fit_checkpoint_path(out).exists()
    np.testing.assert_array_equal(read_nifti(out / "labels.nii.gz", labels=True).array, reference.labels.array)
    assert "fit_loss" not in resumed.key_results() and "fit_s" in resumed.key_results()


def test_bad_input_is_refused_before_anything_is_written(model, nisf_sims, tmp_path):
    study = nisf_sims[1].study
    bad = study.sax[0].image.array.astype(np.float32).copy()
    bad[0, 0, 0, 0] = np.nan
    original = study.sax[0].image.array
    study.sax[0].image.array = bad
    try:
        with pytest.raises(NISFInputError, match="NaN"):
            reconstruct_subject(model, study, tmp_path / "out", steps=STEPS)
    finally:
        study.sax[0].image.array = original
    with pytest.raises(NISFConfigError, match="phases"):
        reconstruct_subject(model, study, tmp_path / "out", steps=STEPS, phases=0)
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        reconstruct_subject(model, study, tmp_path / "file", steps=STEPS)
    assert _names(tmp_path) == ["file"]


def test_cli_and_runner_give_the_same_outputs(model, tiny_trained, study_folder, tmp_path, capsys):
    from CardiacMotionAtlasLib.cli.main import main

    cli_out, runner_out = tmp_path / "cli", tmp_path / "runner"
    assert main(["nisf", "reconstruct", "--model", str(tiny_trained.checkpoint_path), "--study", str(study_folder),
                 "--out", str(cli_out), "--steps", str(STEPS), "--spacing", "8", "--phases", "2", "--device", "cpu",
                 "--progress", "none"]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = reconstruct_subject(model, study_folder, runner_out, steps=STEPS, spacing_mm=8.0, phases=2)
    assert _names(cli_out) == _names(runner_out) == sorted(OUTPUTS)
    assert _names(tmp_path) == ["cli", "runner"]  # the CLI's fit checkpoint is gone once published
    for name in ("labels.nii.gz", "intensity.nii.gz"):
        a, b = read_nifti(cli_out / name), read_nifti(runner_out / name)
        np.testing.assert_array_equal(a.array, b.array)
        np.testing.assert_array_equal(a.ijk_to_ras, b.ijk_to_ras)
    assert (cli_out / "slices.json").read_text() == (runner_out / "slices.json").read_text()
    cli_record, runner_record = (json.loads((d / "indices.json").read_text()) for d in (cli_out, runner_out))
    cli_record.pop("fit_s"), runner_record.pop("fit_s")
    assert cli_record == runner_record
    printed.pop("fit_s")
    assert printed == {k: v for k, v in run.key_results().items() if k != "fit_s"}


def test_fit_only_writes_the_fit_and_its_slice_corrections(model, study_folder, tmp_path):
    run = reconstruct_subject(model, study_folder, tmp_path / "fit", steps=STEPS, sample=False)
    assert _names(tmp_path / "fit") == ["slices.json", "subject_fit.pt"]
    assert run.labels is None and run.indices == {} and set(run.key_results()) == {"fit_loss", "fit_s"}
    report = json.loads(run.paths["slices"].read_text())
    assert "grid" not in report and len(report["slices"]) == len(run.fit.subject.slices)


def test_labels_only_reconstruction_writes_no_intensity_and_matches_the_full_labels(model, study_folder, tmp_path):
    full = reconstruct_subject(model, study_folder, tmp_path / "full", steps=STEPS, spacing_mm=6.0, phases=2)
    only = reconstruct_subject(model, study_folder, tmp_path / "labels", steps=STEPS, spacing_mm=6.0, phases=2,
                               intensity=False)
    assert set(_names(tmp_path / "labels")) == OUTPUTS - {"intensity.nii.gz"}
    assert only.intensity is None and "intensity" not in only.paths
    written = read_nifti(only.paths["labels"], labels=True).array
    heart = (written > 0) | (full.labels.array > 0)
    assert heart.any() and (written[heart] == full.labels.array[heart]).mean() > 0.95  # coarse to fine vs every voxel
