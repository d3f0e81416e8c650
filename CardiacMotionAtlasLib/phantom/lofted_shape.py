"""End-diastolic anatomy of a ``lofted`` heart (mm).

**Loft frame**: z along the LV axis, base plane at ``z = 0``, apex at ``z > 0``; +x towards the RV. At
every level ``z`` the heart is described in polar coordinates ``(rho, phi)`` about the axis, through the
area coordinate ``q = rho^2`` (area per radian between two radii is ``(q2 - q1) / 2``):

* LV cavity ``q < q_endo(phi, z)``: a radius profile with its widest section at ``widest_fraction`` of
  the cavity length, narrowing towards the annulus and closing at the apex as ``(1 - u^m)^(gamma/2)``
  (blunt or pointed), times a non-circular cross-section (2nd/3rd harmonics turning along the axis and a
  flattened septum);
* LV myocardium ``q_endo < q < q_epi``: the epicardial profile is the cavity's, widened by the wall
  thickness, with regional thickness (thicker septum, a two-lobed variation, thinner base and apex);
* RV blood ``q_epi < q < q_rv``: the inside of an ellipse that holds the axis, cut by the LV
  (so the crescent meets the septum at sharp insertion points), shrinking towards its apex; its depth is
  calibrated to the RV EDV; RV free wall ``q_rv < q < q_rv_wall``;
* atrial blood above the base (``z < 0``) in a dome over the annulus.

The **LV frame** of the heart is the loft frame bent by two volume-preserving shears: ``z += c(x, y)``
(a tilted, saddle-shaped base) then ``(x, y) += b(z)`` (a curved long axis), shifted so that its origin
is mid-cavity. Both shears have unit Jacobian, so volumes computed in the loft frame are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from .lofted_parameters import LoftedParameters

RV_FREE_WALL_MM = 3.5
ANNULUS_BLEND_MM = 12.0
"""Above the base the in-plane motion fades out over this height (continuity of the flow)."""


def smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _gauss_levels(lo: float, hi: float, n: int):
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return 0.5 * (hi - lo) * nodes + 0.5 * (hi + lo), 0.5 * (hi - lo) * weights


@dataclass
class LoftedShape:
    """ED geometry of one lofted heart (loft frame, mm); see the module docstring."""

    params: LoftedParameters
    radius: float = 0.0  # widest cavity radius
    cavity_length: float = 0.0
    epi_length: float = 0.0
    rv_depth: float = 0.0  # RV depth (mm) beyond the epicardium towards +x at the widest level
    rv_centre: float = 0.0
    rv_semi_axis: float = 0.0
    far_radius: float = 0.0  # beyond it the in-plane motion is the identity
    wall_radius: float = 0.0  # largest distance of heart tissue (RV free wall) from the axis at ED

    @classmethod
    def from_parameters(cls, params: LoftedParameters) -> "LoftedShape":
        shape = cls(params)
        shape._size_cavity(params.lv_edv_ml)
        shape._calibrate_rv(params.rv_edv_ml)
        phi = np.linspace(-np.pi, np.pi, 181)
        z = np.linspace(0.0, shape.epi_length, 121)
        p, zz = np.meshgrid(phi, z, indexing="ij")
        shape.wall_radius = float(shape.radii(p, zz)[3].max())
        shape.far_radius = shape.wall_radius / np.sqrt(0.7) + 25.0
        return shape

    # ------------------------------------------------------------------ profiles
    def _profile(self, z: np.ndarray, radius: float, length: float) -> np.ndarray:
        """Radius (mm) of the lofted profile at level ``z``: widest at ``widest_fraction`` of the
        *cavity* length, narrowed at the annulus, closing at ``length``."""
        p = self.params
        widest = p.widest_fraction * self.cavity_length
        z = np.asarray(z, float)
        out = radius * (1.0 - p.annulus_narrowing * (1.0 - np.clip(z, 0.0, widest) / widest) ** 2)
        apical = z > widest
        u = np.minimum((z[apical] - widest) / (length - widest), 1.0)
        out[apical] = radius * (1.0 - u ** p.apex_exponent) ** (0.5 * p.apex_power)
        out[z > length] = 0.0
        return out

    def _cross_section(self, phi: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Relative cavity radius around the axis (1 = circular)."""
        p = self.params
        a2, psi2, a3, psi3 = p.endo_harmonics
        turn = p.harmonic_twist_rad * np.clip(z / max(self.cavity_length, 1e-9), 0.0, 1.0)
        septum = np.maximum(np.cos(phi), 0.0) ** 4
        return (1.0 + a2 * np.cos(2.0 * (phi - psi2 - turn)) + a3 * np.cos(3.0 * (phi - psi3 - turn))
                - p.septal_flattening * septum)

    def _wall_factor(self, phi: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Regional wall thickness relative to the mid-ventricular lateral wall."""
        p = self.params
        amplitude, phase = p.wall_harmonic
        around = 1.0 + (p.septal_wall_ratio - 1.0) * (0.5 + 0.5 * np.cos(phi)) ** 3 + amplitude * np.cos(2.0 * phi - phase)
        v = np.clip(z / self.epi_length, 0.0, 1.0)
        along = (1.0 + (p.basal_wall_ratio - 1.0) * (1.0 - smoothstep(v / 0.3))
                 + (p.apical_wall_ratio - 1.0) * smoothstep((v - 0.5) / 0.5))
        return around * along

    def radii(self, phi: np.ndarray, z: np.ndarray):
        """Distances (mm) from the axis, at angle ``phi`` and level ``z``, of the endocardium, the
        epicardium, the RV blood pool's outer edge and the RV free wall's outer edge, in one pass. Where
        there is no RV the last two equal the epicardium."""
        phi, z = np.broadcast_arrays(np.asarray(phi, float), np.asarray(z, float))
        endo, epi = self._lv_radii(phi, z)
        rv = np.maximum(self._rv_scale(z) * self._rv_ellipse_radius(phi), epi)
        wall = rv + RV_FREE_WALL_MM * np.clip((rv - epi) / 5.0, 0.0, 1.0)
        return endo, epi, rv, wall

    def _lv_radii(self, phi: np.ndarray, z: np.ndarray):
        """(endocardium, epicardium) distances (mm) from the axis."""
        phi, z = np.broadcast_arrays(np.asarray(phi, float), np.asarray(z, float))
        inner = self._profile(z, self.radius, self.cavity_length)
        outer = self._profile(z, self.radius + self.params.wall_mm, self.epi_length)
        endo = inner * self._cross_section(phi, z)
        return endo, endo + (outer - inner) * self._wall_factor(phi, z)

    def rho_endo(self, phi: np.ndarray, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, float)
        return self._profile(z, self.radius, self.cavity_length) * self._cross_section(phi, z)

    def rho_epi(self, phi: np.ndarray, z: np.ndarray) -> np.ndarray:
        return self._lv_radii(phi, z)[1]

    def q_endo(self, phi, z):
        return self.rho_endo(phi, z) ** 2

    def q_epi(self, phi, z):
        return self.rho_epi(phi, z) ** 2

    def _rv_scale(self, z: np.ndarray) -> np.ndarray:
        """Size of the RV ellipse along the axis relative to its widest level (0 beyond its apex)."""
        p = self.params
        widest = p.widest_fraction * self.cavity_length
        end = p.rv_apical_extent * self.epi_length
        basal = 1.0 - 0.15 * (1.0 - np.clip(z, 0.0, widest) / widest) ** 2
        u = np.clip((z - widest) / (end - widest), 0.0, 1.0)
        return np.where(z <= widest, basal, np.sqrt(1.0 - u * u)) * (z >= 0.0)

    def _rv_ellipse_radius(self, phi: np.ndarray) -> np.ndarray:
        """Distance from the axis to the RV ellipse along ``phi`` at the widest level (mm)."""
        a, b, d = self.rv_semi_axis, self.rv_semi_axis * self.params.rv_aspect, self.rv_centre
        c, s = np.cos(phi), np.sin(phi)
        quad = c * c / (a * a) + s * s / (b * b)
        half = d * c / (a * a)
        return (half + np.sqrt(half * half - quad * (d * d / (a * a) - 1.0))) / quad

    def q_rv(self, phi, z):
        """Outer edge of the RV blood pool (area coordinate); equals ``q_epi`` where there is no RV."""
        return self.radii(phi, z)[2] ** 2

    def q_rv_wall(self, phi, z):
        return self.radii(phi, z)[3] ** 2

    def q_atrium(self, phi, z, base_radii=None):
        """Atrial dome above the base (z < 0): reaches past the annulus' mid-wall, closes at its height.
        ``base_radii``: :meth:`radii` at (phi, 0) when already known."""
        endo, epi = (base_radii or self._lv_radii(phi, np.zeros_like(np.asarray(z, float))))[:2]
        rho = endo + 0.6 * (epi - endo)
        return rho**2 * np.clip(1.0 - (z / self.params.atrium_height_mm) ** 2, 0.0, None) * (z < 0)

    # ------------------------------------------------------------------ volumes (quadrature)
    def _integrate(self, integrand, lo: float, hi: float, n_phi: int = 360, n_z: int = 160) -> float:
        """``int int integrand(phi, z) / 2 dphi dz`` (mm^3): trapezoid in phi (periodic), Gauss in z on
        both sides of the widest level (the profile is smooth on each)."""
        phi = np.arange(n_phi) * 2.0 * np.pi / n_phi - np.pi
        widest = self.params.widest_fraction * self.cavity_length
        total = 0.0
        for a, b in ((lo, min(widest, hi)), (max(widest, lo), hi)):
            if b <= a:
                continue
            z, w = _gauss_levels(a, b, n_z)
            p, zz = np.meshgrid(phi, z, indexing="ij")
            total += float((integrand(p, zz).mean(axis=0) * np.pi * w).sum())
        return total

    def _size_cavity(self, edv_ml: float) -> None:
        self.radius, self.cavity_length = 1.0, 2.0 / self.params.sphericity
        unit = self._integrate(self.q_endo, 0.0, self.cavity_length, n_z=240)
        scale = (edv_ml * 1000.0 / unit) ** (1.0 / 3.0)
        self.radius, self.cavity_length = scale, scale * 2.0 / self.params.sphericity
        self.epi_length = self.cavity_length + self.params.wall_mm * self.params.apical_wall_ratio

    def _fit_ellipse(self, depth: float) -> None:
        """RV ellipse through the insertion points at the widest level with the given depth."""
        widest = self.params.widest_fraction * self.cavity_length
        mean_epi = float(np.mean(self.rho_epi(np.linspace(-np.pi, np.pi, 72, endpoint=False), widest)))
        alpha = np.deg2rad(self.params.rv_insertion_half_angle_deg)
        k = self.params.rv_aspect
        reach = mean_epi + depth  # along +x

        def mismatch(a: float) -> float:
            d = reach - a
            return ((mean_epi * np.cos(alpha) - d) / a) ** 2 + (mean_epi * np.sin(alpha) / (k * a)) ** 2 - 1.0

        a = brentq(mismatch, 0.5 * reach * (1 + 1e-9), 50.0 * reach)
        self.rv_semi_axis, self.rv_centre = float(a), float(reach - a)

    def _calibrate_rv(self, rv_edv_ml: float) -> None:
        """RV depth (mm) such that the RV blood pool holds ``rv_edv_ml`` (the volume grows with depth)."""

        def mismatch(depth: float) -> float:
            self._fit_ellipse(depth)
            return self.rv_volume_ml() - rv_edv_ml

        high = 10.0
        while mismatch(high) < 0.0:
            high *= 1.5
            if high > 90.0:
                raise ValueError(f"RV EDV {rv_edv_ml:.0f} ml does not fit this RV construction")
        self.rv_depth = float(brentq(mismatch, 0.5, high, xtol=1e-4))
        self._fit_ellipse(self.rv_depth)

    def lv_cavity_volume_ml(self) -> float:
        """ED LV blood-pool volume (ml)."""
        return self._integrate(self.q_endo, 0.0, self.cavity_length, n_z=240) / 1000.0

    def myocardium_volume_ml(self) -> float:
        """LV myocardial volume (ml), constant over the cycle (the motion is incompressible)."""
        def wall(p, z):
            endo, epi = self._lv_radii(p, z)
            return epi * epi - endo * endo

        return self._integrate(wall, 0.0, self.epi_length, n_z=240) / 1000.0

    def rv_volume_ml(self) -> float:
        """ED RV blood-pool volume (ml)."""
        end = self.params.rv_apical_extent * self.epi_length
        def crescent(p, z):
            _, epi, rv, _ = self.radii(p, z)
            return rv * rv - epi * epi

        return self._integrate(crescent, 0.0, end, n_phi=720, n_z=120) / 1000.0

    # ------------------------------------------------------------------ loft frame <-> LV frame
    @property
    def frame_offset(self) -> float:
        """Loft-frame level (mm) of the LV frame's origin (mid-cavity)."""
        return 0.45 * self.cavity_length

    def _base_height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        p = self.params
        tilt_dir = np.deg2rad(p.base_tilt_azimuth_deg)
        along = x * np.cos(tilt_dir) + y * np.sin(tilt_dir)
        across = -x * np.sin(tilt_dir) + y * np.cos(tilt_dir)
        return np.tan(np.deg2rad(p.base_tilt_deg)) * along + p.base_saddle_mm * (along**2 - across**2) / self.radius**2

    def _bend(self, z: np.ndarray) -> np.ndarray:
        p = self.params
        half = 0.5 * self.epi_length
        return p.axis_bend_mm * ((z - half) / half) ** 2

    def to_frame(self, loft: np.ndarray) -> np.ndarray:
        """Loft frame -> LV frame (mm), volume-preserving."""
        loft = np.asarray(loft, float)
        out = loft.copy()
        out[..., 2] = loft[..., 2] + self._base_height(loft[..., 0], loft[..., 1])
        bend = self._bend(out[..., 2])
        azimuth = np.deg2rad(self.params.axis_bend_azimuth_deg)
        out[..., 0] += bend * np.cos(azimuth)
        out[..., 1] += bend * np.sin(azimuth)
        out[..., 2] -= self.frame_offset
        return out

    def from_frame(self, local: np.ndarray) -> np.ndarray:
        """LV frame -> loft frame (mm), the exact inverse of :meth:`to_frame`."""
        local = np.asarray(local, float)
        out = local.copy()
        out[..., 2] = local[..., 2] + self.frame_offset
        bend = self._bend(out[..., 2])
        azimuth = np.deg2rad(self.params.axis_bend_azimuth_deg)
        out[..., 0] -= bend * np.cos(azimuth)
        out[..., 1] -= bend * np.sin(azimuth)
        out[..., 2] -= self._base_height(out[..., 0], out[..., 1])
        return out


__all__ = ["ANNULUS_BLEND_MM", "LoftedShape", "RV_FREE_WALL_MM", "smoothstep"]
