"""Tissue classes of the phantom and their imaging properties (bSSFP cine MR, contrast CT)."""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Tissue(IntEnum):
    """Tissue class of a point; the heart classes move, the others are static."""

    AIR = 0
    FAT = 1
    MUSCLE = 2
    LUNG = 3
    LIVER = 4
    SOFT_TISSUE = 5
    BONE = 6
    AORTA = 7
    LV_BLOOD = 8
    LV_MYOCARDIUM = 9
    RV_BLOOD = 10
    RV_WALL = 11
    ATRIAL_BLOOD = 12


N_TISSUES = len(Tissue)

LABEL_OF_TISSUE = np.zeros(N_TISSUES, dtype=np.uint8)
LABEL_OF_TISSUE[Tissue.LV_BLOOD] = 1
LABEL_OF_TISSUE[Tissue.LV_MYOCARDIUM] = 2
LABEL_OF_TISSUE[Tissue.RV_BLOOD] = 3
"""Segmentation label of each tissue: 0 bg, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool."""

# bSSFP steady-state signal (arbitrary units, blood ~0.85): bright blood and fat, dark myocardium and
# muscle, very dark lung (e.g. Scheffler & Lehnhardt, Eur Radiol 2003, for relative bSSFP contrasts).
MR_SIGNAL = np.zeros(N_TISSUES, dtype=np.float32)
MR_SIGNAL[[Tissue.AIR, Tissue.FAT, Tissue.MUSCLE, Tissue.LUNG, Tissue.LIVER, Tissue.SOFT_TISSUE,
           Tissue.BONE, Tissue.AORTA, Tissue.LV_BLOOD, Tissue.LV_MYOCARDIUM, Tissue.RV_BLOOD,
           Tissue.RV_WALL, Tissue.ATRIAL_BLOOD]] = [
    0.0, 0.75, 0.25, 0.04, 0.33, 0.40, 0.30, 0.70, 0.85, 0.22, 0.82, 0.24, 0.78]

# Contrast-enhanced cardiac CT, Hounsfield units; blood pools take the subject's blood HU.
CT_HU = np.zeros(N_TISSUES, dtype=np.float32)
CT_HU[[Tissue.AIR, Tissue.FAT, Tissue.MUSCLE, Tissue.LUNG, Tissue.LIVER, Tissue.SOFT_TISSUE,
       Tissue.BONE, Tissue.LV_MYOCARDIUM, Tissue.RV_WALL]] = [
    -1000.0, -100.0, 50.0, -850.0, 90.0, 40.0, 700.0, 110.0, 110.0]
BLOOD_TISSUES = (Tissue.AORTA, Tissue.LV_BLOOD, Tissue.RV_BLOOD, Tissue.ATRIAL_BLOOD)


def ct_lookup(blood_hu: float) -> np.ndarray:
    """HU of every tissue with the subject's contrast-enhanced blood value (RV slightly less opacified)."""
    table = CT_HU.copy()
    for tissue in BLOOD_TISSUES:
        table[tissue] = blood_hu
    table[Tissue.RV_BLOOD] = blood_hu - 40.0
    return table


__all__ = ["Tissue", "N_TISSUES", "LABEL_OF_TISSUE", "MR_SIGNAL", "CT_HU", "BLOOD_TISSUES", "ct_lookup"]
