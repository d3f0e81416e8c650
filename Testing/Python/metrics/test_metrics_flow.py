"""Endpoint error in mm and voxels."""

import numpy as np
import pytest

from CardiacMotionAtlasLib.data import DisplacementField
from CardiacMotionAtlasLib.geometry.affine import make_ijk_to_ras, rotation_matrix
from CardiacMotionAtlasLib.metrics.flow import endpoint_error, endpoint_error_map


def constant_field(vector, matrix, shape=(4, 5, 6)):
    return DisplacementField(np.broadcast_to(np.asarray(vector, float)[:, None, None, None], (3,) + shape), matrix)


def test_constant_offset_axis_aligned():
    matrix = make_ijk_to_ras((0, 0, 0), np.eye(3), (0.5, 1.0, 2.0))
    reference = DisplacementField(np.random.default_rng(0).normal(size=(3, 4, 5, 6)), matrix)
    predicted = DisplacementField(reference.vectors + np.array([1.0, 2.0, 2.0])[:, None, None, None], matrix)
    error = endpoint_error(predicted, reference)
    assert error.mean_mm == pytest.approx(3.0, abs=1e-5)
    assert error.std_mm == pytest.approx(0.0, abs=1e-5)
    # per-axis division by spacing: (1/0.5, 2/1, 2/2) -> norm 3 voxels
    assert error.mean_voxels == pytest.approx(3.0, abs=1e-5)
    assert error.n_voxels == 4 * 5 * 6


def test_voxel_units_on_an_oblique_grid():
    matrix = make_ijk_to_ras((1, 2, 3), rotation_matrix((0, 1, 1), 0.8), (2.0, 3.0, 4.0))
    zero = constant_field((0, 0, 0), matrix)
    one_voxel_along_i = constant_field(matrix[:3, 0], matrix)  # exactly one voxel step along i, 2 mm
    np.testing.assert_allclose(endpoint_error_map(one_voxel_along_i, zero, in_voxels=True), 1.0, rtol=1e-5)
    np.testing.assert_allclose(endpoint_error_map(one_voxel_along_i, zero), 2.0, rtol=1e-5)


def test_mask_selects_voxels():
    matrix = np.eye(4)
    reference = constant_field((0, 0, 0), matrix)
    vectors = np.zeros((3, 4, 5, 6))
    vectors[:, :2] = np.array([0.0, 3.0, 4.0])[:, None, None, None]
    predicted = DisplacementField(vectors, matrix)
    mask = np.zeros((4, 5, 6), dtype=bool)
    mask[:2] = True
    assert endpoint_error(predicted, reference, mask=mask).mean_mm == pytest.approx(5.0)
    whole = endpoint_error(predicted, reference)
    assert whole.mean_mm == pytest.approx(2.5) and whole.std_mm == pytest.approx(2.5)


def test_mismatched_fields_raise():
    a = constant_field((0, 0, 0), np.eye(4))
    with pytest.raises(ValueError):
        endpoint_error(a, constant_field((0, 0, 0), np.eye(4), shape=(4, 5, 5)))
    with pytest.raises(ValueError):
        endpoint_error(a, constant_field((0, 0, 0), np.diag([2.0, 1, 1, 1])))
    with pytest.raises(ValueError):
        endpoint_error(a, a, mask=np.zeros((4, 5, 6)))
    with pytest.raises(ValueError):
        endpoint_error(a, a.vectors)
