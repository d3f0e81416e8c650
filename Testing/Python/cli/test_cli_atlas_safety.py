"""``cardiac-atlas atlas`` never runs on a half-trained model, reads a label map in the convention it is
written in, and publishes its outputs at once or not at all.

A training killed between checkpoints leaves only ``atlas.partial.pt`` (marked incomplete, step n of N);
``atlas fit`` refuses it naming the file and the step count unless ``--allow-incomplete`` (then the step
count is printed and recorded); ``--resume`` finishes it into ``atlas.pt``. An ACDC-convention label map
(1 RV, 2 myocardium, 3 LV) fits exactly like the same map converted to the product's convention.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.cli import atlas_cmd
from CardiacMotionAtlasLib.cli.main import main
from CardiacMotionAtlasLib.data import ImageSequence
from CardiacMotionAtlasLib.errors import LOG_DIR_ENV
from CardiacMotionAtlasLib.io.label_conventions import from_product
from CardiacMotionAtlasLib.io.nifti import write_nifti
from CardiacMotionAtlasLib.phantom.heart import PhantomHeart
from CardiacMotionAtlasLib.training import load_checkpoint, partial_path

pytestmark = pytest.mark.slow

STEPS, KILL_AFTER = 120, 110  # tiny preset: a checkpoint every 50 steps -> the kill leaves step 100
CPU = ["--device", "cpu", "--progress", "none"]
FIT = ["--setting", "ed", "--steps", "3", "--phases", "2", "--resolution", "16", "--tracking-steps", "4"] + CPU


class _KillAt:
    """A progress reporter that interrupts the run like a kill (Ctrl-C) after ``step`` steps."""

    def __init__(self, step: int) -> None:
        self.step = step

    def start(self, total, description="", *, initial=0):
        pass

    def update(self, step, **metrics):
        if step >= self.step:
            raise KeyboardInterrupt

    def close(self):
        pass


@pytest.fixture(scope="module")
def atlas_run(tmp_path_factory):
    """Train (tiny, 2 phantom subjects) killed after KILL_AFTER steps, keep a copy of what it left, then
    resume it to the end."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("atlas_run")
    out = root / "model"
    train = ["atlas", "train", "--phantom", "2", "--frames", "3", "--tiny", "--steps", str(STEPS), "--out", str(out)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(atlas_cmd, "progress_from", lambda args: _KillAt(KILL_AFTER))
        killed_code = main(train + CPU)
    left = sorted(p.name for p in out.iterdir())
    kept = root / "killed"
    kept.mkdir()
    shutil.copy(partial_path(out / "atlas.pt"), kept / "atlas.partial.pt")
    resumed_code = main(train + ["--resume"] + CPU)
    return {"killed_code": killed_code, "left": left, "killed": kept, "resumed_code": resumed_code, "out": out}


def test_a_killed_training_leaves_no_model_under_the_final_name(atlas_run):
    assert atlas_run["killed_code"] == 130
    assert atlas_run["left"] == ["atlas.partial.pt", "atlas_config.json"]
    saved = load_checkpoint(atlas_run["killed"] / "atlas.partial.pt", allow_incomplete=True)
    assert (saved.step, saved.total_steps, saved.complete) == (100, STEPS, False)


def test_resume_finishes_the_partial_checkpoint(atlas_run):
    out = atlas_run["out"]
    assert atlas_run["resumed_code"] == 0
    final = load_checkpoint(out / "atlas.pt", expected_kind="atlas")
    assert (final.step, final.complete) == (STEPS, True)
    assert not partial_path(out / "atlas.pt").exists()


def test_fit_refuses_a_half_trained_atlas_unless_allowed(atlas_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    folder = tmp_path / "model"
    shutil.copytree(atlas_run["killed"], folder)  # what the kill left: atlas.partial.pt only
    fit_out = tmp_path / "fit"
    for atlas in ("atlas.pt", "atlas.partial.pt"):
        code = main(["atlas", "fit", "--atlas", str(folder / atlas), "--phantom-index", "3", "--frames", "3",
                     "--out", str(fit_out)] + FIT)
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
        assert "atlas.partial.pt" in lines[0] and "step 100 of 120" in lines[0] and "--allow-incomplete" in lines[0]
        assert not fit_out.exists()
    code = main(["atlas", "fit", "--atlas", str(folder / "atlas.pt"), "--phantom-index", "3", "--frames", "3",
                 "--out", str(fit_out), "--allow-incomplete"] + FIT)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "warning:" in err and "INCOMPLETE" in err and "step 100 of 120" in err
    record = json.loads((fit_out / "volume_curve.json").read_text())
    assert (record["atlas_step"], record["atlas_complete"]) == (100, False)
    assert not (tmp_path / "logs").exists()


def _labels(heart: PhantomHeart, frames: int = 3) -> ImageSequence:
    matrix, shape = heart.bounding_grid(3.0)
    phases = np.arange(frames) / frames
    return ImageSequence(heart.label_volumes(matrix, shape, phases).astype(np.uint8), matrix, phases, 1.0)


def _fit(atlas: Path, labels: Path, out: Path, *flags: str) -> dict:
    assert main(["atlas", "fit", "--atlas", str(atlas), "--labels", str(labels), "--out", str(out), *flags] + FIT) == 0
    record = json.loads((out / "volume_curve.json").read_text())
    codes = torch.load(next(out.glob("*_codes.pt")), weights_only=True)["model_state"]
    return {"lv_ml": record["lv_ml"], "sdf": record["sdf_error_mm"], "codes": codes}


def test_acdc_convention_file_fits_like_the_converted_one(atlas_run, tmp_path, capsys):
    labels = _labels(PhantomHeart.from_seed(0, 3))
    product = write_nifti(labels, tmp_path / "product" / "labels.nii.gz", labels=True, label_convention=None)
    acdc_labels = ImageSequence(from_product(labels.array, "acdc"), labels.ijk_to_ras, labels.phases, 1.0)
    acdc = write_nifti(acdc_labels, tmp_path / "acdc" / "labels.nii.gz", labels=True, label_convention=None)
    atlas = atlas_run["out"] / "atlas.pt"

    # a bare file whose convention nothing tells (no flag, sidecar, header stamp or study layout): refused
    code = main(["atlas", "fit", "--atlas", str(atlas), "--labels", str(acdc), "--out", str(tmp_path / "x")] + FIT)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and str(acdc) in err and "--label-convention" in err
    # read as the product's, the ACDC map is refused as swapped (LV pool bordering the background)
    code = main(["atlas", "fit", "--atlas", str(atlas), "--labels", str(acdc), "--label-convention", "product",
                 "--out", str(tmp_path / "x")] + FIT)
    assert code == 2 and "convention" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()

    converted = _fit(atlas, product, tmp_path / "fit_product", "--label-convention", "product")
    given = _fit(atlas, acdc, tmp_path / "fit_acdc", "--label-convention", "acdc")
    assert np.allclose(given["lv_ml"], converted["lv_ml"]) and given["sdf"] == pytest.approx(converted["sdf"])
    for name, value in converted["codes"].items():
        assert torch.equal(value, given["codes"][name]), name


def test_a_label_file_in_an_acdc_folder_defaults_to_the_acdc_convention(tmp_path, capsys, monkeypatch):
    """The layout of the folder decides; the subject the fit would see equals the product-convention one."""
    labels = _labels(PhantomHeart.from_seed(0, 3), frames=2)
    patient = tmp_path / "patient101"
    acdc_labels = ImageSequence(from_product(labels.array, "acdc"), labels.ijk_to_ras, labels.phases, 1.0)
    acdc = write_nifti(acdc_labels, patient / "patient101_4d_gt.nii.gz", labels=True, label_convention=None)
    write_nifti(labels, patient / "patient101_4d.nii.gz")  # the ACDC layout: a *_4d.nii.gz and Info.cfg
    (patient / "Info.cfg").write_text("ED: 1\nES: 2\nGroup: NOR\nHeight: 175\nNbFrame: 2\nWeight: 75\n")
    product = write_nifti(labels, tmp_path / "product.nii.gz", labels=True, label_convention="product")
    seen = []

    class _Stop(Exception):
        pass

    def capture(args, sampling):
        seen.append(original(args, sampling))
        raise _Stop

    original = atlas_cmd._fit_subject_data
    monkeypatch.setattr(atlas_cmd, "_fit_subject_data", capture)
    monkeypatch.setattr(atlas_cmd, "_load_atlas", lambda args: (_FakeAtlas(), {}))
    for path in (acdc, product):
        with pytest.raises(_Stop):
            atlas_cmd.run_fit(_fit_args(path, tmp_path / "never"))
    assert "label convention acdc (the acdc layout of its folder" in capsys.readouterr().out
    assert np.array_equal(seen[0].sdf_mm, seen[1].sdf_mm) and np.array_equal(seen[0].points_mm, seen[1].points_mm)
    assert not (tmp_path / "never").exists()


class _FakeAtlas:
    """Only what run_fit reads before fitting: the tiny preset's configuration."""

    def __init__(self) -> None:
        from CardiacMotionAtlasLib.cli.presets import atlas_preset

        self.config = atlas_preset("tiny").config


def _fit_args(labels: Path, out: Path):
    from CardiacMotionAtlasLib.cli.main import build_parser

    return build_parser().parse_args(["atlas", "fit", "--atlas", "unused.pt", "--labels", str(labels),
                                      "--out", str(out), "--preset", "tiny"] + FIT)


def test_fit_outputs_appear_all_at_once_or_not_at_all(atlas_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    atlas = atlas_run["out"] / "atlas.pt"

    # implausible geometry (1e9 mm voxels): refused naming the file, nothing written
    labels = _labels(PhantomHeart.from_seed(0, 3), frames=2)
    huge = labels.ijk_to_ras.copy()
    huge[:3, :3] *= 1e9
    path = write_nifti(ImageSequence(labels.array, huge, labels.phases, 1.0), tmp_path / "huge.nii.gz", labels=True)
    code = main(["atlas", "fit", "--atlas", str(atlas), "--labels", str(path), "--out", str(tmp_path / "out")] + FIT)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and str(path) in err, err
    assert not (tmp_path / "out").exists()

    # a failure while writing (after the codes and meshes were written to the staging folder): none published
    def broken_plot(*args, **kwargs):
        raise RuntimeError("disk full (simulated)")

    monkeypatch.setattr("CardiacMotionAtlasLib.analysis.volume_curves.plot_volume_curves", broken_plot)
    code = main(["atlas", "fit", "--atlas", str(atlas), "--phantom-index", "3", "--frames", "3",
                 "--out", str(tmp_path / "out")] + FIT)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "disk full (simulated)" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["huge.nii.gz", "logs"]  # no out/, no staging folder
