"""Where the wrong voxels lie along the long axis (benchmarks.nisf table 7): a label that reaches past
the true base shows up beyond the base, with a negative base shift, and nowhere else."""

from __future__ import annotations

import numpy as np

from CardiacMotionAtlasLib.nisf.evaluation import LEVELS, errors_by_level


def _cylinder(k_low: int, k_high: int, shape=(20, 12, 12)) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[k_low:k_high + 1, 3:9, 3:9] = 1
    return labels


def test_a_label_past_the_base_is_counted_beyond_the_base_only():
    matrix = np.diag([1.5, 1.5, 2.0, 1.0])  # 2 mm along z (the long axis, base at low k)
    truth = _cylinder(5, 14)
    predicted = _cylinder(2, 14)
    out = errors_by_level(predicted, truth, matrix, np.zeros(3), np.array([0.0, 0.0, 1.0]), 1)
    voxel_ml = 1.5 * 1.5 * 2.0 / 1000.0
    assert np.isclose(out["beyond_base_ml"], 3 * 36 * voxel_ml)
    assert all(out[f"{level}_ml"] == 0.0 for level in LEVELS[1:])
    assert np.isclose(out["base_shift_mm"], -6.0)


def test_an_apical_miss_is_counted_in_the_apical_third_and_the_axis_direction_matters():
    matrix = np.diag([1.0, 1.0, 1.0, 1.0])
    truth = _cylinder(3, 17)
    predicted = _cylinder(3, 14)  # three apical planes missing
    out = errors_by_level(predicted, truth, matrix, np.zeros(3), np.array([0.0, 0.0, 1.0]), 1)
    assert np.isclose(out["apical_ml"], 3 * 36 / 1000.0) and out["basal_ml"] == 0.0 and out["beyond_apex_ml"] == 0.0
    assert out["base_shift_mm"] == 0.0
    flipped = errors_by_level(predicted, truth, matrix, np.zeros(3), np.array([0.0, 0.0, -1.0]), 1)
    assert np.isclose(flipped["basal_ml"], 3 * 36 / 1000.0) and flipped["apical_ml"] == 0.0
    assert np.isclose(flipped["base_shift_mm"], 3.0)  # seen from the other end the "base" is short of the truth's
    absent = errors_by_level(np.zeros_like(truth), truth, matrix, np.zeros(3), np.array([0.0, 0.0, 1.0]), 1)
    assert np.isnan(absent["basal_ml"]) and np.isnan(absent["base_shift_mm"])
