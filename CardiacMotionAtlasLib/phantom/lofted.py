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
        s = self.shape
        loft = s.from_frame(material)
        x, y, z = loft[..., 0], loft[..., 1], loft[..., 2]
        q, phi = x * x + y * y, np.arctan2(y, x)
        out = np.full(q.shape, NOT_HEART, dtype=np.uint8)
        inside = (z >= 0.0) & (z <= s.epi_length)
        if np.any(inside):
            p, zz, qq = phi[inside], z[inside], q[inside]
            q_epi, q_rv = s.q_epi(p, zz), s.q_rv(p, zz)
            tissue = np.full(qq.shape, NOT_HEART, dtype=np.uint8)
            has_rv = q_rv > q_epi
            tissue[has_rv & (qq < s.q_rv_wall(p, zz))] = Tissue.RV_WALL
            tissue[has_rv & (qq < q_rv)] = Tissue.RV_BLOOD
            tissue[qq < q_epi] = Tissue.LV_MYOCARDIUM
            tissue[qq < s.q_endo(p, zz)] = Tissue.LV_BLOOD
            out[inside] = tissue
        above = (z < 0.0) & (z > -self.params.atrium_height_mm)
        if np.any(above):
            atrium = q[above] <= s.q_atrium(phi[above], z[above])
            out[np.flatnonzero(above)[atrium]] = Tissue.ATRIAL_BLOOD
        return out

    def _near_heart(self, points_local: np.ndarray) -> np.ndarray:
        """Heart tissue stays, at every phase, inside the loft-frame cylinder that holds the in-plane
        motion (radius below the far radius, where the motion is the identity) between the atrial
        dome's top and the apex: shortening moves material towards the fixed apex only."""
        s = self.shape
        loft = s.from_frame(points_local)
        q = loft[..., 0] ** 2 + loft[..., 1] ** 2
        z = loft[..., 2]
        return (q <= s.far_radius**2) & (z >= -self.params.atrium_height_mm - 1.0) & (z <= s.epi_length + 1.0)

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
        rho = np.sqrt(s.q_rv_wall(p, zz))
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
