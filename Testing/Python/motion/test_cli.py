"""``cardiac-atlas motion train|estimate`` on UK Biobank-style study folders."""

from __future__ import annotations

import argparse
import json

import pytest

from CardiacMotionAtlasLib.cli import motion_cmd
from CardiacMotionAtlasLib.io.layout_ukbb import write_ukbb_study


def _parse(argv):
    parser = argparse.ArgumentParser()
    motion_cmd.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def cohort(small_cine, tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    write_ukbb_study(small_cine.study, root / "subject000")
    return root


def test_train_then_estimate(cohort, tmp_path, capsys, monkeypatch):
    model = tmp_path / "motion.pt"
    common = ["--device", "cpu", "--threads", "1", "--progress", "none", "--frames", "3"]
    assert motion_cmd.run(_parse(["train", "--data", str(cohort), "--out", str(model), "--tiny", "--steps", "2",
                                  "--seg-steps", "2", *common])) == 0
    assert model.is_file() and "trained CardioMorphNet on 1 studies" in capsys.readouterr().out
    out = tmp_path / "out"
    assert motion_cmd.run(_parse(["estimate", "--model", str(model), "--study", str(cohort / "subject000"),
                                  "--out", str(out), "--samples", "2", *common])) == 0
    printed = capsys.readouterr().out
    assert "dvf_es:" in printed and json.loads(printed.strip().splitlines()[-1])["LVEDV"] > 0
    assert len(list((out / "dvf").glob("ed_to_frame??.nii.gz"))) == 3
    assert (out / "strain.csv").read_text().count("\n") == 4
    written = json.loads((out / "indices.json").read_text())
    # the study gives ED and ES labels: the svf trajectory, fitted to them, with no chain refinement
    assert written["trajectory"] == "svf" and written["refine_steps"] == 0
    unrefined = tmp_path / "unrefined"
    assert motion_cmd.run(_parse(["estimate", "--model", str(model), "--study", str(cohort / "subject000"),
                                  "--out", str(unrefined), "--samples", "2", "--refine-steps", "0", *common])) == 0
    assert json.loads((unrefined / "indices.json").read_text())["refine_steps"] == 0

    # the checkpoint carries the preprocessing: applied without options, other options refused
    from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError
    from CardiacMotionAtlasLib.motion import load_motion

    stored = load_motion(model, device="cpu").preprocessing
    assert stored["reduction"] == {"factor": 1, "crop": None, "frames": 3} and stored["frames_per_sequence"] == 3
    bare = ["--device", "cpu", "--threads", "1", "--progress", "none"]
    (tmp_path / "motion.cohort.json").unlink()  # not from the cohort record: from the checkpoint
    plain = tmp_path / "plain"
    assert motion_cmd.run(_parse(["estimate", "--model", str(model), "--study", str(cohort / "subject000"),
                                  "--out", str(plain), "--samples", "2", *bare])) == 0
    assert "preprocessing stored in motion.pt: factor 1, crop None, frames 3" in capsys.readouterr().out
    assert len(list((plain / "dvf").glob("ed_to_frame??.nii.gz"))) == 3
    for wrong in (["--frames", "4"], ["--factor", "2"], ["--preset", "tiny"]):
        refused = tmp_path / f"refused{wrong[0]}"
        with pytest.raises(CardiacMotionAtlasError, match="motion.pt: trained with factor 1, crop none, frames 3"):
            motion_cmd.run(_parse(["estimate", "--model", str(model), "--study", str(cohort / "subject000"),
                                   "--out", str(refused), "--samples", "2", *bare, *wrong]))
        assert not refused.exists()

    # a failure while writing leaves no partial output folder behind (outputs are staged, then published)
    import CardiacMotionAtlasLib.motion.outputs as motion_outputs

    real_writer = motion_outputs.write_motion_outputs

    def write_then_fail(estimate, out, **kwargs):
        real_writer(estimate, out, **kwargs)
        raise OSError(28, "No space left on device")

    failed = tmp_path / "failed"
    monkeypatch.setattr(motion_outputs, "write_motion_outputs", write_then_fail)
    with pytest.raises(OSError, match="No space"):
        motion_cmd.run(_parse(["estimate", "--model", str(model), "--study", str(cohort / "subject000"),
                               "--out", str(failed), "--samples", "2", *bare]))
    assert not failed.exists() and not list(tmp_path.glob(".failed.staging.*"))


def test_missing_study_is_reported(tmp_path):
    from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError

    with pytest.raises(CardiacMotionAtlasError, match="nowhere"):
        motion_cmd.run(_parse(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.pt"),
                               "--tiny", "--device", "cpu"]))
