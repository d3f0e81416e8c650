"""End-diastolic geometry of the phantom heart in its LV frame (mm).

LV frame: origin at the centre of the LV ellipsoids, +z along the long axis towards the apex, +x
towards the RV. The LV myocardium is the shell between two concentric prolate ellipsoids (endocardium
``x^2/a^2 + y^2/a^2 + z^2/c^2 = 1`` and epicardium with semi-axes ``a + w``, ``c + w_apex``) truncated by
the base plane ``z = z_base`` (open base, closed apex). Everything else is described along rays from
the contraction centre ``O = (0, 0, z_centre)`` on the long axis: the RV blood pool is the crescent
``R_epi(w) < R < R_epi(w) + T(w)`` outside the septum, where ``T`` is a smooth bump over directions
``w`` that vanishes at the RV insertion points, and volumes are exact ray integrals.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .parameters import SubjectParameters

RV_FREE_WALL_MM = 3.5
"""RV free-wall thickness (mm), tapered to zero at the insertion points."""
ATRIUM_HEIGHT_MM = 35.0
"""Height (mm) of the atrial/outflow blood region above the LV base plane."""


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def ray_ellipsoid_distance(
    directions: np.ndarray, origin_z: float, a: float, c: float
) -> np.ndarray:
    """Distance (mm) from ``(0, 0, origin_z)`` (inside the ellipsoid) along unit ``directions``
    ``(..., 3)`` to the ellipsoid ``(x^2 + y^2)/a^2 + z^2/c^2 = 1``."""
    dx, dy, dz = directions[..., 0], directions[..., 1], directions[..., 2]
    quad_a = (dx * dx + dy * dy) / (a * a) + dz * dz / (c * c)
    quad_b = 2.0 * origin_z * dz / (c * c)
    quad_c = origin_z * origin_z / (c * c) - 1.0
    return (-quad_b + np.sqrt(quad_b * quad_b - 4.0 * quad_a * quad_c)) / (2.0 * quad_a)


def truncated_ellipsoid_volume(a: float, c: float, z_low: float, z_high: float) -> float:
    """Exact volume (mm^3) of the ellipsoid ``(x^2+y^2)/a^2 + z^2/c^2 <= 1`` between two z planes."""
    z_low, z_high = max(z_low, -c), min(z_high, c)
    if z_high <= z_low:
        return 0.0
    integral = (z_high - z_low) - (z_high**3 - z_low**3) / (3.0 * c * c)
    return float(np.pi * a * a * integral)


@dataclass
class HeartShape:
    """ED geometry derived from :class:`SubjectParameters` (lengths mm)."""

    a_endo: float
    c_endo: float
    a_epi: float
    c_epi: float
    z_base: float
    z_centre: float
    rv_thickness_max: float
    rv_half_width_rad: float
    rv_z_full: float  # RV crescent at full depth from the base down to this z
    rv_z_end: float  # and vanishes at this z (towards the apex)

    @classmethod
    def from_parameters(cls, params: SubjectParameters, rv_quadrature: int = 160) -> "HeartShape":
        beta = params.base_cut
        s = params.sphericity
        shape_factor = (1 + beta) - (1 + beta**3) / 3.0
        c = (params.lv_edv_ml * 1000.0 / (np.pi * (s * (1 + beta) / 2.0) ** 2 * shape_factor)) ** (1 / 3)
        a = s * c * (1 + beta) / 2.0
        w = params.wall_thickness_mm
        a_epi, c_epi = a + w, c + w * params.apex_thickness_ratio
        z_base = -beta * c
        cavity_length = c - z_base
        z_centre = c - params.ray_centre_fraction * cavity_length
        epi_length = c_epi - z_base
        shape = cls(
            a_endo=a,
            c_endo=c,
            a_epi=a_epi,
            c_epi=c_epi,
            z_base=z_base,
            z_centre=z_centre,
            rv_thickness_max=0.0,
            rv_half_width_rad=np.deg2rad(params.rv_angular_half_width_deg),
            rv_z_full=z_base + 0.55 * params.rv_apical_extent * epi_length,
            rv_z_end=z_base + params.rv_apical_extent * epi_length,
        )
        shape.rv_thickness_max = shape._calibrate_rv(params.rv_edv_ml, rv_quadrature)
        return shape

    # ----------------------------------------------------------------- rays from the centre
    def r_endo(self, directions: np.ndarray) -> np.ndarray:
        return ray_ellipsoid_distance(directions, self.z_centre, self.a_endo, self.c_endo)

    def r_epi(self, directions: np.ndarray) -> np.ndarray:
        return ray_ellipsoid_distance(directions, self.z_centre, self.a_epi, self.c_epi)

    def rv_thickness(self, directions: np.ndarray, r_epi: np.ndarray) -> np.ndarray:
        """RV crescent depth ``T(w)`` (mm) along each ray, measured outward from the epicardium."""
        return self.rv_thickness_max * self._rv_profile(directions, r_epi)

    def _rv_profile(self, directions: np.ndarray, r_epi: np.ndarray) -> np.ndarray:
        azimuth = np.arctan2(directions[..., 1], directions[..., 0])
        # flat over the middle half of the crescent, cosine taper to zero at the insertion points
        taper = (np.abs(azimuth) / self.rv_half_width_rad - 0.45) / 0.55
        around = np.cos(0.5 * np.pi * np.clip(taper, 0.0, 1.0)) ** 2
        z_epi = self.z_centre + r_epi * directions[..., 2]
        along = 1.0 - _smoothstep((z_epi - self.rv_z_full) / (self.rv_z_end - self.rv_z_full))
        return around * along

    # ----------------------------------------------------------------- volumes (ray quadrature)
    def ray_grid(self, n: int):
        """Midpoint quadrature over the sphere: unit directions ``(n, 2n, 3)`` and solid-angle weights."""
        polar = (np.arange(n) + 0.5) * np.pi / n
        azimuth = (np.arange(2 * n) + 0.5) * np.pi / n - np.pi
        p, q = np.meshgrid(polar, azimuth, indexing="ij")
        directions = np.stack([np.sin(p) * np.cos(q), np.sin(p) * np.sin(q), np.cos(p)], axis=-1)
        weights = np.sin(p) * (np.pi / n) ** 2
        return directions, weights

    def _clip_to_base(self, directions: np.ndarray, r: np.ndarray) -> np.ndarray:
        """Largest radius along each ray that stays on the apical side of the base plane."""
        dz = directions[..., 2]
        limit = np.where(dz < 0, (self.z_base - self.z_centre) / np.minimum(dz, -1e-12), np.inf)
        return np.minimum(r, limit)

    def ray_volume_ml(self, directions, weights, inner: np.ndarray, outer: np.ndarray) -> float:
        """Volume (ml) of ``inner < R < outer`` on the apical side of the base plane."""
        lo = self._clip_to_base(directions, inner)
        hi = self._clip_to_base(directions, outer)
        hi = np.maximum(hi, lo)
        return float(np.sum(weights * (hi**3 - lo**3) / 3.0) / 1000.0)

    def _calibrate_rv(self, rv_edv_ml: float, n: int) -> float:
        directions, weights = self.ray_grid(n)
        r_epi = self.r_epi(directions)
        profile = self._rv_profile(directions, r_epi)
        low, high = 0.0, 150.0
        for _ in range(40):
            mid = 0.5 * (low + high)
            if self.ray_volume_ml(directions, weights, r_epi, r_epi + mid * profile) < rv_edv_ml:
                low = mid
            else:
                high = mid
        return 0.5 * (low + high)

    def lv_cavity_volume_ml(self) -> float:
        """Exact ED LV blood-pool volume (ml): endocardial ellipsoid on the apical side of the base."""
        return truncated_ellipsoid_volume(self.a_endo, self.c_endo, self.z_base, self.c_endo) / 1000.0

    def myocardium_volume_ml(self) -> float:
        """Exact LV myocardial volume (ml), constant over the cycle (the motion is incompressible)."""
        epi = truncated_ellipsoid_volume(self.a_epi, self.c_epi, self.z_base, self.c_epi)
        endo = truncated_ellipsoid_volume(self.a_endo, self.c_endo, self.z_base, self.c_endo)
        return (epi - endo) / 1000.0

    def rv_volume_ml(self, n: int = 256) -> float:
        """ED RV blood-pool volume (ml) by ray quadrature."""
        directions, weights = self.ray_grid(n)
        r_epi = self.r_epi(directions)
        return self.ray_volume_ml(directions, weights, r_epi, r_epi + self.rv_thickness(directions, r_epi))

    @property
    def extent_mm(self) -> float:
        """Radius (mm) around the contraction centre that contains every heart tissue."""
        axial = max(self.c_epi - self.z_centre, self.z_centre - self.z_base + ATRIUM_HEIGHT_MM)
        radial = self.a_epi + self.rv_thickness_max + RV_FREE_WALL_MM
        return float(np.hypot(axial, radial))


__all__ = [
    "ATRIUM_HEIGHT_MM",
    "RV_FREE_WALL_MM",
    "HeartShape",
    "ray_ellipsoid_distance",
    "truncated_ellipsoid_volume",
]
