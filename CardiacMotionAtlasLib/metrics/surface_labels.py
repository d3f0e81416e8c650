"""Surface distances between label maps (mm): surface voxels + Euclidean distance transforms.

A mask's surface voxels are its foreground voxels with at least one face-neighbour (6-connectivity in
3D) in the background (voxels on the array border count as surface). Distances are between surface
voxel centres, computed by ``scipy.ndimage.distance_transform_edt`` with the voxel spacing, so they are
in mm. Arrays are ``(z, y, x)`` (2D ``(y, x)`` also accepted with ``spacing_zyx`` of length 2).

Empty masks: both empty -> 0.0 (identical); exactly one empty -> ``inf``.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from ..geometry.affine import decompose_ijk_to_ras


def _spacing(
    ndim: int, spacing_zyx: Optional[Sequence[float]], ijk_to_ras: Optional[np.ndarray]
) -> np.ndarray:
    if spacing_zyx is not None and ijk_to_ras is not None:
        raise ValueError("give either spacing_zyx or ijk_to_ras, not both")
    if ijk_to_ras is not None:
        if ndim != 3:
            raise ValueError("ijk_to_ras needs 3D (z, y, x) arrays")
        return decompose_ijk_to_ras(ijk_to_ras)[2][::-1].copy()  # (i, j, k) -> (z, y, x)
    spacing = np.ones(ndim) if spacing_zyx is None else np.asarray(spacing_zyx, dtype=float).reshape(-1)
    if spacing.shape != (ndim,) or np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise ValueError(f"spacing_zyx must be {ndim} positive values (mm), got {spacing_zyx}")
    return spacing


def _mask(labels: np.ndarray, label: Optional[int]) -> np.ndarray:
    labels = np.asarray(labels)
    return labels != 0 if label is None else labels == label


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Boolean map of the mask's surface voxels (foreground with a background face-neighbour)."""
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def label_surface_distances(
    labels_a: np.ndarray,
    labels_b: np.ndarray,
    label: Optional[int] = None,
    spacing_zyx: Optional[Sequence[float]] = None,
    ijk_to_ras: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Directed surface distances (mm) ``(A surface -> B surface, B surface -> A surface)`` for the
    voxels equal to ``label`` (non-zero voxels when ``label`` is None). Spacing comes from
    ``spacing_zyx`` (mm, array-axis order) or ``ijk_to_ras``; default 1 mm. Empty arrays for an empty
    mask."""
    mask_a, mask_b = _mask(labels_a, label), _mask(labels_b, label)
    if mask_a.shape != mask_b.shape:
        raise ValueError(f"label maps differ in shape: {mask_a.shape} vs {mask_b.shape}")
    spacing = _spacing(mask_a.ndim, spacing_zyx, ijk_to_ras)
    surface_a, surface_b = surface_voxels(mask_a), surface_voxels(mask_b)
    if not surface_a.any() or not surface_b.any():
        return np.zeros(0), np.zeros(0)
    to_b = ndimage.distance_transform_edt(~surface_b, sampling=spacing)
    to_a = ndimage.distance_transform_edt(~surface_a, sampling=spacing)
    return to_b[surface_a], to_a[surface_b]


def _empty_value(labels_a: np.ndarray, labels_b: np.ndarray, label: Optional[int]) -> Optional[float]:
    any_a, any_b = bool(_mask(labels_a, label).any()), bool(_mask(labels_b, label).any())
    if not any_a and not any_b:
        return 0.0
    if any_a != any_b:
        return float("inf")
    return None


def hausdorff95_labels(
    labels_a: np.ndarray,
    labels_b: np.ndarray,
    label: Optional[int] = None,
    spacing_zyx: Optional[Sequence[float]] = None,
    ijk_to_ras: Optional[np.ndarray] = None,
    percentile: float = 95.0,
) -> float:
    """Symmetric percentile Hausdorff distance (mm) between label-map surfaces:
    ``max(P95(d(A->B)), P95(d(B->A)))``. Both empty -> 0.0, one empty -> inf."""
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    d_ab, d_ba = label_surface_distances(labels_a, labels_b, label, spacing_zyx, ijk_to_ras)
    empty = _empty_value(labels_a, labels_b, label)
    if empty is not None:
        return empty
    return float(max(np.percentile(d_ab, percentile), np.percentile(d_ba, percentile)))


def mean_surface_distance_labels(
    labels_a: np.ndarray,
    labels_b: np.ndarray,
    label: Optional[int] = None,
    spacing_zyx: Optional[Sequence[float]] = None,
    ijk_to_ras: Optional[np.ndarray] = None,
) -> float:
    """Symmetric mean surface distance (mm) between label-map surfaces: mean over the union of both
    directed distance sets. Both empty -> 0.0, one empty -> inf."""
    d_ab, d_ba = label_surface_distances(labels_a, labels_b, label, spacing_zyx, ijk_to_ras)
    empty = _empty_value(labels_a, labels_b, label)
    if empty is not None:
        return empty
    return float(np.concatenate([d_ab, d_ba]).mean())


__all__ = [
    "surface_voxels",
    "label_surface_distances",
    "hausdorff95_labels",
    "mean_surface_distance_labels",
]
