"""``cardiac-atlas synth train|sample`` (via the sub-command module) and the demo pipeline, tiny sizes."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest

from CardiacMotionAtlasLib.cli import synth_cmd
from CardiacMotionAtlasLib.synthesis import SynthConfig, load_synthesis
from CardiacMotionAtlasLib.synthesis.pairs import check_pair, read_pair


def _run(argv) -> int:
    parser = argparse.ArgumentParser(prog="cardiac-atlas synth")
    synth_cmd.add_arguments(parser)
    return synth_cmd.run(parser.parse_args(argv))


def test_cli_train_resume_and_sample(tmp_path, es_frame, capsys):
    from CardiacMotionAtlasLib.io.nifti import write_nifti

    model = tmp_path / "model"
    assert _run(["train", "--out", str(model), "--phantom", "2", "--tiny", "--device", "cpu", "--progress", "none"]) == 0
    first = load_synthesis(model / "synth.pt", device="cpu")
    # resuming a finished run changes nothing
    assert _run(["train", "--out", str(model), "--phantom", "2", "--tiny", "--resume", "--progress", "none"]) == 0
    assert load_synthesis(model / "synth.pt").model_version == first.model_version
    frame_path, labels_path = tmp_path / "ct_ES.nii.gz", tmp_path / "seg_ct_ES.nii.gz"
    write_nifti(es_frame.image, frame_path)
    write_nifti(es_frame.labels, labels_path, labels=True)
    out = tmp_path / "pairs"
    assert _run(["sample", "--model", str(model / "synth.pt"), "--frame", str(frame_path), "--labels", str(labels_path),
                 "--out", str(out), "--samples", "3", "--mode", "grid", "--device", "cpu", "--progress", "none"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("pair: ") == 3 and printed.count("implied LVEF") == 3
    folders = sorted(f for f in out.iterdir() if f.is_dir())
    assert len(folders) == 3
    with open(out / "samples.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["folder"] for row in rows] == [f.name for f in folders]
    latents = set()
    for folder, row in zip(folders, rows):
        assert check_pair(folder) < 1e-3
        pair = read_pair(folder)
        assert pair["record"]["latent_mode"] == row["latent_mode"] == "grid"
        # the table's implied LVEF is the one of the written labels: (LV_ED - LV_ES) / LV_ED
        lv_es = (pair["labels_conditioning"].array[0] == 1).sum()
        lv_ed = (pair["labels_generated"].array[0] == 1).sum()
        assert float(row["implied_lvef_pct"]) == pytest.approx(100.0 * (lv_ed - lv_es) / lv_ed, abs=1e-3)
        assert np.allclose([float(v) for v in row["latent"].split()], pair["record"]["latent"], atol=1e-5)
        latents.add(row["latent"])
    assert len(latents) == 3  # a grid of distinct latents


def test_cli_refuses_a_changed_config_on_resume_and_a_4d_frame(tmp_path, es_frame):
    from CardiacMotionAtlasLib.data import ImageSequence
    from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError
    from CardiacMotionAtlasLib.io.nifti import write_nifti

    model = tmp_path / "model"
    assert _run(["train", "--out", str(model), "--phantom", "2", "--tiny", "--progress", "none"]) == 0
    with pytest.raises(CardiacMotionAtlasError, match="another config"):
        _run(["train", "--out", str(model), "--phantom", "2", "--tiny", "--resume", "--cvae-steps", "9",
              "--progress", "none"])
    image = es_frame.image
    four_d = tmp_path / "cine.nii.gz"
    write_nifti(ImageSequence(np.stack([image.array[0]] * 2), image.ijk_to_ras), four_d)
    with pytest.raises(CardiacMotionAtlasError, match="2 frames"):
        _run(["sample", "--model", str(model / "synth.pt"), "--frame", str(four_d), "--out", str(tmp_path / "o")])


def test_cli_trains_from_subject_folders_with_demons_annotation(tmp_path, synth_hearts):
    from CardiacMotionAtlasLib.data import ImageSequence
    from CardiacMotionAtlasLib.io.nifti import write_nifti
    from CardiacMotionAtlasLib.phantom.ct import CTConfig, simulate_ct

    for heart in synth_hearts[:2]:
        ct = simulate_ct(heart, [0.0, heart.es_phase], CTConfig.tiny())
        folder = tmp_path / "cohort" / heart.subject_id
        for index, tag in enumerate(("ED", "ES")):
            write_nifti(ImageSequence(ct.image.array[index:index + 1], ct.image.ijk_to_ras), folder / f"ct_{tag}.nii.gz")
    assert _run(["train", "--out", str(tmp_path / "m"), "--data", str(tmp_path / "cohort"), "--tiny",
                 "--progress", "none"]) == 0
    assert (tmp_path / "m" / "estimator.pt").is_file() and (tmp_path / "m" / "synth.pt").is_file()


def test_demo_writes_annotated_pairs_for_a_held_out_subject(tmp_path):
    from CardiacMotionAtlasLib.phantom.ct import CTConfig
    from CardiacMotionAtlasLib.main_job.demo_synth import run_synth_demo

    summary = run_synth_demo(tmp_path, seed=1, n_subjects=3, n_samples=2, config=SynthConfig.tiny(),
                             ct=CTConfig.tiny())
    assert summary["held_out_subject"] not in summary["training_subjects"]
    assert len(summary["pairs"]) == 2
    for sample in summary["pairs"]:
        assert sample["annotation_max_error_hu"] < 1e-3
        for path in sample["files"].values():
            assert path.startswith(str(tmp_path)) and Path(path).is_file()
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["model_version"] == summary["model_version"]
    assert np.isfinite(summary["reconstruction_epe_heart_vox"])
    low, high = summary["held_out"][0]["implied_lvef_range_pct"]
    efs = [p["implied_lvef_pct"] for p in summary["pairs"]]
    assert low == min(efs) and high == max(efs) and low <= summary["held_out"][0]["implied_lvef_mean_pct"] <= high
