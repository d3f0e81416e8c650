"""Is a phantom cohort physiologically plausible? Measured read-outs of every heart against adult
reference ranges, per phenotype, as rows and a CSV beside the cohort.

The values are *measured* from each heart's material points and meshes (:func:`.measurements.measure_heart`),
not copied from its parameters, so a construction error shows. Ranges: adult SSFP cine CMR reference
values (Kawel-Boehm et al., JCMR 22:87, 2020) for volumes, EF and mass; tagged-MR studies for torsion,
longitudinal shortening and base descent (e.g. Russel et al., AJP Heart 2009); LV mass up to 230 g for the
largest normal hearts (EDV ~200 ml, mass/volume ~1.1 g/ml, athletic men); wider for the abnormal
phenotypes the phantom models (reduced EF, hypertrophy, dilation).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

from ..io.atomic import atomic_write_text
from .measurements import measure_heart

Range = Tuple[float, float]

NORMAL_RANGES: Dict[str, Range] = {
    "EDV_ml": (90.0, 220.0), "ESV_ml": (25.0, 95.0), "SV_ml": (50.0, 130.0), "EF_pct": (54.0, 75.0),
    "LVM_g": (70.0, 230.0), "thickening_pct": (25.0, 65.0), "long_shortening_pct": (9.0, 19.0),
    "base_descent_mm": (7.0, 17.0), "torsion_deg": (6.0, 22.0), "endo_inward_mm": (4.0, 12.0),
    "myo_drift_pct": (0.0, 0.5),
}
"""Plausible measured values (closed intervals) for a normal adult heart."""

KIND_OVERRIDES: Dict[str, Dict[str, Range]] = {
    "reduced_ef": {"EDV_ml": (140.0, 240.0), "ESV_ml": (75.0, 190.0), "SV_ml": (35.0, 100.0),
                   "EF_pct": (20.0, 47.0), "thickening_pct": (8.0, 40.0), "long_shortening_pct": (2.0, 12.0),
                   "base_descent_mm": (2.0, 12.0), "torsion_deg": (3.0, 16.0), "endo_inward_mm": (1.5, 8.0)},
    "dilated": {"EDV_ml": (220.0, 330.0), "ESV_ml": (130.0, 260.0), "SV_ml": (45.0, 120.0),
                "EF_pct": (18.0, 42.0), "LVM_g": (90.0, 260.0), "thickening_pct": (8.0, 40.0),
                "long_shortening_pct": (2.0, 12.0), "base_descent_mm": (2.0, 12.0), "torsion_deg": (3.0, 16.0),
                "endo_inward_mm": (1.5, 9.0)},
    "hypertrophy": {"EDV_ml": (80.0, 150.0), "ESV_ml": (15.0, 65.0), "EF_pct": (54.0, 80.0),
                    "LVM_g": (110.0, 320.0), "thickening_pct": (15.0, 65.0)},
}
"""Per phenotype, the ranges that differ from :data:`NORMAL_RANGES`."""


def plausible_ranges(kind: str) -> Dict[str, Range]:
    """The ranges a heart of phenotype ``kind`` must meet."""
    return {**NORMAL_RANGES, **KIND_OVERRIDES.get(kind, {})}


def plausibility_rows(hearts: Iterable) -> List[Dict]:
    """One row per heart: family, subject, kind, every measured read-out, and ``out_of_range`` (the
    names of read-outs outside :func:`plausible_ranges`, ``""`` when all are plausible)."""
    rows = []
    for heart in hearts:
        measured = measure_heart(heart)
        measured.pop("volume_curve_ml")
        ranges = plausible_ranges(heart.params.kind)
        outside = [name for name, (low, high) in ranges.items() if not low <= float(measured[name]) <= high]
        rows.append({"family": heart.family, "subject": heart.subject_id, "kind": heart.params.kind,
                     **{name: float(value) for name, value in measured.items()}, "out_of_range": " ".join(outside)})
    return rows


def write_plausibility_csv(rows: List[Dict], path: Path) -> Path:
    """``rows`` as CSV (atomic), one line per heart, plus a line of the normal ranges."""
    columns = list(rows[0].keys())
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in row.items()})
    writer.writerow({"family": "normal range", **{k: f"{lo:g}-{hi:g}" for k, (lo, hi) in NORMAL_RANGES.items()}})
    atomic_write_text(Path(path), buffer.getvalue())
    return Path(path)


__all__ = ["KIND_OVERRIDES", "NORMAL_RANGES", "plausibility_rows", "plausible_ranges", "write_plausibility_csv"]
