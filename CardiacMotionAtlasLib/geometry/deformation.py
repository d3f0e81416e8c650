"""The deformation gradient ``F = I + du/dx`` of dense displacement fields on a voxel grid (RAS mm).

Derivatives are taken in physical RAS mm: ``np.gradient`` along the voxel axes gives ``du/d(ijk)``
(central differences inside, one-sided at the border; zero along an axis one voxel thick), which the chain
rule turns into ``du/dx = du/d(ijk) @ inv(M)`` with ``M`` the 3x3 part of IJK->RAS (direction x spacing), so
oblique grids and anisotropic spacing are handled. Strain (:mod:`~CardiacMotionAtlasLib.analysis.strain`)
and the Jacobian metrics (:mod:`~CardiacMotionAtlasLib.metrics.jacobian`) both use it.
"""

from __future__ import annotations

import numpy as np

from ..errors import CardiacMotionAtlasError


def deformation_gradients(displacement_ras: np.ndarray, ijk_to_ras: np.ndarray) -> np.ndarray:
    """``F = I + du/dx`` (RAS) of fields ``(T, 3, z, y, x)`` (mm; one field ``(3, z, y, x)`` counts as
    ``T = 1``): ``(T, z, y, x, 3, 3)``, rows the RAS components of the mapped point, columns the RAS
    derivative axes. Raises :class:`CardiacMotionAtlasError` for another shape."""
    field = np.asarray(displacement_ras, float)
    if field.ndim == 4:
        field = field[None]
    if field.ndim != 5 or field.shape[1] != 3:
        raise CardiacMotionAtlasError(f"displacement must be (T, 3, z, y, x), got {field.shape}")
    grads = []
    for axis in (4, 3, 2):  # d/di, d/dj, d/dk (voxels)
        grads.append(np.gradient(field, axis=axis) if field.shape[axis] > 1 else np.zeros_like(field))
    d_ijk = np.stack(grads, axis=2)  # (T, 3 comps, 3 ijk, z, y, x)
    inverse = np.linalg.inv(np.asarray(ijk_to_ras, float)[:3, :3])  # d ijk / d ras
    d_ras = np.einsum("tcazyx,ab->tzyxcb", d_ijk, inverse)
    return d_ras + np.eye(3)


__all__ = ["deformation_gradients"]
