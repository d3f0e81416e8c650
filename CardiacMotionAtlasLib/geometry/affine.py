"""4x4 homogeneous matrices: IJK->RAS construction, decomposition, and RAS<->LPS.

Conventions: world coordinates are RAS millimetres. An ``ijk_to_ras`` matrix maps voxel indices
``(i, j, k, 1)`` (i = x = fastest array axis) to RAS mm. Arrays are indexed ``[k, j, i]``.
ITK/SimpleITK/DICOM use LPS; convert with :data:`RAS_FROM_LPS` only at the I/O boundary.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

from ..errors import GeometryError

RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
"""Flips x and y: LPS <-> RAS (its own inverse)."""


def make_ijk_to_ras(
    origin: Sequence[float], direction: np.ndarray, spacing: Sequence[float]
) -> np.ndarray:
    """IJK->RAS from the RAS origin (mm) of voxel (0, 0, 0), a 3x3 direction (columns = unit i, j, k
    axes in RAS) and the voxel spacing (mm) along i, j, k."""
    direction = np.asarray(direction, dtype=float).reshape(3, 3)
    spacing = np.asarray(spacing, dtype=float).reshape(3)
    matrix = np.eye(4)
    matrix[:3, :3] = direction * spacing[None, :]
    matrix[:3, 3] = np.asarray(origin, dtype=float).reshape(3)
    return matrix


def decompose_ijk_to_ras(matrix: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(origin (3,), direction (3, 3) with unit columns, spacing (3,)) of an IJK->RAS matrix."""
    matrix = np.asarray(matrix, dtype=float)
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(matrix)):
        raise GeometryError(f"IJK->RAS matrix has zero spacing or non-finite entries:\n{matrix}")
    return matrix[:3, 3].copy(), matrix[:3, :3] / spacing[None, :], spacing


def check_ijk_to_ras(matrix: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    """Validate a 4x4 IJK->RAS matrix (finite, last row 0 0 0 1, orthonormal direction) and return it
    as float64. Raises :class:`GeometryError` otherwise."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (4, 4):
        raise GeometryError(f"IJK->RAS matrix must be 4x4, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise GeometryError("IJK->RAS matrix has non-finite entries")
    if not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise GeometryError(f"IJK->RAS matrix last row must be [0 0 0 1], got {matrix[3]}")
    _, direction, _ = decompose_ijk_to_ras(matrix)
    error = np.abs(direction.T @ direction - np.eye(3)).max()
    if error > tolerance:
        raise GeometryError(f"direction cosines are not orthonormal (max error {error:.3g})")
    return matrix


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 matrix to points of shape ``(..., 3)``."""
    points = np.asarray(points, dtype=float)
    matrix = np.asarray(matrix, dtype=float)
    # three broadcast multiply-adds: much faster than an (n, 3) @ (3, 3) matmul for large n
    return (points[..., 0:1] * matrix[:3, 0] + points[..., 1:2] * matrix[:3, 1]
            + points[..., 2:3] * matrix[:3, 2] + matrix[:3, 3])


def rotation_matrix(axis: Sequence[float], angle_rad: float) -> np.ndarray:
    """3x3 rotation by ``angle_rad`` about ``axis`` (right-handed, Rodrigues)."""
    axis = np.asarray(axis, dtype=float)
    axis = axis / np.linalg.norm(axis)
    x, y, z = axis
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    cross = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return c * np.eye(3) + s * cross + (1 - c) * np.outer(axis, axis)


def rigid_matrix(rotation: np.ndarray, translation: Sequence[float]) -> np.ndarray:
    """4x4 rigid transform from a 3x3 rotation and a translation (mm)."""
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = np.asarray(translation, dtype=float)
    return matrix


__all__ = [
    "RAS_FROM_LPS",
    "make_ijk_to_ras",
    "decompose_ijk_to_ras",
    "check_ijk_to_ras",
    "apply_affine",
    "rotation_matrix",
    "rigid_matrix",
]
