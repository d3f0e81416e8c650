"""Clinical indices of the ventricles from label-map sequences or closed mesh sequences.

Volumes in ml, ejection fractions in %, LV mass in g (myocardium volume at ED x 1.05 g/ml).
ED/ES frames: when given they are used for both ventricles (and ED for the LV mass); otherwise each
ventricle's EDV/ESV is the maximum/minimum of its own volume curve and the LV mass is taken at the LV's
maximum-volume frame. A structure that is absent gives ``nan`` indices (EF is ``nan`` when EDV is 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from ..data.image_sequence import ImageSequence
from ..data.mesh_sequence import MeshSequence
from .volume_curves import detect_ed_es
from .volumes import label_volumes_ml, mesh_volumes_ml

MYOCARDIUM_DENSITY_G_PER_ML = 1.05
LV_BLOOD_POOL, LV_MYOCARDIUM, RV_BLOOD_POOL = 1, 2, 3

NAN = float("nan")


@dataclass(frozen=True)
class ClinicalIndices:
    """Ventricular volumes (ml), stroke volumes (ml), ejection fractions (%) and LV mass (g)."""

    LVEDV: float = NAN
    LVESV: float = NAN
    LVSV: float = NAN
    LVEF: float = NAN
    RVEDV: float = NAN
    RVESV: float = NAN
    RVSV: float = NAN
    RVEF: float = NAN
    LVM: float = NAN

    def as_dict(self) -> Dict[str, float]:
        """``{field name: value}`` in declaration order."""
        return {k: float(v) for k, v in asdict(self).items()}


def ejection_fraction(edv_ml: float, esv_ml: float) -> float:
    """EF (%) = 100 (EDV - ESV) / EDV; ``nan`` if EDV is 0 or not finite."""
    edv_ml, esv_ml = float(edv_ml), float(esv_ml)
    if not np.isfinite(edv_ml) or edv_ml <= 0:
        return NAN
    return 100.0 * (edv_ml - esv_ml) / edv_ml


def _frame(index: Optional[int], n_frames: int, what: str) -> Optional[int]:
    if index is None:
        return None
    index = int(index)
    if not 0 <= index < n_frames:
        raise ValueError(f"{what} {index} out of range for {n_frames} frames")
    return index


def _ventricle(volumes: np.ndarray, ed: Optional[int], es: Optional[int]) -> Tuple[float, float, float, float]:
    auto_ed, auto_es = detect_ed_es(volumes)
    edv = float(volumes[auto_ed if ed is None else ed])
    esv = float(volumes[auto_es if es is None else es])
    return edv, esv, edv - esv, ejection_fraction(edv, esv)


def clinical_indices_from_volumes(
    lv_ml: Sequence[float],
    rv_ml: Optional[Sequence[float]] = None,
    myocardium_ml: Optional[Sequence[float]] = None,
    ed_frame: Optional[int] = None,
    es_frame: Optional[int] = None,
) -> ClinicalIndices:
    """Indices from per-frame volume curves (ml) of the LV and RV blood pools and the LV myocardium."""
    lv = np.asarray(lv_ml, dtype=float).reshape(-1)
    n = lv.size
    curves = {"rv_ml": rv_ml, "myocardium_ml": myocardium_ml}
    for name, curve in curves.items():
        if curve is not None and np.asarray(curve).size != n:
            raise ValueError(f"{name} has {np.asarray(curve).size} frames, lv_ml has {n}")
    ed, es = _frame(ed_frame, n, "ed_frame"), _frame(es_frame, n, "es_frame")
    lvedv, lvesv, lvsv, lvef = _ventricle(lv, ed, es)
    rv_values = (NAN,) * 4
    if rv_ml is not None:
        rv_values = _ventricle(np.asarray(rv_ml, dtype=float).reshape(-1), ed, es)
    lvm = NAN
    if myocardium_ml is not None:
        mass_frame = detect_ed_es(lv)[0] if ed is None else ed
        lvm = float(np.asarray(myocardium_ml, dtype=float).reshape(-1)[mass_frame]) * MYOCARDIUM_DENSITY_G_PER_ML
    return ClinicalIndices(lvedv, lvesv, lvsv, lvef, *rv_values, LVM=lvm)


def clinical_indices_from_labels(
    labels: ImageSequence, ed_frame: Optional[int] = None, es_frame: Optional[int] = None
) -> ClinicalIndices:
    """Indices from a label sequence (1 LV blood pool, 2 LV myocardium, 3 RV blood pool); voxel volume
    from the IJK->RAS matrix. RV/LVM are ``nan`` when their label is absent from every frame."""
    lv = label_volumes_ml(labels, LV_BLOOD_POOL)
    if not np.any(lv > 0):
        raise ValueError(f"labels {labels.name!r}: no LV blood pool (label {LV_BLOOD_POOL}) in any frame")
    rv = label_volumes_ml(labels, RV_BLOOD_POOL)
    myo = label_volumes_ml(labels, LV_MYOCARDIUM)
    return clinical_indices_from_volumes(
        lv, rv if np.any(rv > 0) else None, myo if np.any(myo > 0) else None, ed_frame, es_frame
    )


def clinical_indices_from_meshes(
    lv_blood_pool: MeshSequence,
    rv_blood_pool: Optional[MeshSequence] = None,
    lv_myocardium: Optional[MeshSequence] = None,
    ed_frame: Optional[int] = None,
    es_frame: Optional[int] = None,
) -> ClinicalIndices:
    """Indices from closed surface sequences (RAS mm) of the LV blood pool, RV blood pool and LV
    myocardium (the wall: epicardium outward plus endocardium facing the cavity). Volumes by
    vtkMassProperties; ValueError for open or inconsistently oriented meshes."""
    lv = mesh_volumes_ml(lv_blood_pool)
    rv = None if rv_blood_pool is None else mesh_volumes_ml(rv_blood_pool)
    myo = None if lv_myocardium is None else mesh_volumes_ml(lv_myocardium)
    return clinical_indices_from_volumes(lv, rv, myo, ed_frame, es_frame)


__all__ = [
    "MYOCARDIUM_DENSITY_G_PER_ML",
    "ClinicalIndices",
    "ejection_fraction",
    "clinical_indices_from_volumes",
    "clinical_indices_from_labels",
    "clinical_indices_from_meshes",
]
