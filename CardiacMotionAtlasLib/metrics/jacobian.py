"""Jacobian determinant of the map ``x -> x + u(x)`` of a :class:`DisplacementField` (unitless).

Derivatives are taken in physical RAS mm by the shared
:func:`~CardiacMotionAtlasLib.geometry.deformation.deformation_gradients` (``du/dx = du/d(ijk) @ inv(M)``,
``M`` the 3x3 part of IJK->RAS, so oblique grids and anisotropic spacing are handled). ``det(J) <= 0`` marks
folding (the map is locally not invertible).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from ..data.displacement_field import DisplacementField
from ..geometry.deformation import deformation_gradients


def jacobian_matrix(field: DisplacementField) -> np.ndarray:
    """``(z, y, x, 3, 3)`` Jacobian ``I + du/dx`` (rows: RAS components of the mapped point, columns:
    RAS derivative axes); central differences inside, one-sided at the border."""
    if not isinstance(field, DisplacementField):
        raise ValueError(f"expected a DisplacementField, got {type(field).__name__}")
    if min(field.shape_zyx) < 2:
        raise ValueError(f"field grid {field.shape_zyx} needs >= 2 voxels along every axis for gradients")
    return deformation_gradients(field.vectors, field.ijk_to_ras)[0]


def jacobian_determinant(field: DisplacementField) -> np.ndarray:
    """``(z, y, x)`` determinant of ``I + du/dx`` (unitless volume change; 1 = preserved)."""
    return np.linalg.det(jacobian_matrix(field))


@dataclass(frozen=True)
class FoldingStatistics:
    """Voxels with a non-positive Jacobian determinant (``det <= 0``).

    Attributes:
        count: number of such voxels (within the mask, if any).
        fraction: ``count / n_voxels`` in [0, 1] (multiply by 100 for %).
        n_voxels: number of voxels considered.
    """

    count: int
    fraction: float
    n_voxels: int


def negative_jacobian(
    field_or_determinant: Union[DisplacementField, np.ndarray], mask: Optional[np.ndarray] = None
) -> FoldingStatistics:
    """Count and fraction of voxels with ``det(J) <= 0``, optionally only where ``mask`` is non-zero.

    Accepts a :class:`DisplacementField` or a precomputed ``(z, y, x)`` determinant map."""
    if isinstance(field_or_determinant, DisplacementField):
        determinant = jacobian_determinant(field_or_determinant)
    else:
        determinant = np.asarray(field_or_determinant, dtype=float)
    if mask is not None:
        mask = np.asarray(mask) != 0
        if mask.shape != determinant.shape:
            raise ValueError(f"mask shape {mask.shape} != field grid {determinant.shape}")
        determinant = determinant[mask]
    n_voxels = int(determinant.size)
    if n_voxels == 0:
        raise ValueError("no voxels to evaluate (empty field or empty mask)")
    count = int(np.count_nonzero(determinant <= 0))
    return FoldingStatistics(count=count, fraction=count / n_voxels, n_voxels=n_voxels)


__all__ = ["jacobian_matrix", "jacobian_determinant", "FoldingStatistics", "negative_jacobian"]
