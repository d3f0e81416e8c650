"""The phantom's motion law: an exact, analytically invertible map from material (ED) to spatial
coordinates at any phase, in the LV frame (mm).

``x = twist_t(stretch_t(ray_shift_t(X)))``:

* **ray shift** about the contraction centre ``O``: each point moves along its ray from ``O``; with
  ``q = R^3`` (R = distance to O) and ``f = EF * s(t)``, ``g = RVEF * s(t)`` (``s`` the contraction curve):
  inside the endocardium ``q' = (1 - f) q`` (the cavity shrinks homothetically, so its volume is
  exactly ``(1 - f) EDV``); in the LV wall ``q' = q - f Q_endo`` (a constant shift of ``R^3``: exactly
  volume-preserving, so the myocardium is incompressible and thickens as it moves inwards); across the
  RV crescent the shift grows so that the RV volume is exactly ``(1 - g) RVEDV``; beyond the RV free
  wall it relaxes linearly in ``q`` to zero over a margin, so far tissue does not move.
* **stretch**: an extra base-to-apex compression about the epicardial apex, ``z' = z_apex +
  lambda (z - z_apex)`` with ``lambda = 1 - long_axis_strain * s(t)``, and in-plane ``(x, y) / sqrt(lambda)``
  (unit Jacobian), which adds base descent while the apex stays still.
* **twist**: rotation about the long axis by an angle that grows linearly from the base
  (``-0.3 * torsion``) to the apex (``+0.7 * torsion``), times ``s(t)``, fading out radially outside the
  heart. A rotation depending only on (z, radius) has unit Jacobian determinant.

Both steps are piecewise smooth and their inverses are closed-form, so labels at any phase are found by
pulling points back to material coordinates, and displacement fields are exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .shape import RV_FREE_WALL_MM, HeartShape
from .volume_curve import ContractionCurve

RELAXATION_MARGIN_MM = 25.0
"""Distance (mm) beyond the heart over which the ray shift decays to zero."""
TWIST_FADE_MM = 30.0
"""Radial distance (mm) beyond the heart over which the twist fades out."""


def monotone_piecewise_linear(q: np.ndarray, knots_from: np.ndarray, knots_to: np.ndarray) -> np.ndarray:
    """Map ``q`` through the monotone piecewise-linear function given per point by its knots
    (``knots_from``/``knots_to`` of shape ``q.shape + (n_knots,)``); identity beyond the last knot.
    Zero-width segments are skipped, so degenerate knots (a tissue of zero thickness) are allowed."""
    out = q.copy()
    for k in range(knots_from.shape[-1] - 1):
        lo, hi = knots_from[..., k], knots_from[..., k + 1]
        inside = (q >= lo) & (q < hi) & (hi > lo)
        if not np.any(inside):
            continue
        lo_i, hi_i = lo[inside], hi[inside]
        t = (q[inside] - lo_i) / (hi_i - lo_i)
        out[inside] = knots_to[..., k][inside] + t * (knots_to[..., k + 1][inside] - knots_to[..., k][inside])
    return out


@dataclass
class PhaseState:
    """Scalars of the motion at one phase."""

    contraction: float  # s(t), 0 at ED, 1 at ES
    lv_fraction: float  # f = EF * s
    rv_fraction: float  # g = RVEF * s
    twist_base_rad: float
    twist_apex_rad: float
    stretch: float  # lambda, 1 at ED


class HeartMotion:
    """Forward and inverse material <-> spatial maps of the phantom heart (LV frame, mm)."""

    def __init__(self, shape: HeartShape, curve: ContractionCurve, lv_ef: float, rv_ef: float,
                 torsion_deg: float, long_axis_strain: float = 0.0) -> None:
        self.shape = shape
        self.curve = curve
        self.lv_ef = float(lv_ef)
        self.rv_ef = float(rv_ef)
        self.torsion_rad = float(np.deg2rad(torsion_deg))
        self.long_axis_strain = float(long_axis_strain)
        self.centre = np.array([0.0, 0.0, shape.z_centre])
        self.twist_inner_radius = shape.a_epi + shape.rv_thickness_max + RV_FREE_WALL_MM

    def state(self, phase: float) -> PhaseState:
        s = float(self.curve(phase))
        return PhaseState(
            contraction=s,
            lv_fraction=self.lv_ef * s,
            rv_fraction=self.rv_ef * s,
            twist_base_rad=-0.3 * self.torsion_rad * s,
            twist_apex_rad=0.7 * self.torsion_rad * s,
            stretch=1.0 - self.long_axis_strain * s,
        )

    @property
    def max_radial_expansion(self) -> float:
        """Largest in-plane scale factor of the stretch over the cycle."""
        return 1.0 / np.sqrt(1.0 - self.long_axis_strain)

    def _stretch(self, points: np.ndarray, st: PhaseState, inverse: bool) -> np.ndarray:
        lam = 1.0 / st.stretch if inverse else st.stretch
        apex = self.shape.c_epi
        out = points.copy()
        out[..., :2] /= np.sqrt(lam)
        out[..., 2] = apex + lam * (points[..., 2] - apex)
        return out

    # ------------------------------------------------------------------ ray shift
    def _breakpoints(self, directions: np.ndarray):
        r_endo = self.shape.r_endo(directions)
        r_epi = self.shape.r_epi(directions)
        r_rv = r_epi + self.shape.rv_thickness(directions, r_epi)
        q_endo, q_epi, q_rv = r_endo**3, r_epi**3, r_rv**3
        q_far = (r_rv + RV_FREE_WALL_MM + RELAXATION_MARGIN_MM) ** 3
        return q_endo, q_epi, q_rv, q_far

    def _shift_breakpoints(self, directions: np.ndarray, st: PhaseState):
        """Material breakpoints in q = R^3 and their images."""
        q_endo, q_epi, q_rv, q_far = self._breakpoints(directions)
        f, g = st.lv_fraction, st.rv_fraction
        material = np.stack([np.zeros_like(q_endo), q_endo, q_epi, q_rv, q_far], axis=-1)
        spatial = np.stack(
            [np.zeros_like(q_endo), (1 - f) * q_endo, q_epi - f * q_endo,
             q_rv - f * q_endo - g * (q_rv - q_epi), q_far],
            axis=-1,
        )
        return material, spatial

    def _ray_shift(self, points: np.ndarray, st: PhaseState, inverse: bool) -> np.ndarray:
        offset = points - self.centre
        radius = np.linalg.norm(offset, axis=-1)
        safe = np.maximum(radius, 1e-9)
        directions = offset / safe[..., None]
        directions[radius < 1e-9] = (0.0, 0.0, 1.0)
        material, spatial = self._shift_breakpoints(directions, st)
        q = radius**3
        if inverse:
            q_new = monotone_piecewise_linear(q, spatial, material)
        else:
            q_new = monotone_piecewise_linear(q, material, spatial)
        return self.centre + directions * np.cbrt(q_new)[..., None]

    # ------------------------------------------------------------------ twist
    def twist_angle(self, points: np.ndarray, st: PhaseState) -> np.ndarray:
        """Rotation angle (rad) about the long axis at spatial ``points`` (LV frame)."""
        shape = self.shape
        along = np.clip((points[..., 2] - shape.z_base) / (shape.c_epi - shape.z_base), 0.0, 1.0)
        angle = st.twist_base_rad + (st.twist_apex_rad - st.twist_base_rad) * along
        radial = np.hypot(points[..., 0], points[..., 1])
        fade = np.clip((radial - self.twist_inner_radius) / TWIST_FADE_MM, 0.0, 1.0)
        return angle * 0.5 * (1.0 + np.cos(np.pi * fade))

    @staticmethod
    def _rotate_z(points: np.ndarray, angle: np.ndarray) -> np.ndarray:
        c, s = np.cos(angle), np.sin(angle)
        out = points.copy()
        out[..., 0] = c * points[..., 0] - s * points[..., 1]
        out[..., 1] = s * points[..., 0] + c * points[..., 1]
        return out

    # ------------------------------------------------------------------ public maps
    def forward(self, material_points: np.ndarray, phase: float) -> np.ndarray:
        """Spatial position (LV frame, mm) at ``phase`` of material points given at ED."""
        st = self.state(phase)
        shifted = self._ray_shift(np.asarray(material_points, float), st, inverse=False)
        stretched = self._stretch(shifted, st, inverse=False)
        return self._rotate_z(stretched, self.twist_angle(stretched, st))

    def inverse(self, spatial_points: np.ndarray, phase: float) -> np.ndarray:
        """Material (ED) position of the tissue found at ``spatial_points`` at ``phase``."""
        st = self.state(phase)
        spatial_points = np.asarray(spatial_points, float)
        untwisted = self._rotate_z(spatial_points, -self.twist_angle(spatial_points, st))
        return self._ray_shift(self._stretch(untwisted, st, inverse=True), st, inverse=True)


__all__ = ["HeartMotion", "monotone_piecewise_linear", "PhaseState", "RELAXATION_MARGIN_MM", "TWIST_FADE_MM"]
