"""``--preset tiny|demo|default|large``: built from the configs' constructors, ``demo`` equal to what the
main job (``main_job/demo_*.py``) really uses, explicit options overriding a preset."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pytest

from CardiacMotionAtlasLib.cli import presets
from CardiacMotionAtlasLib.cli.main import build_parser


class _Stop(Exception):
    pass


def test_demo_atlas_preset_is_what_the_main_job_passes(monkeypatch, tmp_path):
    """Runs ``run_atlas_demo`` with its workers replaced by recorders: the preset must match the configs
    the main job hands to training, fitting and meshing (the demo writes its fit/mesh numbers inline)."""
    from CardiacMotionAtlasLib.atlas import fit, inputs, meshing, train
    from CardiacMotionAtlasLib.main_job import demo_atlas
    from CardiacMotionAtlasLib.main_job.demo_atlas import run_atlas_demo

    seen = {}

    class Fitted:
        subject_id = "s"

        def save(self, path, config):
            return path

    def record(key, value, result):
        seen[key] = value
        if {"config", "fit", "mesh"} <= set(seen):  # whatever the order the demo calls them in
            raise _Stop
        return result

    monkeypatch.setattr(inputs, "subject_from_label_input", lambda *a, **k: argparse.Namespace(subject_id="s"))
    monkeypatch.setattr(train, "train_atlas", lambda subjects, config, **k: record("config", config, object()))
    monkeypatch.setattr(fit, "fit_subject", lambda atlas, data, setting, config, **k: record("fit", config, Fitted()))
    monkeypatch.setattr(meshing, "track_template", lambda atlas, config, *a, **k: record("mesh", config, object()))
    monkeypatch.setattr(meshing, "template_mesh_sequence", lambda *a, **k: argparse.Namespace(name="t"))
    monkeypatch.setattr(demo_atlas, "write_mesh_sequence", lambda *a, **k: [], raising=False)
    monkeypatch.setattr(demo_atlas, "training_families", lambda *a, **k: [], raising=False)
    for size, name in (("quick", "demo"), ("tiny", "tiny")):
        seen.clear()
        with pytest.raises(_Stop):
            run_atlas_demo([tmp_path / f"s{i}" for i in range(3)], tmp_path / size, size=size, device="cpu")
        preset = presets.atlas_preset(name)
        assert seen["config"] == preset.config and seen["fit"] == preset.fit and seen["mesh"] == preset.mesh


def test_demo_presets_of_the_other_methods_are_the_main_jobs():
    from CardiacMotionAtlasLib.motion import MotionConfig
    from CardiacMotionAtlasLib.motion.preprocessing import GridRule
    from CardiacMotionAtlasLib.nisf import NISFConfig
    from CardiacMotionAtlasLib.main_job import demo_motion, demo_nisf, demo_synth
    from CardiacMotionAtlasLib.synthesis import SynthConfig

    assert presets.nisf_preset("demo") == demo_nisf._quick_config()
    assert presets.nisf_preset("tiny") == NISFConfig.tiny() and presets.nisf_preset("large") == NISFConfig.paper()
    motion = presets.motion_preset("demo")
    assert motion.config == demo_motion.DEMO_CONFIG
    assert motion.reduction == GridRule(demo_motion.TARGET_PIXEL_MM, demo_motion.CROP_MM, demo_motion.FRAMES)
    assert motion.reduction.resolve(1.8) == (2, 36, 8)  # 3.6 mm pixels, a 129.6 mm crop, 8 frames
    assert presets.motion_preset("tiny").config == MotionConfig.tiny()
    assert presets.motion_preset("default").reduction is None
    assert presets.synth_preset("demo", 3) == demo_synth.demo_config(3)
    assert presets.synth_preset("tiny") == demo_synth.synth_sizes("tiny")[0]
    assert presets.synth_preset("large") == SynthConfig.large()
    with pytest.raises(ValueError, match="unknown preset"):
        presets.atlas_preset("huge")


def test_motion_reduction_is_the_main_jobs(tiny_cine, tmp_path):
    from CardiacMotionAtlasLib.cli.motion_cmd import load_sequence
    from CardiacMotionAtlasLib.io.layout_ukbb import write_ukbb_study
    from CardiacMotionAtlasLib.main_job.demo_motion import _reduced

    folder = write_ukbb_study(tiny_cine.study, tmp_path / "s")
    args = argparse.Namespace(preset="demo", factor=None, crop=None, frames=None)
    mine = load_sequence(Path(folder), args)
    main_job = _reduced(folder)
    assert mine.images.shape == main_job.images.shape
    assert (mine.ijk_to_ras == main_job.ijk_to_ras).all()
    args.frames = 3  # explicit options win
    assert load_sequence(Path(folder), args).n_frames == 3


def test_explicit_options_override_the_preset():
    from CardiacMotionAtlasLib.atlas.config import AtlasConfig
    from CardiacMotionAtlasLib.cli.atlas_cmd import _atlas_config

    args = build_parser().parse_args(["atlas", "train", "--phantom", "2", "--out", "x", "--preset", "demo",
                                      "--steps", "7", "--points-per-frame", "9", "--seed", "4"])
    config = _atlas_config(args)
    assert config == replace(AtlasConfig.quick(), steps=7, points_per_frame=9, seed=4)
    legacy = build_parser().parse_args(["atlas", "train", "--phantom", "2", "--out", "x", "--quick"])
    assert _atlas_config(legacy) == AtlasConfig.quick()
    with pytest.raises(SystemExit):  # one size source at a time
        build_parser().parse_args(["atlas", "train", "--phantom", "2", "--out", "x", "--quick", "--preset", "tiny"])


def test_fit_follows_the_atlas_preset():
    from CardiacMotionAtlasLib.atlas.config import AtlasConfig

    assert presets.recognise_atlas_preset(replace(AtlasConfig.quick(), seed=3, steps=11)) == "demo"
    assert presets.recognise_atlas_preset(AtlasConfig.tiny()) == "tiny"
    assert presets.recognise_atlas_preset(replace(AtlasConfig(), shape_code_dim=3)) is None


@pytest.mark.parametrize("command", [["atlas", "train", "--phantom", "1"], ["atlas", "fit", "--atlas", "a.pt",
                                     "--phantom-index", "1"], ["atlas", "mesh", "--atlas", "a.pt"],
                                     ["nisf", "train", "--data", "c"], ["nisf", "reconstruct", "--model", "m",
                                     "--study", "s"], ["motion", "train", "--data", "c"],
                                     ["motion", "estimate", "--model", "m", "--study", "s"],
                                     ["synth", "train"]])
def test_every_train_fit_estimate_command_takes_a_preset(command):
    args = build_parser().parse_args(command + ["--out", "o", "--preset", "demo"])
    assert args.preset == "demo"
