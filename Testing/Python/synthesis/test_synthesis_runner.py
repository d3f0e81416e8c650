"""The CT synthesis runner: every output published at once, nothing on failure, key results that match
the written files, and the CLI giving the same files as the runner."""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from CardiacMotionAtlasLib.data import ImageSequence
from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError, InputFileError
from CardiacMotionAtlasLib.io.nifti import write_nifti
from CardiacMotionAtlasLib.synthesis import load_synthesis, run_synthesis
from CardiacMotionAtlasLib.synthesis.pairs import read_pair


@pytest.fixture()
def subject(tmp_path, es_frame):
    """A subject folder in the phantom layout: ct_ES.nii.gz and seg_ct_ES.nii.gz."""
    folder = tmp_path / "subject"
    write_nifti(es_frame.image, folder / "ct_ES.nii.gz")
    write_nifti(es_frame.labels, folder / "seg_ct_ES.nii.gz", labels=True)
    return folder


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _leftovers(parent: Path) -> list:
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_runner_publishes_every_output_and_returns_the_paths(trained_synth, subject, tmp_path):
    out = tmp_path / "pairs"
    run = run_synthesis(trained_synth, subject, out, labels_beside=True, n=3, mode="line", seed=2, subject_id="s1")
    assert set(run.paths) == {"samples", "pair_000", "pair_001", "pair_002"}
    assert all(path.parent == out and path.exists() for path in run.paths.values())
    assert sorted(p.name for p in out.iterdir()) == sorted(path.name for path in run.paths.values())
    assert _leftovers(tmp_path) == []  # the staging folder was published, not left beside
    for folder, record in zip(run.folders, run.records):
        on_disk = json.loads((folder / "pair.json").read_text())
        assert on_disk == record and record["subject_id"] == "s1" and record["latent_mode"] == "line"
        assert sorted(p.name for p in folder.iterdir()) == sorted([*record["files"].values(), "pair.json"])
        assert "labels_generated" in record["files"]  # seg_ct_ES.nii.gz beside the frame was used
    with open(run.paths["samples"], newline="") as handle:
        assert [dict(row) for row in csv.DictReader(handle)] == [dict(row) for row in run.rows]


def test_key_results_are_finite_and_match_the_written_files(trained_synth, subject, tmp_path):
    run = run_synthesis(trained_synth, subject / "ct_ES.nii.gz", tmp_path / "pairs", labels_beside=True, n=3,
                        mode="grid")
    keys = run.key_results()
    assert all(np.isfinite(v) for v in keys.values()), keys
    lvef, max_flow = [], []
    for folder in run.folders:
        pair = read_pair(folder)
        lv_es = (pair["labels_conditioning"].array[0] == 1).sum()
        lv_ed = (pair["labels_generated"].array[0] == 1).sum()
        lvef.append(100.0 * (lv_ed - lv_es) / lv_ed)
        max_flow.append(np.linalg.norm(pair["flow"].vectors, axis=0).max())
    assert keys["pairs"] == 3
    assert keys["implied_lvef_mean_pct"] == pytest.approx(np.mean(lvef), abs=1e-6)
    assert keys["implied_lvef_sd_pct"] == pytest.approx(np.std(lvef, ddof=1), abs=1e-6)
    assert keys["max_flow_mm"] == pytest.approx(max(max_flow), rel=1e-5)
    # without labels the LVEF has no value, the rest still does
    bare = run_synthesis(trained_synth, subject, tmp_path / "bare", n=2).key_results()
    assert np.isnan(bare["implied_lvef_mean_pct"]) and bare["pairs"] == 2 and np.isfinite(bare["max_flow_mm"])


def test_a_failure_while_writing_leaves_nothing_at_out(trained_synth, subject, tmp_path, monkeypatch):
    import CardiacMotionAtlasLib.synthesis.pairs as pairs

    calls = {"n": 0}
    real = pairs.write_displacement_field

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the second pair's flow
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(pairs, "write_displacement_field", failing)
    with pytest.raises(OSError, match="disk full"):
        run_synthesis(trained_synth, subject, tmp_path / "pairs", labels_beside=True, n=3)
    assert not (tmp_path / "pairs").exists() and _leftovers(tmp_path) == []
    # a failing rerun over a previous output leaves that output as it was
    monkeypatch.setattr(pairs, "write_displacement_field", real)
    run_synthesis(trained_synth, subject, tmp_path / "pairs", n=2, seed=1)
    before = _files(tmp_path / "pairs")
    calls["n"] = 0
    monkeypatch.setattr(pairs, "write_displacement_field", failing)
    with pytest.raises(OSError, match="disk full"):
        run_synthesis(trained_synth, subject, tmp_path / "pairs", n=3, seed=5)
    assert _files(tmp_path / "pairs") == before and _leftovers(tmp_path) == []


