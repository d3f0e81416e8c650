"""Physiological read-outs of a phantom heart measured from its material points and meshes, to check
that the phantom is plausible (the plausibility report) and to serve as ground truth."""

from __future__ import annotations

from typing import Dict

import numpy as np

from ..metrics.surface import chamfer_distance, point_to_surface_distance
from .heart import MYOCARDIAL_DENSITY_G_PER_ML

EXPECTED_RANGES: Dict[str, str] = {
    "EDV_ml": "90-220 (abnormal up to 300)",
    "ESV_ml": "30-90 (abnormal higher)",
    "SV_ml": "55-120",
    "EF_pct": "55-70 (reduced 25-45)",
    "LVM_g": "80-200",
    "thickening_pct": "30-60",
    "long_shortening_pct": "10-18",
    "base_descent_mm": "10-15",
    "torsion_deg": "10-20 (reduced in HF)",
    "endo_inward_mm": "5-10",
    "myo_drift_pct": "< 5",
    "ed_es_chamfer_mm": "several mm",
}


def closed_mesh_volume_ml(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume (ml) of a closed, outward-oriented triangle mesh (divergence theorem)."""
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6000.0)


def measure_heart(heart, n_phases: int = 20) -> Dict[str, float]:
    """Volumes, mass, wall thickening, longitudinal shortening, base descent, torsion, endocardial
    inward motion, myocardial volume drift and the ED-ES chamfer distance, all measured (not taken
    from the parameters)."""
    motion = heart.motion
    es = heart.es_phase
    phases = np.arange(n_phases) / n_phases
    cav_v, cav_f = heart.material_surface_local("lv_cavity")
    myo_v, myo_f = heart.material_surface_local("myocardium")
    cavity = [closed_mesh_volume_ml(motion.forward(cav_v, t), cav_f) for t in phases]
    myocardium = [closed_mesh_volume_ml(motion.forward(myo_v, t), myo_f) for t in phases]
    edv = closed_mesh_volume_ml(cav_v, cav_f)
    esv = closed_mesh_volume_ml(motion.forward(cav_v, es), cav_f)

    mid = heart.epicardial_ring_local(0.45)
    thickness = []
    for t in (0.0, es):
        endo_v, endo_f = heart.material_surface_local("lv_cavity")
        thickness.append(point_to_surface_distance(motion.forward(mid, t), motion.forward(endo_v, t), endo_f).mean())

    apex = heart.apex_local()[None]
    base_ring = heart.epicardial_ring_local(0.0)

    def length(t: float) -> float:
        return float(np.linalg.norm(motion.forward(apex, t)[0] - motion.forward(base_ring, t).mean(0)))

    base_descent = float(motion.forward(base_ring, es).mean(0)[2] - base_ring.mean(0)[2])

    def rotation_deg(points: np.ndarray) -> float:
        moved = motion.forward(points, es)
        delta = np.angle(np.exp(1j * (np.arctan2(moved[:, 1], moved[:, 0]) - np.arctan2(points[:, 1], points[:, 0]))))
        return float(np.rad2deg(np.mean(delta)))

    torsion = rotation_deg(heart.epicardial_ring_local(0.85)) - rotation_deg(heart.epicardial_ring_local(0.1))

    endo_mid = heart.endocardial_ring_local(0.45)
    moved = motion.forward(endo_mid, es)
    inward = float(np.mean(np.hypot(endo_mid[:, 0], endo_mid[:, 1]) - np.hypot(moved[:, 0], moved[:, 1])))

    myo_es = motion.forward(myo_v, es)
    chamfer = chamfer_distance((heart.to_ras(myo_v), myo_f), (heart.to_ras(myo_es), myo_f))
    return {
        "EDV_ml": edv,
        "ESV_ml": esv,
        "SV_ml": edv - esv,
        "EF_pct": 100.0 * (edv - esv) / edv,
        "LVM_g": myocardium[0] * MYOCARDIAL_DENSITY_G_PER_ML,
        "thickening_pct": 100.0 * (thickness[1] / thickness[0] - 1.0),
        "long_shortening_pct": 100.0 * (1.0 - length(es) / length(0.0)),
        "base_descent_mm": base_descent,
        "torsion_deg": torsion,
        "endo_inward_mm": inward,
        "myo_drift_pct": 100.0 * float(np.max(np.abs(np.asarray(myocardium) / myocardium[0] - 1.0))),
        "ed_es_chamfer_mm": float(chamfer),
        "RVEDV_ml": heart.rv_edv_ml,
        "RVEF_pct": 100.0 * (1.0 - float(heart.rv_volume_ml(es)) / heart.rv_edv_ml),
        "ES_phase": es,
        "volume_curve_ml": cavity,
    }


__all__ = ["EXPECTED_RANGES", "closed_mesh_volume_ml", "measure_heart"]
