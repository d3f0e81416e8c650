"""Subject parameters of the synthetic heart and their population distributions.

Ranges (adult, SSFP cine CMR) follow the reference values of Kawel-Boehm et al., "Reference ranges
("normal values") for cardiovascular magnetic resonance (CMR) in adults and children: 2020 update",
JCMR 22:87 (2020): LV EDV ~90-215 ml, LV mass ~80-190 g, LVEF 55-70 %, RVEDV ~100-230 ml, RVEF 45-65 %,
ED wall thickness 6-12 mm; torsion 10-20 degrees and longitudinal shortening 10-18 % from tagged-MR
studies (e.g. Russel et al., AJP Heart 2009). Abnormal subjects: reduced EF (25-45 %, heart failure),
hypertrophy (wall 13-17 mm) and dilation (EDV 230-300 ml, EF 25-40 %).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, Optional

import numpy as np

SUBJECT_KINDS = ("normal", "reduced_ef", "hypertrophy", "dilated")


@dataclass
class SubjectParameters:
    """Everything that defines one phantom heart (lengths mm, volumes ml, angles degrees).

    The LV frame: origin at the centre of the LV ellipsoids, +z along the long axis towards the apex,
    +x towards the RV (septum), y = z x x. ``lv_axis_ras``/``rv_direction_ras`` place it in RAS.
    """

    subject_id: str
    kind: str
    seed: int
    lv_edv_ml: float
    lv_ef: float  # fraction, 0-1
    rv_edv_ml: float
    rv_ef: float
    wall_thickness_mm: float  # lateral ED wall thickness
    apex_thickness_ratio: float  # apical / lateral wall thickness
    sphericity: float  # cavity diameter / cavity length at ED
    base_cut: float  # base plane at z = -base_cut * c (c = endo long semi-axis)
    ray_centre_fraction: float  # contraction centre, as a fraction of the cavity length from the apex
    torsion_deg: float  # apex rotation minus base rotation at ES
    long_axis_strain: float  # extra incompressible base-to-apex compression at ES (fraction)
    heart_rate_bpm: float
    atrial_fraction: float  # stroke-volume fraction filled by the atrial kick
    rv_angular_half_width_deg: float  # half-width of the RV crescent around the LV
    rv_apical_extent: float  # fraction of the LV length covered by the RV from the base
    heart_centre_ras: tuple = (0.0, 0.0, 0.0)
    lv_axis_ras: tuple = (-0.6, 0.5, -0.6)  # base -> apex
    rv_direction_ras: tuple = (0.7, 0.6, 0.2)  # towards the RV (orthogonalised against the axis)
    blood_hu: float = 400.0
    extra: Dict = field(default_factory=dict)

    def to_dict(self) -> Dict:
        out = asdict(self)
        for key in ("heart_centre_ras", "lv_axis_ras", "rv_direction_ras"):
            out[key] = [float(v) for v in out[key]]
        return out

    @classmethod
    def from_dict(cls, data: Dict) -> "SubjectParameters":
        data = dict(data)
        for key in ("heart_centre_ras", "lv_axis_ras", "rv_direction_ras"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def _random_unit_perturbation(rng: np.random.Generator, base: np.ndarray, degrees: float) -> np.ndarray:
    base = np.asarray(base, float) / np.linalg.norm(base)
    tilt = rng.normal(0.0, np.deg2rad(degrees), size=3)
    tilt -= tilt.dot(base) * base
    out = base + tilt
    return out / np.linalg.norm(out)


def draw_kind(rng: np.random.Generator, kind: Optional[str], abnormal_fraction: float) -> str:
    """``kind`` checked against :data:`SUBJECT_KINDS`, or, when None, a phenotype drawn with
    ``abnormal_fraction`` of abnormal subjects (the abnormal kinds equally likely)."""
    if kind is None:
        kind = str(rng.choice(SUBJECT_KINDS[1:])) if rng.random() < abnormal_fraction else "normal"
    if kind not in SUBJECT_KINDS:
        raise ValueError(f"unknown subject kind {kind!r}; expected one of {SUBJECT_KINDS}")
    return kind


def sample_subject_parameters(
    seed: int, index: int, kind: Optional[str] = None, abnormal_fraction: float = 0.3
) -> SubjectParameters:
    """Draw subject ``index`` of the cohort with base ``seed`` (deterministic). ``kind`` forces the
    phenotype; otherwise ~``abnormal_fraction`` of subjects are abnormal."""
    rng = np.random.default_rng([seed, index])
    kind = draw_kind(rng, kind, abnormal_fraction)

    lv_edv = rng.uniform(95.0, 200.0)
    lv_ef = rng.uniform(0.55, 0.68)
    wall = rng.uniform(7.5, 11.0)
    sphericity = rng.uniform(0.52, 0.64)
    torsion = rng.uniform(14.0, 24.0)
    long_strain = rng.uniform(0.04, 0.07)
    if kind == "reduced_ef":
        lv_ef = rng.uniform(0.25, 0.45)
        lv_edv = rng.uniform(150.0, 220.0)
        torsion = rng.uniform(8.0, 14.0)
        long_strain = rng.uniform(0.015, 0.035)
        sphericity = rng.uniform(0.6, 0.7)
    elif kind == "hypertrophy":
        wall = rng.uniform(13.0, 16.5)
        lv_edv = rng.uniform(90.0, 140.0)
        lv_ef = rng.uniform(0.58, 0.72)
    elif kind == "dilated":
        lv_edv = rng.uniform(230.0, 300.0)
        lv_ef = rng.uniform(0.25, 0.4)
        wall = rng.uniform(6.5, 8.5)
        sphericity = rng.uniform(0.68, 0.8)
        torsion = rng.uniform(6.0, 12.0)
        long_strain = rng.uniform(0.015, 0.03)
    rv_edv = lv_edv * rng.uniform(1.0, 1.2)
    rv_ef = float(np.clip(lv_ef - rng.uniform(-0.02, 0.08), 0.25, 0.65))
    heart_rate = rng.uniform(55.0, 85.0)
    axis = _random_unit_perturbation(rng, np.array([-0.6, 0.5, -0.6]), 8.0)
    rv_dir = _random_unit_perturbation(rng, np.array([0.7, 0.6, 0.2]), 8.0)
    centre = np.array([-15.0, 15.0, 10.0]) + rng.normal(0.0, 5.0, size=3)
    return SubjectParameters(
        subject_id=f"phantom{index:03d}",
        kind=kind,
        seed=int(seed),
        lv_edv_ml=float(lv_edv),
        lv_ef=float(lv_ef),
        rv_edv_ml=float(rv_edv),
        rv_ef=rv_ef,
        wall_thickness_mm=float(wall),
        apex_thickness_ratio=float(rng.uniform(0.65, 0.8)),
        sphericity=float(sphericity),
        base_cut=float(rng.uniform(0.42, 0.55)),
        ray_centre_fraction=float(rng.uniform(0.2, 0.26)),
        torsion_deg=float(torsion),
        long_axis_strain=float(long_strain),
        heart_rate_bpm=float(heart_rate),
        atrial_fraction=float(rng.uniform(0.15, 0.25)),
        rv_angular_half_width_deg=float(rng.uniform(85.0, 100.0)),
        rv_apical_extent=float(rng.uniform(0.65, 0.8)),
        heart_centre_ras=tuple(float(v) for v in centre),
        lv_axis_ras=tuple(float(v) for v in axis),
        rv_direction_ras=tuple(float(v) for v in rv_dir),
        blood_hu=float(rng.uniform(350.0, 450.0)),
    )


__all__ = ["SUBJECT_KINDS", "draw_kind", "SubjectParameters", "sample_subject_parameters"]
