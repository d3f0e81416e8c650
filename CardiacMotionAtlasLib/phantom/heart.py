"""One synthetic 4D heart in RAS mm with exact ground truth at any (point, phase).

The ``ellipsoidal`` phantom family. :class:`PhantomHeart` combines the ED shape (:mod:`.shape`), the
motion law (:mod:`.motion`) and the static surroundings (:mod:`.background`); the queries common to every
family (labels, flows, meshes, indices) live in :class:`~.heart_base.AnalyticHeart`. Material coordinates are ED positions (phase 0 is the
identity). Every query is vectorised over points ``(..., 3)`` in RAS mm.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from .heart_base import MYOCARDIAL_DENSITY_G_PER_ML, NOT_HEART, AnalyticHeart, grid_points_ras, lv_frame_to_ras
from .motion import HeartMotion
from .parameters import SubjectParameters, sample_subject_parameters
from .shape import ATRIUM_HEIGHT_MM, RV_FREE_WALL_MM, HeartShape
from .surfaces import SURFACE_NAMES, material_surface
from .tissues import Tissue
from .volume_curve import ContractionCurve


class PhantomHeart(AnalyticHeart):
    """The analytic 4D heart of one subject (see module docstring); the ``ellipsoidal`` family."""

    family = "ellipsoidal"

    def __init__(self, params: SubjectParameters) -> None:
        self.params = params
        self.shape = HeartShape.from_parameters(params)
        self.curve = ContractionCurve.for_heart_rate(params.heart_rate_bpm, params.atrial_fraction)
        self.motion = HeartMotion(self.shape, self.curve, params.lv_ef, params.rv_ef, params.torsion_deg,
                                  params.long_axis_strain)
        self.local_to_ras = lv_frame_to_ras(params)
        self.ras_to_local = np.linalg.inv(self.local_to_ras)
        self._surface_cache: Dict[Tuple[str, int, int], Tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_seed(cls, seed: int, index: int = 0, kind: Optional[str] = None) -> "PhantomHeart":
        return cls(sample_subject_parameters(seed, index, kind))

    def lv_extent_local(self) -> Tuple[float, float]:
        """(base, epicardial apex) positions (mm) along the LV frame's z axis at ED; base < apex."""
        return float(self.shape.z_base), float(self.shape.c_epi)

    def epicardial_ring_local(self, fraction_from_base: float, n: int = 72) -> np.ndarray:
        """Material epicardial points (LV frame, mm) at a level between the base (0) and the
        epicardial apex (1), ``(n, 3)``."""
        s = self.shape
        z = s.z_base + fraction_from_base * (s.c_epi - s.z_base)
        rho = s.a_epi * np.sqrt(max(1.0 - (z / s.c_epi) ** 2, 0.0))
        phi = np.arange(n) * 2 * np.pi / n
        return np.stack([rho * np.cos(phi), rho * np.sin(phi), np.full(n, z)], -1)

    def endocardial_ring_local(self, fraction_from_base: float, n: int = 72) -> np.ndarray:
        """Material endocardial points (LV frame, mm) between the base (0) and the endocardial apex (1)."""
        s = self.shape
        z = s.z_base + fraction_from_base * (s.c_endo - s.z_base)
        rho = s.a_endo * np.sqrt(max(1.0 - (z / s.c_endo) ** 2, 0.0))
        phi = np.arange(n) * 2 * np.pi / n
        return np.stack([rho * np.cos(phi), rho * np.sin(phi), np.full(n, z)], -1)

    def apex_local(self) -> np.ndarray:
        """Material epicardial apex (LV frame, mm), ``(3,)``."""
        return np.array([0.0, 0.0, self.shape.c_epi])

    # ------------------------------------------------------------------ material tissue
    def material_tissue_local(self, material: np.ndarray) -> np.ndarray:
        """Heart tissue class of material points (LV frame), :data:`NOT_HEART` elsewhere."""
        s = self.shape
        x, y, z = material[..., 0], material[..., 1], material[..., 2]
        rho2 = x * x + y * y
        apical = z >= s.z_base
        inside_endo = rho2 / s.a_endo**2 + z * z / s.c_endo**2 <= 1.0
        inside_epi = rho2 / s.a_epi**2 + z * z / s.c_epi**2 <= 1.0
        out = np.full(material.shape[:-1], NOT_HEART, dtype=np.uint8)
        offset = material - self.motion.centre
        radius = np.linalg.norm(offset, axis=-1)
        directions = offset / np.maximum(radius, 1e-9)[..., None]
        r_epi = s.r_epi(directions)
        thickness = s.rv_thickness(directions, r_epi)
        wall = RV_FREE_WALL_MM * np.clip(thickness / 6.0, 0.0, 1.0)
        has_rv = apical & (thickness > 0.05) & (radius > r_epi)
        out[has_rv & (radius <= r_epi + thickness + wall)] = Tissue.RV_WALL
        out[has_rv & (radius < r_epi + thickness)] = Tissue.RV_BLOOD
        atrium = (~apical) & (
            rho2 / (0.85 * s.a_epi) ** 2 + ((z - s.z_base) / ATRIUM_HEIGHT_MM) ** 2 <= 1.0
        )
        out[atrium] = Tissue.ATRIAL_BLOOD
        out[apical & inside_epi] = Tissue.LV_MYOCARDIUM
        out[apical & inside_endo] = Tissue.LV_BLOOD
        return out

    # ------------------------------------------------------------------ spatial queries
    def _near_heart(self, points_local: np.ndarray) -> np.ndarray:
        """Points inside the cylinder (about the long axis) that holds all heart material at ED. The
        motion moves points towards the contraction centre, towards the apex along the axis (widening
        them by at most ``max_radial_expansion``) or rotates them about the axis, so the heart stays
        inside it at every phase."""
        s = self.shape
        radius = (s.a_epi + s.rv_thickness_max + RV_FREE_WALL_MM) * self.motion.max_radial_expansion + 2.0
        z = points_local[..., 2]
        rho2 = points_local[..., 0] ** 2 + points_local[..., 1] ** 2
        return (rho2 <= radius * radius) & (z >= s.z_base - ATRIUM_HEIGHT_MM - 2.0) & (z <= s.c_epi + 2.0)

    def _extent_points_local(self) -> np.ndarray:
        vertices = self.material_surface_local("epicardium")[0]
        pad = self.shape.rv_thickness_max
        return np.concatenate([vertices - pad, vertices + pad])

    def _build_surface(self, name: str, n_rings: int, n_around: int):
        return material_surface(self.shape, name, n_rings, n_around)

    def myocardium_volume_ml(self) -> float:
        return self.shape.myocardium_volume_ml()

    def lv_volume_ml(self, phase) -> np.ndarray:
        """Exact LV blood-pool volume (ml) at ``phase`` (scalar or array)."""
        return self.shape.lv_cavity_volume_ml() * (1.0 - self.params.lv_ef * self.curve(phase))

    @property
    def rv_edv_ml(self) -> float:
        """ED RV blood-pool volume (ml) by ray quadrature (computed once)."""
        if not hasattr(self, "_rv_edv"):
            self._rv_edv = self.shape.rv_volume_ml()
        return self._rv_edv

    def rv_volume_ml(self, phase) -> np.ndarray:
        """RV blood-pool volume (ml) at ``phase`` (exact up to the ray quadrature of the ED volume)."""
        return self.rv_edv_ml * (1.0 - self.params.rv_ef * self.curve(phase))


__all__ = ["PhantomHeart", "grid_points_ras", "lv_frame_to_ras", "NOT_HEART", "MYOCARDIAL_DENSITY_G_PER_ML", "SURFACE_NAMES"]
