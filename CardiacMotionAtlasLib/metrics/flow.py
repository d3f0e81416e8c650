"""Endpoint error (EPE) between two displacement fields on the same grid, in mm and in voxels.

EPE at a voxel is ``|u_pred - u_ref|``. In mm it is the Euclidean norm of the RAS difference. In voxels
the RAS difference is first expressed along the voxel axes and divided per axis by the spacing, i.e.
``inv(M) @ (u_pred - u_ref)`` with ``M`` the 3x3 part of IJK->RAS, then the norm is taken (for an
axis-aligned grid: each of R, A, S divided by its spacing). With 1 mm isotropic voxels both agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..data.displacement_field import DisplacementField


def _check_pair(predicted: DisplacementField, reference: DisplacementField) -> None:
    for name, value in (("predicted", predicted), ("reference", reference)):
        if not isinstance(value, DisplacementField):
            raise ValueError(f"{name} must be a DisplacementField, got {type(value).__name__}")
    if predicted.shape_zyx != reference.shape_zyx:
        raise ValueError(f"field grids differ: {predicted.shape_zyx} vs {reference.shape_zyx}")
    if not np.allclose(predicted.ijk_to_ras, reference.ijk_to_ras, atol=1e-4):
        raise ValueError("fields have different IJK->RAS geometry; resample one onto the other's grid first")


def endpoint_error_map(
    predicted: DisplacementField, reference: DisplacementField, in_voxels: bool = False
) -> np.ndarray:
    """``(z, y, x)`` endpoint error, in mm (default) or in voxels (see module docstring)."""
    _check_pair(predicted, reference)
    difference = predicted.vectors.astype(np.float64) - reference.vectors.astype(np.float64)
    if in_voxels:
        difference = np.einsum("ar,r...->a...", np.linalg.inv(predicted.ijk_to_ras[:3, :3]), difference)
    return np.sqrt(np.sum(difference**2, axis=0))


@dataclass(frozen=True)
class EndpointError:
    """Summary of the endpoint error over the grid (or mask).

    Attributes:
        mean_mm, std_mm: mean and standard deviation (mm).
        mean_voxels, std_voxels: the same in voxel units.
        n_voxels: number of voxels averaged.
    """

    mean_mm: float
    std_mm: float
    mean_voxels: float
    std_voxels: float
    n_voxels: int


def endpoint_error(
    predicted: DisplacementField, reference: DisplacementField, mask: Optional[np.ndarray] = None
) -> EndpointError:
    """Mean and std of the endpoint error (mm and voxels), optionally where ``mask`` is non-zero."""
    epe_mm = endpoint_error_map(predicted, reference)
    epe_vox = endpoint_error_map(predicted, reference, in_voxels=True)
    if mask is not None:
        mask = np.asarray(mask) != 0
        if mask.shape != epe_mm.shape:
            raise ValueError(f"mask shape {mask.shape} != field grid {epe_mm.shape}")
        epe_mm, epe_vox = epe_mm[mask], epe_vox[mask]
    if epe_mm.size == 0:
        raise ValueError("no voxels to evaluate (empty mask)")
    return EndpointError(
        mean_mm=float(epe_mm.mean()),
        std_mm=float(epe_mm.std()),
        mean_voxels=float(epe_vox.mean()),
        std_voxels=float(epe_vox.std()),
        n_voxels=int(epe_mm.size),
    )


__all__ = ["endpoint_error_map", "EndpointError", "endpoint_error"]
