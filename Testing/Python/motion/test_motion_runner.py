"""``motion.run_motion``: one subject, the checkpoint's preprocessing applied, every output published at
once, key results that match the files, and the same outputs as ``cardiac-atlas motion estimate``."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import pytest

from CardiacMotionAtlasLib.io.nifti import read_nifti
from CardiacMotionAtlasLib.motion import MotionRun, run_motion
from CardiacMotionAtlasLib.motion.preprocessing import (DEMO_GRID, MotionPreprocessingError, preprocessing_record,
                                                        resolve_reduction)

OUTPUTS = {"dvf_folder", "dvf_es", "uncertainty", "displacement_std", "warped_labels", "indices_csv", "indices_json",
           "strain", "volumes", "volume_plot"}


def test_runner_publishes_every_output_and_key_results_match_the_files(tiny_trained, small_cine, tmp_path):
    out = tmp_path / "out"
    run = run_motion(tiny_trained, small_cine.study, out, samples=2)
    assert isinstance(run, MotionRun) and set(run.paths) == OUTPUTS
    assert all(path.exists() and out in path.parents for path in run.paths.values())  # under out, not staging
    assert not list(tmp_path.glob(".out.staging.*"))
    n = run.sequence.n_frames
    assert len(list((out / "dvf").glob("ed_to_frame??.nii.gz"))) == n
    assert read_nifti(run.paths["warped_labels"], labels=True).array.shape[0] == n

    key = run.key_results()
    assert key and all(np.isfinite(v) for v in key.values())
    written = json.loads(run.paths["indices_json"].read_text())["indices"]
    for name, value in key.items():
        if name != "displacement_std_mm":
            assert value == pytest.approx(written[name]["value"], abs=1e-4)
    assert set(key) - {"displacement_std_mm"} == {k for k, v in written.items() if np.isfinite(v["value"])}
    std = read_nifti(run.paths["displacement_std"]).array
    assert key["displacement_std_mm"] == pytest.approx(float(np.mean(std)), abs=1e-3)
    assert key["displacement_std_mm"] > 0

    bare = run_motion(tiny_trained, small_cine.study, tmp_path / "bare", samples=2, dvfs=False)
    assert not (tmp_path / "bare" / "dvf").exists() and set(bare.paths) == OUTPUTS - {"dvf_folder", "dvf_es"}


def test_failure_while_writing_leaves_nothing(tiny_trained, small_sequence, tmp_path, monkeypatch):
    import CardiacMotionAtlasLib.motion.outputs as outputs

    def fail_on_strain(path, text):  # indices already written, strain fails
        if path.name == "strain.csv":
            raise OSError(28, "No space left on device")
        real(path, text)

    real = outputs.atomic_write_text
    monkeypatch.setattr(outputs, "atomic_write_text", fail_on_strain)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space"):
        run_motion(tiny_trained, small_sequence, out, samples=2)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    a_file = tmp_path / "taken"
    a_file.write_text("mine")
    with pytest.raises(NotADirectoryError, match="taken"):
        run_motion(tiny_trained, small_sequence, a_file, samples=2)
    assert a_file.read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_stored_reduction_is_applied_and_other_settings_refused(tiny_trained, small_sequence, tmp_path):
    stored = {**tiny_trained.preprocessing, "reduction": {"factor": 1, "crop": None, "frames": 3}}
    trained = replace(tiny_trained, preprocessing=stored)
    lines = []
    run = run_motion(trained, small_sequence, tmp_path / "out", samples=2, log=lines.append)
    assert run.sequence.n_frames == 3 and run.reduction == (1, None, 3) and small_sequence.n_frames == 4
    assert run.estimate.n_frames == 3 and lines == ["preprocessing stored in motion.pt: factor 1, crop None, frames 3"]
    refused = tmp_path / "refused"
    with pytest.raises(MotionPreprocessingError, match="motion.pt: trained with factor 1, crop none, frames 3; got frames 4"):
        run_motion(trained, small_sequence, refused, frames=4)
    assert not refused.exists()


def test_preset_records_carry_their_grid_and_resolve_per_pixel_size(small_sequence):
    from CardiacMotionAtlasLib.motion import MotionConfig

    record = preprocessing_record([small_sequence], MotionConfig.tiny(), preset="demo")
    assert record["grid"] == {"target_pixel_mm": 4.0, "crop_mm": 125.0, "frames": 8}
    for pixel in (1.8, 2.5, 3.1):
        assert resolve_reduction(record, "m.pt", pixel) == (DEMO_GRID.resolve(pixel), "preset demo")
    # another rule stored in the checkpoint wins over the preset table (older records: the table)
    other = {**record, "grid": {"target_pixel_mm": 2.0, "crop_mm": 40.0, "frames": 5}}
    assert resolve_reduction(other, "m.pt", 1.0)[0] == (2, 20, 5)  # 2 mm pixels, 40 mm = 20 pixels
    assert resolve_reduction({k: v for k, v in record.items() if k != "grid"}, "m.pt", 1.0)[0] == (4, 32, 8)
    # no record: the request as given, a preset's rule with explicit options winning
    assert resolve_reduction(None, "m.pt", 1.0, frames=3, preset="demo") == ((4, 32, 3), None)
    assert resolve_reduction(None, "m.pt", 1.0) == (None, None)


def test_cli_and_runner_write_the_same_outputs(tiny_trained, small_cine, tmp_path, capsys):
    from CardiacMotionAtlasLib.cli import motion_cmd
    from CardiacMotionAtlasLib.io.layout_ukbb import write_ukbb_study

    folder = write_ukbb_study(small_cine.study, tmp_path / "subject000")
    parser = argparse.ArgumentParser()
    motion_cmd.add_arguments(parser)
    cli_out = tmp_path / "cli"
    assert motion_cmd.run(parser.parse_args(["estimate", "--model", str(tiny_trained.checkpoint_path), "--study",
                                             str(folder), "--out", str(cli_out), "--samples", "2", "--device", "cpu",
                                             "--progress", "none"])) == 0
    printed = capsys.readouterr().out
    run = run_motion(tiny_trained, folder, tmp_path / "runner", samples=2)
    assert f"indices_json: {cli_out / 'indices.json'}" in printed
    cli_files = sorted(p.relative_to(cli_out) for p in cli_out.rglob("*") if p.is_file())
    assert cli_files == sorted(p.relative_to(tmp_path / "runner") for p in (tmp_path / "runner").rglob("*") if p.is_file())
    cli_indices = json.loads((cli_out / "indices.json").read_text())["indices"]
    assert {k: v["value"] for k, v in cli_indices.items()} == pytest.approx(run.estimate.indices, abs=1e-9)
    for name in ("warped_labels", "uncertainty", "displacement_std"):
        np.testing.assert_array_equal(read_nifti(cli_out / f"{name}.nii.gz").array, read_nifti(run.paths[name]).array)
    assert (cli_out / "strain.csv").read_bytes() == run.paths["strain"].read_bytes()
    assert (cli_out / "dvf" / "ed_to_frame01.nii.gz").read_bytes() == (run.paths["dvf_folder"] / "ed_to_frame01.nii.gz").read_bytes()


def test_runner_passes_the_trajectory_choice(tiny_trained, small_cine, tmp_path):
    default = run_motion(tiny_trained, small_cine.study, tmp_path / "svf", samples=2, dvfs=False)
    chain = run_motion(tiny_trained, small_cine.study, tmp_path / "chain", samples=2, dvfs=False, trajectory="chain")
    assert default.estimate.metadata["trajectory"] == "svf"  # the study gives ED and ES labels
    assert chain.estimate.metadata["trajectory"] == "chain"
    assert not np.allclose(default.estimate.ed_to_t, chain.estimate.ed_to_t)
