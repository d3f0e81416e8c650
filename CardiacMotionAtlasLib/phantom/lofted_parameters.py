"""Subject parameters of the ``lofted`` phantom family and their population distributions.

Drawn independently of the ``ellipsoidal`` family (:mod:`.parameters`): other shape descriptors (cavity
profile with a narrowed annulus and a blunt or pointed apex, non-circular cross-sections, regional wall
thickness, RV as an ellipse cut by the LV, tilted and saddle-shaped base, bent long axis), other motion
descriptors (base-to-apex strain gradient, nonlinear twist profile) and volume curves through random
control points whose ES timing does not follow the heart rate. Physiological ranges follow the same
adult CMR references (Kawel-Boehm et al., JCMR 22:87, 2020): LV EDV ~90-220 ml, EF 55-70 %, mass
80-200 g, wall 6-12 mm; abnormal subjects as in the other family (reduced EF, hypertrophy including
asymmetric septal hypertrophy, dilation). Heart rate 50-100 bpm.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from .parameters import draw_kind

LOFTED_SEED_SALT = 20261207
"""Mixed into every draw so that the family's random streams share nothing with the other family's."""


@dataclass
class LoftedParameters:
    """Everything that defines one ``lofted`` heart (lengths mm, volumes ml, angles degrees, phases as
    normalised cycle fractions). Loft frame: the LV axis is z (base plane at z = 0, apex at z > 0), +x
    towards the RV; ``lv_axis_ras``/``rv_direction_ras``/``heart_centre_ras`` place the LV frame in RAS."""

    subject_id: str
    kind: str
    seed: int
    lv_edv_ml: float
    lv_ef: float
    rv_edv_ml: float
    rv_ef: float
    sphericity: float  # widest cavity diameter / cavity length
    widest_fraction: float  # level of the widest cross-section, fraction of the cavity length from the base
    annulus_narrowing: float  # fractional radius reduction from the widest section to the base
    apex_exponent: float  # m in (1 - u^m)^gamma: larger = flatter apical shoulders
    apex_power: float  # gamma: < 1 blunt apex, > 1 pointed apex
    endo_harmonics: Tuple[float, float, float, float]  # amplitude/phase (rad) of the 2nd and 3rd harmonics
    harmonic_twist_rad: float  # rotation of the harmonic pattern from base to apex
    septal_flattening: float  # fractional radius reduction of the cavity towards the RV
    wall_mm: float  # mid-ventricular lateral wall thickness at ED
    septal_wall_ratio: float
    wall_harmonic: Tuple[float, float]  # amplitude and phase (rad) of a 2-lobed thickness variation
    basal_wall_ratio: float
    apical_wall_ratio: float
    rv_insertion_half_angle_deg: float
    rv_aspect: float  # RV ellipse semi-axis across / along the LV-RV direction
    rv_apical_extent: float  # fraction of the LV length covered by the RV from the base
    atrium_height_mm: float
    base_tilt_deg: float
    base_tilt_azimuth_deg: float
    base_saddle_mm: float
    axis_bend_mm: float
    axis_bend_azimuth_deg: float
    long_strain_base: float  # longitudinal strain at ES near the base (fraction)
    long_strain_apex: float
    twist_base_deg: float  # rotation at ES at the base (negative: clockwise seen from the apex)
    twist_apex_deg: float
    twist_exponent: float
    heart_rate_bpm: float
    curve_phases: Tuple[float, ...]  # volume-curve control points (ED at 0 and 1 implied)
    curve_values: Tuple[float, ...]  # contraction at those phases (1 at ES)
    heart_centre_ras: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    lv_axis_ras: Tuple[float, float, float] = (-0.55, 0.45, -0.7)
    rv_direction_ras: Tuple[float, float, float] = (0.75, 0.6, 0.1)
    blood_hu: float = 400.0
    extra: Dict = field(default_factory=dict)

    @property
    def es_phase(self) -> float:
        return float(self.curve_phases[int(np.argmax(self.curve_values))])

    def to_dict(self) -> Dict:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = [float(v) for v in value]
        out["family"] = "lofted"
        return out

    @classmethod
    def from_dict(cls, data: Dict) -> "LoftedParameters":
        data = {k: v for k, v in data.items() if k != "family"}
        for key, value in data.items():
            if isinstance(value, list):
                data[key] = tuple(value)
        return cls(**data)


def _unit_near(rng: np.random.Generator, mean, degrees: float) -> Tuple[float, float, float]:
    mean = np.asarray(mean, float) / np.linalg.norm(mean)
    tilt = rng.normal(0.0, np.deg2rad(degrees), size=3)
    tilt -= tilt.dot(mean) * mean
    out = mean + tilt
    return tuple(float(v) for v in out / np.linalg.norm(out))


def _volume_curve(rng: np.random.Generator, kind: str) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Control points of the contraction curve: rapid ejection, ES, isovolumic relaxation, end of rapid
    filling, start of the atrial kick (phases strictly increasing inside (0, 1))."""
    impaired = kind in ("reduced_ef", "dilated", "hypertrophy")
    es = float(np.clip(rng.normal(0.37 if impaired else 0.35, 0.045), 0.28, 0.46))
    early = 0.4 * es
    early_value = rng.uniform(0.42, 0.62)
    relax = es + rng.uniform(0.03, 0.07)
    relax_value = rng.uniform(0.92, 0.985)
    filled = relax + rng.uniform(0.12, 0.22)
    filled_value = rng.uniform(0.45, 0.65) if impaired else rng.uniform(0.2, 0.42)
    kick = max(filled + rng.uniform(0.06, 0.12), rng.uniform(0.78, 0.88))
    kick = min(kick, 0.93)
    kick_value = filled_value * rng.uniform(0.6, 0.9)
    return (early, es, relax, filled, kick), (early_value, 1.0, relax_value, filled_value, kick_value)


