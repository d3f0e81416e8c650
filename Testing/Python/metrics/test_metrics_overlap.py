"""Dice and Jaccard against the analytic overlap of boxes, plus properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from CardiacMotionAtlasLib.metrics.overlap import dice, dice_per_label, jaccard, jaccard_per_label


def test_overlapping_boxes_match_analytic_formula():
    a = np.zeros((30, 30, 30), dtype=bool)
    b = np.zeros_like(a)
    a[0:20, 0:20, 0:20] = True
    b[5:25, 3:23, 0:20] = True  # shifted by (5, 3, 0) voxels
    intersection = 15 * 17 * 20
    size = 20**3
    assert dice(a, b) == pytest.approx(2 * intersection / (2 * size))
    assert jaccard(a, b) == pytest.approx(intersection / (2 * size - intersection))


def test_per_label_values():
    a = np.zeros((10, 10), dtype=np.uint8)
    b = np.zeros_like(a)
    a[:5, :5], b[:5, :5] = 1, 1  # label 1 identical
    a[5:, 5:] = 2
    b[5:, 5:] = 2
    b[5:, 5] = 3  # label 2 loses 5 pixels to label 3 in b
    scores = dice_per_label(a, b)
    assert set(scores) == {1, 2, 3}
    assert scores[1] == 1.0
    assert scores[2] == pytest.approx(2 * 20 / (25 + 20))
    assert scores[3] == 0.0
    assert jaccard_per_label(a, b, labels=[2]) == {2: pytest.approx(20 / 25)}


def test_empty_masks():
    empty = np.zeros((4, 4), dtype=bool)
    full = np.ones((4, 4), dtype=bool)
    assert dice(empty, empty) == 1.0 and jaccard(empty, empty) == 1.0
    assert dice(empty, full) == 0.0 and jaccard(full, empty) == 0.0
    assert dice_per_label(np.zeros((3, 3)), np.zeros((3, 3)), labels=[1]) == {1: 1.0}


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        dice(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(ValueError):
        jaccard_per_label(np.zeros((3, 3)), np.zeros((4, 3)))


@settings(max_examples=50, deadline=None)
@given(
    arrays(bool, (6, 7), elements=st.booleans()),
    arrays(bool, (6, 7), elements=st.booleans()),
)
def test_dice_jaccard_relation_and_symmetry(a, b):
    d, j = dice(a, b), jaccard(a, b)
    assert 0.0 <= j <= d <= 1.0
    assert d == pytest.approx(dice(b, a))
    assert j == pytest.approx(d / (2.0 - d))
