"""The cross-family benchmark protocol (benchmarks.common): disjoint train/test hearts of the requested
families, both test sets with cross-family first, the options and the recorded config. No training; the
set logic runs on stand-in hearts (a lofted heart takes seconds to build), the acquisition on real ones."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from CardiacMotionAtlasLib.benchmarks.common import (CROSS_FAMILY, IN_FAMILY, add_family_arguments, benchmark_parser,
                                                     build_protocol, format_table, protocol_from_args, cross_family_first,
                                                     write_json)
from CardiacMotionAtlasLib.benchmarks import common
from CardiacMotionAtlasLib.phantom.families import family_of_subject


class _StandInHeart:
    """What the protocol reads of a heart: its id (family prefix + index) and phenotype."""

    def __init__(self, family: str, seed: int, index: int, kind=None, abnormal_fraction: float = 0.3):
        family = family_of_subject(family, index)
        self.subject_id = f"{'lofted' if family == 'lofted' else 'phantom'}{index:03d}"
        self.params = argparse.Namespace(kind=kind or "normal")


@pytest.fixture
def stand_in_hearts(monkeypatch):
    monkeypatch.setattr(common, "make_heart", _StandInHeart)


def _family(heart) -> str:
    return "lofted" if heart.subject_id.startswith("lofted") else "ellipsoidal"


@pytest.fixture
def protocol(stand_in_hearts):
    return build_protocol("ellipsoidal", "lofted", seed=0, n_train=3, n_test=2, acquisition="fixed")


def test_train_and_test_sets_are_disjoint_and_of_the_requested_families(protocol):
    assert [t.name for t in protocol.test_sets] == [CROSS_FAMILY, IN_FAMILY]
    cross, within = protocol.test_sets
    train = set(protocol.train_indices)
    assert not train & set(cross.indices) and not train & set(within.indices) and not set(cross.indices) & set(within.indices)
    assert {_family(h) for h in protocol.train_hearts} == {"ellipsoidal"}
    assert {_family(h) for h in cross.hearts} == {"lofted"} and len(cross.hearts) == 2
    assert {_family(h) for h in within.hearts} == {"ellipsoidal"} and len(within.hearts) == 2
    ids = [h.subject_id for h, _ in protocol.all_subjects()]
    assert len(ids) == len(set(ids)) == 7
    assert cross.label == "lofted (unseen family)" and within.label == "ellipsoidal (in-family)"
    assert protocol.labels == [cross.label, within.label]


def test_same_family_gives_only_the_in_family_set_and_mixed_is_labelled(stand_in_hearts):
    same = build_protocol("lofted", "lofted", seed=0, n_train=2, n_test=1)
    assert [t.name for t in same.test_sets] == [IN_FAMILY]
    assert {_family(h) for h in same.train_hearts + same.test_sets[0].hearts} == {"lofted"}
    mixed = build_protocol("mixed", "lofted", seed=0, n_train=2, n_test=1, n_in_family=1)
    assert mixed.test_sets[0].label == "lofted (families seen in training)"
    assert [_family(h) for h in mixed.train_hearts] == [family_of_subject("mixed", i) for i in range(2)]
    unseen = build_protocol("lofted", "ellipsoidal", seed=0, n_train=1, n_test=1, n_in_family=0)
    assert unseen.test_sets[0].label == "ellipsoidal (unseen family)" and unseen.test_sets[1].hearts == []


def test_options_and_recorded_config(tmp_path, stand_in_hearts):
    parser = add_family_arguments(benchmark_parser("x"))
    args = parser.parse_args([])
    assert (args.train_family, args.test_family) == ("ellipsoidal", "lofted")
    assert args.acquisition == "randomised"
    args = parser.parse_args(["--train-family", "lofted", "--test-family", "mixed", "--acquisition", "fixed", "--seed", "3"])
    protocol = protocol_from_args(args, 1, 1)
    config = protocol.config()
    assert (config["train_family"], config["test_family"], config["acquisition"], config["seed"]) == \
        ("lofted", "mixed", "fixed", 3)
    assert "train family lofted" in protocol.header() and "acquisition fixed" in protocol.header()
    with pytest.raises(SystemExit):
        parser.parse_args(["--test-family", "spherical"])
    write_json(str(tmp_path / "b.json"), [], config)
    assert json.loads((tmp_path / "b.json").read_text())["config"]["test_sets"][0]["name"] == CROSS_FAMILY


def test_randomised_acquisition_poses_each_heart_and_keeps_the_benchmark_grid():
    from CardiacMotionAtlasLib.benchmarks.motion import acquisition_ranges
    from CardiacMotionAtlasLib.phantom.cmr import CMRConfig
    from CardiacMotionAtlasLib.phantom.families import make_heart

    # ellipsoidal hearts only: a lofted heart takes seconds to build, and posing is family-agnostic (set_pose)
    posed = build_protocol("ellipsoidal", "ellipsoidal", seed=0, n_train=1, n_test=1, acquisition="randomised")
    assert [h.subject_id for h, _ in posed.all_subjects()] == ["phantom000", "phantom001"]
    assert not np.allclose(make_heart("ellipsoidal", 0, 0).local_to_ras[:3, :3],
                           posed.train_hearts[0].local_to_ras[:3, :3])  # posed in the scanner
    base = CMRConfig(n_frames=10, matrix=32, pixel_mm=4.0, lax_views=(), misalignment_mm=0.0, misalignment_deg=0.0)
    heart, index = posed.test_sets[0].hearts[0], posed.test_sets[0].indices[0]
    pose = heart.local_to_ras.copy()
    cmr, ct, record = posed.acquire(heart, index, base, None, acquisition_ranges(base))
    np.testing.assert_allclose(heart.local_to_ras, pose)  # posing is idempotent
    assert (cmr.n_frames, cmr.matrix, cmr.rows, cmr.pixel_mm) == (10, 32, 32, 4.0)
    assert cmr.misalignment_mm == 0.0 and ct is None and record["mode"] == "randomised"
    posed.acquisition = "fixed"
    assert posed.acquire(heart, index, base) == (base, None, {"mode": "fixed"})


def test_tables_put_cross_family_rows_first(protocol):
    cross, within = protocol.labels
    rows = [{"test_set": "training subjects (ellipsoidal)", "method": "reference", "dice": 0.9},
            {"test_set": within, "method": "ours", "dice": 0.8},
            {"test_set": cross, "method": "ours", "dice": 0.7},
            {"test_set": within, "method": "baseline", "dice": 0.75},
            {"test_set": cross, "method": "baseline", "dice": 0.6}]
    ordered = cross_family_first(rows, protocol.labels)
    assert [r["test_set"] for r in ordered] == [cross, cross, within, within, "training subjects (ellipsoidal)"]
    assert [r["method"] for r in ordered[:2]] == ["ours", "baseline"]  # stable within a set
    lines = format_table(ordered, ["test_set", "method", "dice"]).splitlines()
    assert lines[0].split()[0] == "test_set" and cross in lines[2] and within in lines[4]


def test_every_method_benchmark_takes_the_family_options():
    import importlib

    for name in ("atlas", "nisf", "motion", "synthesis"):
        module = importlib.import_module(f"CardiacMotionAtlasLib.benchmarks.{name}")
        assert "--test-family" in module.__doc__ and "add_family_arguments" in vars(module), name
    assert isinstance(add_family_arguments(argparse.ArgumentParser()), argparse.ArgumentParser)
