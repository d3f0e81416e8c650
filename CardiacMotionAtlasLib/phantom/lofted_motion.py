"""Motion law of the ``lofted`` family: exact, closed-form invertible, incompressible in the myocardium.

In the loft frame (:mod:`.lofted_shape`), material point ``(q = rho^2, phi, z)`` moves to
``(q', phi', z')`` with

* **longitudinal shortening** towards the fixed epicardial apex, non-uniform along the axis: with
  ``u = L_epi - z`` (distance from the apex), ``du'/du = lambda(u) = 1 - s(t) eps(u)`` where the strain
  ``eps`` grows linearly from the apex to the base and fades to zero over the atrium above it
  (``u'`` is piecewise quadratic in ``u``, so it inverts in closed form);
* **slice-wise in-plane motion**, piecewise linear in the area coordinate over the knots
  ``0, q_endo, q_epi, q_rv, q_rv_wall, q_far`` with images ``0, (1 - f) q_endo / lambda,
  (q_epi - f q_endo) / lambda, (q_rv - f q_endo - g (q_rv - q_epi)) / lambda, ..., q_far``
  (``f = EF s(t)``, ``g = RVEF s(t)``). In the wall ``dq'/dq = 1 / lambda`` and ``dz'/dz = lambda``,
  so the Jacobian is exactly 1 (incompressible myocardium); the cavity's cross-sections shrink by
  ``(1 - f) / lambda`` over heights stretched by ``lambda``, so the LV volume is exactly
  ``(1 - f) EDV``, and the RV volume ``(1 - g) RVEDV``. Above the base the in-plane motion fades out
  over :data:`~.lofted_shape.ANNULUS_BLEND_MM` (the flow stays continuous across the valve plane);
* **twist** ``phi' = phi + theta(z, t)``, a rotation that depends on the material level only
  (nonlinear from base to apex), fading out radially beyond the heart.

The LV frame is the loft frame bent by volume-preserving shears (:meth:`LoftedShape.to_frame`); the
public maps work in the LV frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

from .lofted_shape import ANNULUS_BLEND_MM, LoftedShape, smoothstep
from .motion import monotone_piecewise_linear

TWIST_FADE_MM = 30.0


class LoftedCurve:
    """Contraction ``s(t)`` (0 at ED, 1 at ES) through the subject's control points: a periodic
    monotone cubic (PCHIP over the control points of three consecutive cycles), so it is C1, has no
    overshoot, and its only maximum is ES."""

    def __init__(self, phases, values) -> None:
        phases, values = np.asarray(phases, float), np.asarray(values, float)
        knots = np.concatenate([[0.0], phases, [1.0]])
        heights = np.concatenate([[0.0], values, [0.0]])
        extended_t = np.concatenate([knots[:-1] - 1.0, knots[:-1], knots[:-1] + 1.0, [2.0]])
        extended_s = np.concatenate([heights[:-1]] * 3 + [[0.0]])
        self._spline = PchipInterpolator(extended_t, extended_s)
        self.es_phase = float(phases[int(np.argmax(values))])

    def __call__(self, phase) -> np.ndarray:
        return np.clip(self._spline(np.mod(np.asarray(phase, float), 1.0)), 0.0, 1.0)


@dataclass
class LoftedState:
    contraction: float
    lv_fraction: float
    rv_fraction: float
    knots_u: np.ndarray  # distance from the apex (mm) where the stretch's slope changes
    stretch_at_knots: np.ndarray  # lambda at those knots
    integral_at_knots: np.ndarray  # u' at those knots


class LoftedMotion:
    """Forward and inverse material <-> spatial maps (LV frame, mm) of a lofted heart."""

    def __init__(self, shape: LoftedShape, curve: LoftedCurve) -> None:
        self.shape, self.curve = shape, curve
        p = shape.params
        self.lv_ef, self.rv_ef = p.lv_ef, p.rv_ef
        self.centre = shape.to_frame(np.array([0.0, 0.0, shape.frame_offset]))
        self.max_strain = max(p.long_strain_base, p.long_strain_apex)

    def state(self, phase: float) -> LoftedState:
        s = float(self.curve(phase))
        p, L = self.shape.params, self.shape.epi_length
        knots = np.array([0.0, L, L + p.atrium_height_mm])
        stretch = np.array([1.0 - s * p.long_strain_apex, 1.0 - s * p.long_strain_base, 1.0])
        integral = np.concatenate([[0.0], np.cumsum(0.5 * (stretch[1:] + stretch[:-1]) * np.diff(knots))])
        return LoftedState(s, p.lv_ef * s, p.rv_ef * s, knots, stretch, integral)

    # ------------------------------------------------------------------ longitudinal
    @staticmethod
    def _segment(st: LoftedState, index: np.ndarray):
        k, lam, integral = st.knots_u, st.stretch_at_knots, st.integral_at_knots
        slope = np.diff(lam) / np.diff(k)
        return k[index], lam[index], integral[index], slope[np.minimum(index, len(slope) - 1)]

    def _stretch_and_shift(self, u: np.ndarray, st: LoftedState):
        """(lambda(u), u'(u)) for material distances ``u`` from the apex."""
        k = st.knots_u
        index = np.clip(np.searchsorted(k, u, side="right") - 1, 0, len(k) - 2)
        k0, lam0, int0, slope = self._segment(st, index)
        d = u - k0
        lam = lam0 + slope * d
        shifted = int0 + lam0 * d + 0.5 * slope * d * d
        beyond = u >= k[-1]
        lam = np.where(beyond, 1.0, lam)
        shifted = np.where(beyond, st.integral_at_knots[-1] + (u - k[-1]), shifted)
        apical = u < 0.0
        lam = np.where(apical, st.stretch_at_knots[0], lam)
        shifted = np.where(apical, st.stretch_at_knots[0] * u, shifted)
        return lam, shifted

    def _unshift(self, shifted: np.ndarray, st: LoftedState) -> np.ndarray:
        """Inverse of ``u -> u'``: the quadratic of each segment solved in its stable form."""
        integral = st.integral_at_knots
        index = np.clip(np.searchsorted(integral, shifted, side="right") - 1, 0, len(integral) - 2)
        k0, lam0, int0, slope = self._segment(st, index)
        r = shifted - int0
        u = k0 + 2.0 * r / (lam0 + np.sqrt(np.maximum(lam0 * lam0 + 2.0 * slope * r, 0.0)))
        u = np.where(shifted >= integral[-1], st.knots_u[-1] + (shifted - integral[-1]), u)
        return np.where(shifted < 0.0, shifted / st.stretch_at_knots[0], u)

    # ------------------------------------------------------------------ in-plane
    def _knots(self, phi: np.ndarray, z: np.ndarray, lam: np.ndarray, st: LoftedState):
        """Material and spatial knots of the area coordinate in the column (phi, z), and the radii
        (:meth:`LoftedShape.radii`) at the column's level (the base section above the base)."""
        s = self.shape
        radii = s.radii(phi, np.maximum(z, 0.0))
        blend = np.where(z < 0.0, smoothstep(1.0 + z / ANNULUS_BLEND_MM), 1.0)
        f, g = st.lv_fraction * blend, st.rv_fraction * blend
        q_endo, q_epi, q_rv, q_wall = (r * r for r in radii)
        q_far = np.full_like(q_endo, s.far_radius**2)
        moved_rv = f * q_endo + g * (q_rv - q_epi)
        material = np.stack([np.zeros_like(q_endo), q_endo, q_epi, q_rv, q_wall, q_far], axis=-1)
        spatial = np.stack([np.zeros_like(q_endo), (1.0 - f) * q_endo / lam, (q_epi - f * q_endo) / lam,
                            (q_rv - moved_rv) / lam, (q_wall - moved_rv) / lam, q_far], axis=-1)
        return material, spatial, radii

    def twist_angle(self, z: np.ndarray, radius_after: np.ndarray, st: LoftedState) -> np.ndarray:
        """Rotation (rad) of the material at level ``z`` found at in-plane radius ``radius_after``."""
        p, L = self.shape.params, self.shape.epi_length
        along = np.clip(z / L, 0.0, 1.0) ** p.twist_exponent
        angle = np.deg2rad(p.twist_base_deg + (p.twist_apex_deg - p.twist_base_deg) * along) * st.contraction
        angle = np.where(z < 0.0, angle * smoothstep(1.0 + z / ANNULUS_BLEND_MM), angle)
        fade = np.clip((radius_after - self.shape.far_radius) / TWIST_FADE_MM, 0.0, 1.0)
        return angle * 0.5 * (1.0 + np.cos(np.pi * fade))

    # ------------------------------------------------------------------ loft-frame maps
    def _forward_loft(self, points: np.ndarray, st: LoftedState) -> np.ndarray:
        x, y, z = points[..., 0], points[..., 1], points[..., 2]
        phi = np.arctan2(y, x)
        lam, shifted = self._stretch_and_shift(self.shape.epi_length - z, st)
        material, spatial, _ = self._knots(phi, z, lam, st)
        radius = np.sqrt(monotone_piecewise_linear(x * x + y * y, material, spatial))
        turned = phi + self.twist_angle(z, radius, st)
        return np.stack([radius * np.cos(turned), radius * np.sin(turned), self.shape.epi_length - shifted], -1)

    def _inverse_loft(self, points: np.ndarray, st: LoftedState, with_radii: bool = False):
        """Material loft-frame points of spatial loft-frame ``points``; with ``with_radii`` also the
        radii of the material columns (so that a caller classifying tissue does not recompute them)."""
        x, y = points[..., 0], points[..., 1]
        u = self._unshift(self.shape.epi_length - points[..., 2], st)
        z = self.shape.epi_length - u
        lam, _ = self._stretch_and_shift(u, st)
        radius_after = np.hypot(x, y)
        phi = np.arctan2(y, x) - self.twist_angle(z, radius_after, st)
        material, spatial, radii = self._knots(phi, z, lam, st)
        radius = np.sqrt(monotone_piecewise_linear(radius_after**2, spatial, material))
        out = np.stack([radius * np.cos(phi), radius * np.sin(phi), z], -1)
        return (out, radii) if with_radii else out

    # ------------------------------------------------------------------ public maps (LV frame)
    def forward(self, material_points: np.ndarray, phase: float) -> np.ndarray:
        """Spatial position (LV frame, mm) at ``phase`` of material points given at ED."""
        loft = self.shape.from_frame(np.asarray(material_points, float))
        return self.shape.to_frame(self._forward_loft(loft, self.state(phase)))

    def inverse_loft_with_radii(self, spatial_loft: np.ndarray, phase: float):
        """(material loft-frame points, radii of their columns) of spatial loft-frame points."""
        return self._inverse_loft(np.asarray(spatial_loft, float), self.state(phase), with_radii=True)

    def inverse(self, spatial_points: np.ndarray, phase: float) -> np.ndarray:
        """Material (ED) position of the tissue found at ``spatial_points`` at ``phase``."""
        loft = self.shape.from_frame(np.asarray(spatial_points, float))
        return self.shape.to_frame(self._inverse_loft(loft, self.state(phase)))


__all__ = ["LoftedCurve", "LoftedMotion", "LoftedState", "TWIST_FADE_MM"]
