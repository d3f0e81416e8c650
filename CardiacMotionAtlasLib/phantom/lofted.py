"""The ``lofted`` phantom family: one 4D heart with exact ground truth, built independently of the
``ellipsoidal`` family (see :mod:`.lofted_shape` for the anatomy, :mod:`.lofted_motion` for the motion
law and :mod:`.lofted_parameters` for the population).

:class:`LoftedHeart` answers every query of :class:`~.heart_base.AnalyticHeart` (labels, trajectories,
flows, meshes, volumes, indices) in RAS mm; material coordinates are ED positions.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from .heart_base import NOT_HEART, AnalyticHeart, lv_frame_to_ras
from .lofted_motion import LoftedCurve, LoftedMotion
from .lofted_parameters import LoftedParameters, sample_lofted_parameters
from .lofted_shape import LoftedShape
from .surfaces import SURFACE_NAMES, disk_rings, stitch_rings
from .tissues import Tissue


class LoftedHeart(AnalyticHeart):
    """The analytic 4D heart of one ``lofted`` subject."""

    family = "lofted"

    def __init__(self, params: LoftedParameters) -> None:
        self.params = params
        self.shape = LoftedShape.from_parameters(params)
        self.curve = LoftedCurve(params.curve_phases, params.curve_values)
        self.motion = LoftedMotion(self.shape, self.curve)
        self.local_to_ras = lv_frame_to_ras(params)
        self.ras_to_local = np.linalg.inv(self.local_to_ras)
        self._surface_cache: Dict[Tuple[str, int, int], Tuple[np.ndarray, np.ndarray]] = {}
        self._edv_ml = self.shape.lv_cavity_volume_ml()
        self._rv_edv_ml = self.shape.rv_volume_ml()
        self._myocardium_ml = self.shape.myocardium_volume_ml()

    @classmethod
    def from_seed(cls, seed: int, index: int = 0, kind: Optional[str] = None) -> "LoftedHeart":
        return cls(sample_lofted_parameters(seed, index, kind))

    # ------------------------------------------------------------------ anatomy in the LV frame
    def material_tissue_local(self, material: np.ndarray) -> np.ndarray:
        loft = self.shape.from_frame(material)
        level = np.maximum(loft[..., 2], 0.0)
        return self._classify(loft, self.shape.radii(np.arctan2(loft[..., 1], loft[..., 0]), level))

    def tissue_near(self, points_ras: np.ndarray, phase: float, background: np.ndarray) -> np.ndarray:
        """Tissue at points near the heart (one pass: the pull-back's column radii classify the tissue)."""
        spatial = self.shape.from_frame(self.to_local(points_ras))
        material, radii = self.motion.inverse_loft_with_radii(spatial, phase)
        heart = self._classify(material, radii)
        return np.where(heart != NOT_HEART, heart, background).astype(np.uint8)

    def _classify(self, loft: np.ndarray, radii) -> np.ndarray:
        """Tissue class of material loft-frame points given the radii of their columns (at their level
        inside the heart, at the base above it)."""
        x, y, z = loft[..., 0], loft[..., 1], loft[..., 2]
        q = x * x + y * y
        endo, epi, rv, wall = radii
        out = np.full(q.shape, NOT_HEART, dtype=np.uint8)
        inside = (z >= 0.0) & (z <= self.shape.epi_length)
        has_rv = inside & (rv > epi)
        out[has_rv & (q < wall * wall)] = Tissue.RV_WALL
        out[has_rv & (q < rv * rv)] = Tissue.RV_BLOOD
        out[inside & (q < epi * epi)] = Tissue.LV_MYOCARDIUM
        out[inside & (q < endo * endo)] = Tissue.LV_BLOOD
        above = (z < 0.0) & (z > -self.params.atrium_height_mm)
        if np.any(above):
            base = tuple(r[above] for r in radii)
            phi = np.arctan2(y[above], x[above])
            atrium = q[above] <= self.shape.q_atrium(phi, z[above], base_radii=base)
            in_dome = out[above]
            in_dome[atrium] = Tissue.ATRIAL_BLOOD
            out[above] = in_dome
        return out

    def _near_heart(self, points_local: np.ndarray) -> np.ndarray:
        """Heart tissue stays, at every phase, inside the loft-frame cylinder of the RV free wall's largest
        radius widened by the largest in-plane expansion (``1 / sqrt(lambda)``; every knot moves at
        most that far out), between the atrial dome's top and the apex: shortening moves material
        towards the fixed apex only."""
        s = self.shape
        loft = s.from_frame(points_local)
        q = loft[..., 0] ** 2 + loft[..., 1] ** 2
        z = loft[..., 2]
        reach = s.wall_radius / np.sqrt(1.0 - self.motion.max_strain) + 2.0
        return (q <= reach * reach) & (z >= -self.params.atrium_height_mm - 1.0) & (z <= s.epi_length + 1.0)

    def _ring(self, level: float, kind: str, n: int) -> np.ndarray:
        phi = np.arange(n) * 2.0 * np.pi / n
        z = np.full(n, float(level))
        rho = self.shape.rho_endo(phi, z) if kind == "endo" else self.shape.rho_epi(phi, z)
        return np.stack([rho * np.cos(phi), rho * np.sin(phi), z], -1)

    def _cap_rings(self, kind: str, n_rings: int, n_around: int):
        """Pole at the apex, then ``n_rings`` rings down to the base plane (loft frame), spaced so that
        the rings are closer near the apex where the radius changes fastest."""
        length = self.shape.cavity_length if kind == "endo" else self.shape.epi_length
        rings = [np.array([[0.0, 0.0, length]])]
        for k in range(1, n_rings + 1):
            rings.append(self._ring(length * np.cos(0.5 * np.pi * k / n_rings), kind, n_around))
        return rings

    def _build_surface(self, name: str, n_rings: int, n_around: int, n_base: int = 4):
        epi = self._cap_rings("epi", n_rings, n_around)
        endo = self._cap_rings("endo", n_rings, n_around)
        centre = np.zeros((n_around, 3))
        if name == "myocardium":
            rings = epi + disk_rings(epi[-1], endo[-1], n_base) + endo[::-1]
        elif name == "lv_cavity":
            rings = endo + disk_rings(endo[-1], centre, n_base) + [centre[:1]]
        elif name == "epicardium":
            rings = epi + disk_rings(epi[-1], centre, n_base + 2) + [centre[:1]]
        else:
            raise ValueError(f"unknown surface {name!r}; expected one of {SURFACE_NAMES}")
        vertices, faces = stitch_rings(rings)
        return self.shape.to_frame(vertices), faces

    def _extent_points_local(self) -> np.ndarray:
        s = self.shape
        phi = np.linspace(-np.pi, np.pi, 73)
        z = np.linspace(0.0, s.epi_length, 41)
        p, zz = np.meshgrid(phi, z, indexing="ij")
        rho = s.radii(p, zz)[3]
        loft = np.stack([rho * np.cos(p), rho * np.sin(p), zz], -1).reshape(-1, 3)
        return s.to_frame(loft)

    # ------------------------------------------------------------------ landmarks (LV frame)
    def lv_extent_local(self) -> Tuple[float, float]:
        """(highest point of the base, epicardial apex) along the LV frame's z axis at ED; base < apex."""
        base = self.shape.to_frame(self._ring(0.0, "epi", 72))
        apex = self.apex_local()
        return float(base[:, 2].min()), float(apex[2])

    def epicardial_ring_local(self, fraction_from_base: float, n: int = 72) -> np.ndarray:
        return self.shape.to_frame(self._ring(fraction_from_base * self.shape.epi_length, "epi", n))

    def endocardial_ring_local(self, fraction_from_base: float, n: int = 72) -> np.ndarray:
        return self.shape.to_frame(self._ring(fraction_from_base * self.shape.cavity_length, "endo", n))

    def apex_local(self) -> np.ndarray:
        return self.shape.to_frame(np.array([0.0, 0.0, self.shape.epi_length]))

    # ------------------------------------------------------------------ exact volumes
    def lv_volume_ml(self, phase) -> np.ndarray:
        """Exact LV blood-pool volume (ml) at ``phase``: ``EDV (1 - EF s(t))``."""
        return self._edv_ml * (1.0 - self.params.lv_ef * self.curve(phase))

    def rv_volume_ml(self, phase) -> np.ndarray:
        """Exact RV blood-pool volume (ml) at ``phase``: ``RVEDV (1 - RVEF s(t))``."""
        return self._rv_edv_ml * (1.0 - self.params.rv_ef * self.curve(phase))

    def myocardium_volume_ml(self) -> float:
        return self._myocardium_ml


__all__ = ["LoftedHeart", "LoftedParameters", "sample_lofted_parameters"]