def test_rerun_carries_complete_pairs_over_and_other_latents_replace_them(trained_synth, subject, tmp_path):
    out = tmp_path / "pairs"
    first = run_synthesis(trained_synth, subject, out, n=2, seed=3)
    inode = (out / "pair_000" / "flow.nii.gz").stat().st_ino
    again = run_synthesis(trained_synth, subject, out, n=2, seed=3)
    assert (out / "pair_000" / "flow.nii.gz").stat().st_ino == inode  # linked over, not recomputed
    assert again.records == first.records
    other = run_synthesis(trained_synth, subject, out, n=2, seed=4)
    assert not np.allclose(other.records[0]["latent"], first.records[0]["latent"])
    assert json.loads((out / "pair_000" / "pair.json").read_text())["latent"] == other.records[0]["latent"]


def test_cli_and_runner_write_the_same_files(trained_synth, subject, tmp_path, capsys):
    from CardiacMotionAtlasLib.cli import synth_cmd

    model = Path(trained_synth.checkpoint_path)
    parser = argparse.ArgumentParser(prog="cardiac-atlas synth")
    synth_cmd.add_arguments(parser)
    args = parser.parse_args(["sample", "--model", str(model), "--frame", str(subject / "ct_ES.nii.gz"),
                              "--labels", str(subject / "seg_ct_ES.nii.gz"), "--out", str(tmp_path / "cli"),
                              "--samples", "2", "--mode", "line", "--seed", "6", "--es-phase", "0.3",
                              "--device", "cpu", "--progress", "none"])
    assert synth_cmd.run(args) == 0
    assert capsys.readouterr().out.count("implied LVEF") == 2
    run = run_synthesis(load_synthesis(model, device="cpu"), subject / "ct_ES.nii.gz", tmp_path / "runner",
                        labels=subject / "seg_ct_ES.nii.gz", n=2, mode="line", seed=6, es_phase=0.3)
    cli_files, runner_files = _files(tmp_path / "cli"), _files(tmp_path / "runner")
    assert sorted(cli_files) == sorted(runner_files) == sorted(
        [f"{name}/{f}" for name in ("pair_000", "pair_001") for f in
         [*run.records[0]["files"].values(), "pair.json"]] + ["samples.csv"])
    assert cli_files == runner_files


def test_cine_trained_model_maps_the_frame_and_bad_records_are_refused(trained_synth, subject, es_frame, tmp_path):
    from CardiacMotionAtlasLib.io.nifti import read_nifti
    from CardiacMotionAtlasLib.synthesis.data import cine_to_hu

    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(trained_synth.checkpoint_path, folder / "synth.pt")
    (folder / "inputs.json").write_text(json.dumps({"modality": "cine", "cine_percentile": 99.0,
                                                    "cine_hu_scale": 500.0}))
    trained = load_synthesis(folder / "synth.pt", device="cpu")
    run = run_synthesis(trained, subject, tmp_path / "pairs", n=1)
    assert run.modality == "cine"
    written = read_pair(run.folders[0])["conditioning"].array[0]  # the conditioning frame as the model saw it
    expected = cine_to_hu(read_nifti(subject / "ct_ES.nii.gz").array[0])
    assert np.allclose(written, expected, atol=1e-3) and not np.allclose(written, es_frame.image.array[0], atol=1.0)
    (folder / "inputs.json").write_text("{\"modality\": \"xray\"}")
    with pytest.raises(InputFileError, match="inputs.json"):
        run_synthesis(trained, subject, tmp_path / "refused", n=1)
    assert not (tmp_path / "refused").exists()


def test_bad_inputs_are_refused_naming_the_file_and_nothing_is_written(trained_synth, subject, es_frame, tmp_path):
    image = es_frame.image
    four_d = tmp_path / "cine.nii.gz"
    write_nifti(ImageSequence(np.stack([image.array[0]] * 2), image.ijk_to_ras), four_d)
    with pytest.raises(InputFileError, match=r"cine.nii.gz: 2 frames"):
        run_synthesis(trained_synth, four_d, tmp_path / "a")
    with pytest.raises(InputFileError, match="no CT frame"):
        run_synthesis(trained_synth, tmp_path, tmp_path / "b")  # a folder without ct_ES.nii.gz
    shifted = tmp_path / "seg_shifted.nii.gz"
    matrix = image.ijk_to_ras.copy()
    matrix[0, 3] += 5.0
    write_nifti(ImageSequence(es_frame.labels.array, matrix), shifted, labels=True)
    with pytest.raises(InputFileError, match=r"seg_shifted.nii.gz: grid differs"):
        run_synthesis(trained_synth, subject, tmp_path / "c", labels=shifted)
    with pytest.raises(CardiacMotionAtlasError, match="unknown latent mode"):
        run_synthesis(trained_synth, subject, tmp_path / "d", mode="spiral")
    with pytest.raises(CardiacMotionAtlasError, match=">= 1"):
        run_synthesis(trained_synth, subject, tmp_path / "e", n=0)
    assert not any((tmp_path / name).exists() for name in "abcde") and _leftovers(tmp_path) == []