def sample_lofted_parameters(seed: int, index: int, kind: Optional[str] = None,
                             abnormal_fraction: float = 0.3) -> LoftedParameters:
    """Draw subject ``index`` of the ``lofted`` cohort with base ``seed`` (deterministic). ``kind``
    forces the phenotype; otherwise ~``abnormal_fraction`` of subjects are abnormal."""
    rng = np.random.default_rng([LOFTED_SEED_SALT, seed, index])
    kind = draw_kind(rng, kind, abnormal_fraction)

    edv = rng.uniform(100.0, 200.0)
    ef = rng.uniform(0.55, 0.70)
    wall = rng.uniform(7.0, 10.5)
    sphericity = rng.uniform(0.50, 0.66)
    septal_ratio = rng.uniform(0.95, 1.25)
    strain_base, strain_apex = rng.uniform(0.16, 0.23), rng.uniform(0.03, 0.07)
    twist_apex, twist_base = rng.uniform(8.0, 15.0), -rng.uniform(2.0, 5.0)
    heart_rate = rng.uniform(50.0, 95.0)
    if kind == "reduced_ef":
        edv, ef = rng.uniform(150.0, 230.0), rng.uniform(0.25, 0.45)
        sphericity = rng.uniform(0.62, 0.74)
        strain_base, strain_apex = strain_base * 0.55, strain_apex * 0.5
        twist_apex, twist_base = twist_apex * 0.6, twist_base * 0.6
        heart_rate = rng.uniform(60.0, 100.0)
    elif kind == "hypertrophy":
        wall = rng.uniform(12.5, 16.5)
        septal_ratio = rng.uniform(1.1, 1.5)
        edv, ef = rng.uniform(85.0, 140.0), rng.uniform(0.60, 0.74)
    elif kind == "dilated":
        edv, ef = rng.uniform(230.0, 310.0), rng.uniform(0.20, 0.38)
        wall = rng.uniform(6.0, 8.0)
        sphericity = rng.uniform(0.70, 0.82)
        strain_base, strain_apex = strain_base * 0.45, strain_apex * 0.4
        twist_apex, twist_base = twist_apex * 0.5, twist_base * 0.5
        heart_rate = rng.uniform(60.0, 100.0)
    rv_edv = edv * rng.uniform(0.95, 1.25)
    rv_ef = float(np.clip(ef + rng.uniform(-0.08, 0.03), 0.2, 0.65))
    curve_phases, curve_values = _volume_curve(rng, kind)
    centre = np.array([-12.0, 18.0, 5.0]) + rng.normal(0.0, 6.0, size=3)
    return LoftedParameters(
        subject_id=f"lofted{index:03d}", kind=kind, seed=int(seed),
        lv_edv_ml=float(edv), lv_ef=float(ef), rv_edv_ml=float(rv_edv), rv_ef=rv_ef,
        sphericity=float(sphericity),
        widest_fraction=float(rng.uniform(0.2, 0.4)),
        annulus_narrowing=float(rng.uniform(0.04, 0.16)),
        apex_exponent=float(rng.uniform(1.7, 2.6)),
        apex_power=float(rng.uniform(0.8, 1.35)),
        endo_harmonics=(float(rng.uniform(0.0, 0.06)), float(rng.uniform(0, np.pi)),
                        float(rng.uniform(0.0, 0.04)), float(rng.uniform(0, 2 * np.pi / 3))),
        harmonic_twist_rad=float(rng.uniform(-0.6, 0.6)),
        septal_flattening=float(rng.uniform(0.02, 0.12)),
        wall_mm=float(wall), septal_wall_ratio=float(septal_ratio),
        wall_harmonic=(float(rng.uniform(0.0, 0.12)), float(rng.uniform(0, np.pi))),
        basal_wall_ratio=float(rng.uniform(0.8, 1.0)),
        apical_wall_ratio=float(rng.uniform(0.5, 0.8)),
        rv_insertion_half_angle_deg=float(rng.uniform(75.0, 100.0)),
        rv_aspect=float(rng.uniform(1.0, 1.45)),
        rv_apical_extent=float(rng.uniform(0.6, 0.85)),
        atrium_height_mm=float(rng.uniform(28.0, 40.0)),
        base_tilt_deg=float(rng.uniform(6.0, 20.0)),
        base_tilt_azimuth_deg=float(rng.uniform(0.0, 360.0)),
        base_saddle_mm=float(rng.uniform(0.0, 4.0)),
        axis_bend_mm=float(rng.uniform(0.0, 6.0)),
        axis_bend_azimuth_deg=float(rng.uniform(0.0, 360.0)),
        long_strain_base=float(strain_base), long_strain_apex=float(strain_apex),
        twist_base_deg=float(twist_base), twist_apex_deg=float(twist_apex),
        twist_exponent=float(rng.uniform(0.8, 1.6)),
        heart_rate_bpm=float(heart_rate),
        curve_phases=tuple(float(v) for v in curve_phases),
        curve_values=tuple(float(v) for v in curve_values),
        heart_centre_ras=tuple(float(v) for v in centre),
        lv_axis_ras=_unit_near(rng, (-0.55, 0.45, -0.7), 12.0),
        rv_direction_ras=_unit_near(rng, (0.75, 0.6, 0.1), 12.0),
        blood_hu=float(rng.uniform(330.0, 470.0)),
    )


__all__ = ["LoftedParameters", "sample_lofted_parameters"]
