"""Static surroundings of the phantom heart in RAS mm: torso with subcutaneous fat and chest-wall
muscle, lungs, liver, spine and descending aorta. The body is centred on the RAS origin; the axial
(R-A) cross-section of an adult torso is ~320 x 220 mm."""

from __future__ import annotations

import numpy as np

from .tissues import Tissue


def _inside_ellipsoid(points: np.ndarray, centre, semi_axes) -> np.ndarray:
    u = (points - np.asarray(centre, float)) / np.asarray(semi_axes, float)
    return np.einsum("...i,...i->...", u, u) <= 1.0


def _inside_cylinder_z(points: np.ndarray, centre_ra, radii) -> np.ndarray:
    u = (points[..., :2] - np.asarray(centre_ra, float)) / np.asarray(radii, float)
    return np.einsum("...i,...i->...", u, u) <= 1.0


def background_tissue(points_ras: np.ndarray) -> np.ndarray:
    """Tissue class (:class:`Tissue`) of the static surroundings at RAS points ``(..., 3)``."""
    points_ras = np.asarray(points_ras, float)
    tissue = np.full(points_ras.shape[:-1], Tissue.AIR, dtype=np.uint8)
    torso = _inside_cylinder_z(points_ras, (0.0, 0.0), (165.0, 112.0))
    tissue[torso] = Tissue.FAT
    tissue[_inside_cylinder_z(points_ras, (0.0, 0.0), (152.0, 100.0))] = Tissue.MUSCLE
    tissue[_inside_cylinder_z(points_ras, (0.0, -2.0), (140.0, 88.0))] = Tissue.SOFT_TISSUE
    tissue[_inside_ellipsoid(points_ras, (85.0, -10.0, 40.0), (55.0, 75.0, 140.0))] = Tissue.LUNG
    tissue[_inside_ellipsoid(points_ras, (-90.0, -10.0, 40.0), (50.0, 75.0, 140.0))] = Tissue.LUNG
    tissue[_inside_ellipsoid(points_ras, (45.0, 0.0, -125.0), (100.0, 80.0, 65.0))] = Tissue.LIVER
    tissue[_inside_cylinder_z(points_ras, (-25.0, -55.0), (12.0, 12.0))] = Tissue.AORTA
    tissue[_inside_cylinder_z(points_ras, (0.0, -78.0), (20.0, 18.0))] = Tissue.BONE
    return tissue


__all__ = ["background_tissue"]
