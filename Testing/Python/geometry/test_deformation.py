"""geometry.deformation: the one deformation gradient (strain and the Jacobian metrics use it)."""

import numpy as np
import pytest

from CardiacMotionAtlasLib.data.displacement_field import DisplacementField
from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError
from CardiacMotionAtlasLib.geometry.affine import apply_affine, make_ijk_to_ras, rotation_matrix
from CardiacMotionAtlasLib.geometry.deformation import deformation_gradients
from CardiacMotionAtlasLib.metrics.jacobian import jacobian_matrix


def _linear_field(a, ijk_to_ras, shape):
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    ras = apply_affine(ijk_to_ras, np.stack([i, j, k], -1).astype(float))
    return np.moveaxis(ras @ a.T, -1, 0)  # u(x) = A x, (3, z, y, x)


def test_a_linear_field_gives_i_plus_a_on_an_oblique_anisotropic_grid():
    ijk_to_ras = make_ijk_to_ras((3.0, -4.0, 5.0), rotation_matrix([1.0, 2.0, 3.0], 0.5), (1.5, 1.2, 8.0))
    a = np.array([[0.1, -0.05, 0.02], [0.03, -0.2, 0.04], [0.0, 0.05, 0.15]])
    field = _linear_field(a, ijk_to_ras, (4, 5, 6))
    gradients = deformation_gradients(field, ijk_to_ras)
    assert gradients.shape == (1, 4, 5, 6, 3, 3)
    assert np.allclose(gradients, np.eye(3) + a, atol=1e-10)
    two = deformation_gradients(np.stack([field, 2 * field]), ijk_to_ras)
    assert np.allclose(two[1], np.eye(3) + 2 * a, atol=1e-10)
    # the Jacobian metric is the same computation, bit for bit
    displacement = DisplacementField(field.astype(np.float32), ijk_to_ras)
    assert np.array_equal(jacobian_matrix(displacement), deformation_gradients(displacement.vectors, ijk_to_ras)[0])


def test_thin_axes_have_zero_derivative_and_bad_shapes_are_refused():
    ijk_to_ras = np.diag([2.0, 2.0, 8.0, 1.0])
    field = np.zeros((3, 1, 4, 4))
    field[0] = np.arange(4)[None, None, :] * 2.0  # u_x = x: du_x/dx = 1
    gradients = deformation_gradients(field, ijk_to_ras)[0]
    assert np.allclose(gradients[..., 0, 0], 2.0) and np.allclose(gradients[..., 2, 2], 1.0)
    with pytest.raises(CardiacMotionAtlasError, match=r"must be \(T, 3, z, y, x\)"):
        deformation_gradients(np.zeros((2, 4, 4, 4)), ijk_to_ras)
