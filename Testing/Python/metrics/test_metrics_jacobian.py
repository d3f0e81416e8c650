"""Jacobian determinant of displacement fields: linear fields, folding, masks."""

import numpy as np
import pytest

from CardiacMotionAtlasLib.data import DisplacementField
from CardiacMotionAtlasLib.geometry.affine import apply_affine, make_ijk_to_ras, rotation_matrix
from CardiacMotionAtlasLib.metrics.jacobian import jacobian_determinant, jacobian_matrix, negative_jacobian


def grid_points(shape_zyx, matrix):
    k, j, i = np.meshgrid(*[np.arange(n) for n in shape_zyx], indexing="ij")
    return apply_affine(matrix, np.stack([i, j, k], axis=-1).astype(float))  # (z, y, x, 3) RAS mm


def field_from_function(shape_zyx, matrix, function):
    points = grid_points(shape_zyx, matrix)
    return DisplacementField(np.moveaxis(function(points), -1, 0), matrix)


def test_linear_field_on_oblique_anisotropic_grid_has_constant_det():
    a = np.array([[1.2, 0.1, 0.0], [0.05, 0.9, 0.2], [0.0, 0.1, 1.1]])
    matrix = make_ijk_to_ras((-10.0, 5.0, 2.0), rotation_matrix((1, 2, 3), 0.7), (1.5, 2.0, 3.0))
    field = field_from_function((8, 9, 10), matrix, lambda x: x @ (a - np.eye(3)).T)
    determinant = jacobian_determinant(field)
    assert determinant.shape == (8, 9, 10)
    np.testing.assert_allclose(determinant, np.linalg.det(a), rtol=1e-4)
    np.testing.assert_allclose(jacobian_matrix(field), np.broadcast_to(a, (8, 9, 10, 3, 3)), atol=1e-4)
    assert negative_jacobian(field).count == 0


def test_zero_field_has_unit_determinant():
    field = DisplacementField(np.zeros((3, 4, 5, 6)), np.diag([2.0, 3.0, 4.0, 1.0]))
    np.testing.assert_allclose(jacobian_determinant(field), 1.0)


def test_folding_field_fraction():
    # u_R = 2 w sin(R / w): d(R + u_R)/dR = 1 + 2 cos(R / w) <= 0 on a third of each period
    w = 4.0
    matrix = make_ijk_to_ras((0.0, 0.0, 0.0), np.eye(3), (0.25, 1.0, 1.0))
    field = field_from_function(
        (3, 3, 2000), matrix, lambda x: np.stack([2 * w * np.sin(x[..., 0] / w), 0 * x[..., 1], 0 * x[..., 2]], -1)
    )
    stats = negative_jacobian(field)
    assert stats.count > 0
    assert stats.fraction == pytest.approx(1.0 / 3.0, abs=0.01)
    assert stats.n_voxels == 3 * 3 * 2000
    determinant = jacobian_determinant(field)
    assert negative_jacobian(determinant).count == stats.count
    mask = determinant > 0.5
    masked = negative_jacobian(field, mask=mask)
    assert masked.count == 0 and masked.n_voxels == int(mask.sum())


def test_reflection_is_all_negative():
    field = field_from_function((4, 4, 4), np.eye(4), lambda x: x * np.array([-2.0, 0.0, 0.0]))
    np.testing.assert_allclose(jacobian_determinant(field), -1.0, atol=1e-6)
    assert negative_jacobian(field).fraction == 1.0


def test_bad_input():
    field = DisplacementField(np.zeros((3, 4, 4, 4)), np.eye(4))
    with pytest.raises(ValueError):
        negative_jacobian(field, mask=np.zeros((4, 4, 4)))
    with pytest.raises(ValueError):
        negative_jacobian(field, mask=np.ones((4, 4, 3)))
    with pytest.raises(ValueError):
        jacobian_determinant(np.zeros((3, 4, 4, 4)))
    with pytest.raises(ValueError):
        jacobian_determinant(DisplacementField(np.zeros((3, 1, 4, 4)), np.eye(4)))
