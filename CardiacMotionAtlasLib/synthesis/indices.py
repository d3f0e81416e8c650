"""Clinical indices implied by a generated pair's labels: how much the sample makes the heart contract.

A sample pulls the conditioning (ES) labels by its flow into generated-ED labels (:mod:`.grid`), so the
pair implies an LV ejection fraction ``100 (EDV - ESV) / EDV`` (%) and a myocardial volume change
``100 (myo_ED - myo_ES) / myo_ES`` (%, ~0 for incompressible muscle), with volumes counted in voxels of
the labels' grid (labels 1 LV blood, 2 LV myocardium). Both frames share one grid, so the voxel volume
cancels in these ratios.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

from .errors import SynthesisError


def implied_indices(labels_es: np.ndarray, labels_ed: np.ndarray) -> Dict[str, float]:
    """``{"lvef_pct", "myo_change_pct", "lv_ed_vox", "lv_es_vox"}`` implied by ES labels and the generated
    ED labels of one grid (NaN where the ED or ES structure is empty)."""
    labels_es, labels_ed = np.asarray(labels_es), np.asarray(labels_ed)
    if labels_es.shape != labels_ed.shape:
        raise SynthesisError(f"implied indices: ES labels {labels_es.shape} and ED labels {labels_ed.shape} differ in grid")
    lv_ed, lv_es = float((labels_ed == 1).sum()), float((labels_es == 1).sum())
    myo_ed, myo_es = float((labels_ed == 2).sum()), float((labels_es == 2).sum())
    return {"lvef_pct": 100.0 * (lv_ed - lv_es) / lv_ed if lv_ed > 0 else float("nan"),
            "myo_change_pct": 100.0 * (myo_ed - myo_es) / myo_es if myo_es > 0 else float("nan"),
            "lv_ed_vox": lv_ed, "lv_es_vox": lv_es}


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of two equally long series (NaN for fewer than 3 finite pairs or no spread)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def conditioning_summary(true_ef: Sequence[float], sample_ef: Sequence[Sequence[float]],
                         cohort_range: Sequence[float]) -> Dict[str, float]:
    """How far samples follow their conditioning subjects: for subjects with true LVEF ``true_ef`` (%) and
    the implied LVEFs of each one's samples ``sample_ef`` (%), the Pearson correlation (over subjects) and
    mean absolute error of the samples' mean against the truth, the mean signed error (``bias_pct``,
    negative: the samples under-contract), the mean spread (max - min) of implied
    LVEF over one subject's samples and, for ``cohort_range = (lo, hi)`` (the training cohort's LVEF range,
    %), that spread as a fraction of the cohort's and the share of samples inside the range (%)."""
    true_ef = np.asarray(true_ef, float)
    if len(sample_ef) != true_ef.size:
        raise SynthesisError(f"{true_ef.size} subjects but {len(sample_ef)} sample sets")
    means = np.array([np.mean(s) for s in sample_ef], float)
    spread = np.array([np.max(s) - np.min(s) for s in sample_ef], float)
    lo, hi = float(cohort_range[0]), float(cohort_range[1])
    pooled = np.concatenate([np.asarray(s, float) for s in sample_ef])
    return {"pearson": pearson(means, true_ef), "mae_pct": float(np.mean(np.abs(means - true_ef))),
            "bias_pct": float(np.mean(means - true_ef)),
            "spread_pct": float(spread.mean()), "spread_of_cohort": float(spread.mean() / max(hi - lo, 1e-9)),
            "in_cohort_range_pct": float(100.0 * np.mean((pooled >= lo) & (pooled <= hi)))}


__all__ = ["conditioning_summary", "implied_indices", "pearson"]
