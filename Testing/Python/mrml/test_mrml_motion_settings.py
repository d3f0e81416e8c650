"""The grid reduction a CardioMorphNet model was trained with is read from what it stores (its checkpoint,
its cohort record, its preset config) and enforced: other settings are refused, none given means the
stored ones."""

from __future__ import annotations

import json

import pytest

from mrml_helpers import require_slicer_core

require_slicer_core()

from CardiacMotionAtlasLib.mrml.method_runs import MethodInputError  # noqa: E402
from CardiacMotionAtlasLib.mrml.motion_settings import read_motion_training_settings  # noqa: E402
from CardiacMotionAtlasLib.training.checkpoint import save_checkpoint  # noqa: E402


def _checkpoint(path, config=None, extra=None):
    from CardiacMotionAtlasLib.motion import MotionConfig

    return save_checkpoint(path, model_state={}, config=config or MotionConfig.tiny().with_changes(steps=3),
                           step=0, kind="cardiomorphnet", extra=extra)


def test_nothing_recorded_enforces_nothing(tmp_path):
    settings = read_motion_training_settings(_checkpoint(tmp_path / "m.pt"))
    assert not settings.known and "not recorded" in settings.describe()
    settings.check(tmp_path / "m.pt", 3, 40, 10)
    assert settings.cli_arguments(3, 40, None) == ["--factor", "3", "--crop", "40"]
    assert settings.cli_arguments(None, None, None) == ["--factor", "1"]


def test_checkpoint_extra_wins_over_the_cohort_record(tmp_path):
    path = _checkpoint(tmp_path / "m.pt", extra={"reduction": {"factor": 3, "crop": 20, "frames": None}})
    (tmp_path / "m.cohort.json").write_text(json.dumps({"reduction": {"factor": 2, "crop": 10, "frames": 4}}))
    settings = read_motion_training_settings(path)
    assert (settings.factor, settings.crop, settings.frames) == (3, 20, None) and "(checkpoint)" in settings.source
    with pytest.raises(MethodInputError, match="trained with factor 3, crop 20, frames all"):
        settings.check(path, 2, None, None)
    settings.check(path, 3, 20, 0)  # 0 frames = all = the stored value


def test_cohort_record_of_motion_train(tmp_path):
    path = _checkpoint(tmp_path / "m.pt")
    (tmp_path / "m.cohort.json").write_text(json.dumps({"method": "motion", "preset": None,
                                                        "reduction": {"factor": 2, "crop": None, "frames": 8}}))
    settings = read_motion_training_settings(path)
    assert settings.source == "m.cohort.json" and settings.cli_arguments(None, None, None) == \
        ["--factor", "2", "--frames", "8"]
    with pytest.raises(MethodInputError, match="got crop 32"):
        settings.check(path, None, 32, None)


def test_main_job_model_is_recognised_by_its_preset_config(tmp_path):
    from CardiacMotionAtlasLib.main_job.demo_motion import DEMO_CONFIG

    path = _checkpoint(tmp_path / "motion_model.pt", config=DEMO_CONFIG)
    settings = read_motion_training_settings(path)
    assert settings.preset == "demo" and settings.cli_arguments(None, None, None) == ["--preset", "demo"]
    with pytest.raises(MethodInputError, match="'demo' preset"):
        settings.check(path, 2, 32, 8)
    settings.check(path, None, None, None)


def test_missing_checkpoint_is_refused(tmp_path):
    with pytest.raises(MethodInputError, match="no CardioMorphNet checkpoint"):
        read_motion_training_settings(tmp_path / "none.pt")
