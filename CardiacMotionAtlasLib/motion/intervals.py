"""95 % intervals of the clinical indices that contain the point estimate, are never zero-width, and are
calibrated per index on the training subjects.

Each index gets a standard deviation from two sources, combined in quadrature and multiplied by a
per-index calibration scale ``c_k`` (>= 1, fitted on training subjects, stored in the checkpoint):

- **motion**: the spread (sample std) of the index over the posterior samples of the DVFs;
- **misfit** (trajectories fitted to the study's own ED/ES labels, :func:`misfit_sds`): the difference
  between the estimate's index and that of the given labels, the fit's own residual (the posterior samples
  spread around the network's chain and do not see it), added to the motion term in quadrature;
- **segmentation** (partial volume; present at ED too): a label-count volume (ml) of a structure is
  uncertain by a fraction of a voxel at every boundary voxel (independent, uniform: variance ``v^2/12``
  per in-plane boundary face, ``v`` the voxel volume) and by a fraction of a whole slice at its first and
  last slice (the base and apex fall anywhere within a slice thickness: variance ``V_slice^2/12`` each).
  EF, SV and mass propagate these by the delta method (ED and ES taken as independent).

Interval: ``estimate +/- 1.96 c_k sigma_k``, so it always contains the estimate. Calibration
(:func:`fit_calibration`): on each training subject the model's indices are compared with those of the
subject's own ED/ES labels; ``c_k = max(1, sqrt(mean(z^2)))`` with ``z = residual / sigma``.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..analysis.clinical_indices import MYOCARDIUM_DENSITY_G_PER_ML, clinical_indices_from_volumes
from .errors import MotionInputError

Z95 = 1.959963984540054
INDEX_KEYS = ("LVEDV", "LVESV", "LVSV", "LVEF", "RVEDV", "RVESV", "RVSV", "RVEF", "LVM")
LV, MYO, RV = 1, 2, 3


def label_volume_sd_ml(labels_zyx: np.ndarray, label: int, ijk_to_ras: np.ndarray) -> float:
    """Partial-volume standard deviation (ml) of the voxel-count volume of ``label`` in a ``(z, y, x)``
    map on a SAX grid (k = slices): in-plane boundary faces (independent, ``v^2/12`` each) and the first
    and last slices of the structure (``V_slice^2/12`` each). 0 for an absent structure."""
    mask = np.asarray(labels_zyx) == label
    if not mask.any():
        return 0.0
    voxel_ml = abs(float(np.linalg.det(np.asarray(ijk_to_ras, float)[:3, :3]))) / 1000.0
    padded = np.pad(mask, ((0, 0), (1, 1), (1, 1)))
    faces = sum(int(np.count_nonzero(np.diff(padded.astype(np.int8), axis=axis))) for axis in (1, 2))
    per_slice = mask.sum((1, 2)) * voxel_ml
    slices = np.nonzero(per_slice)[0]
    ends = per_slice[slices[0]] ** 2 + (per_slice[slices[-1]] ** 2 if slices[-1] != slices[0] else 0.0)
    return float(np.sqrt((faces * voxel_ml ** 2 + ends) / 12.0))


def segmentation_sds(ed_labels: np.ndarray, es_labels: np.ndarray, ijk_to_ras: np.ndarray,
                     volumes_ml: np.ndarray, ed: int, es: int) -> Dict[str, float]:
    """Per-index partial-volume standard deviations (ml, %, g) from the ED and ES label maps and the
    ``(3, T)`` volume curves (LV, myocardium, RV) the indices come from."""
    sd = {(frame, label): label_volume_sd_ml(labels, label, ijk_to_ras)
          for frame, labels in (("ed", ed_labels), ("es", es_labels)) for label in (LV, MYO, RV)}
    out: Dict[str, float] = {}
    for prefix, label, row in (("LV", LV, 0), ("RV", RV, 2)):
        edv, esv = float(volumes_ml[row][ed]), float(volumes_ml[row][es])
        s_ed, s_es = sd[("ed", label)], sd[("es", label)]
        out[f"{prefix}EDV"], out[f"{prefix}ESV"] = s_ed, s_es
        out[f"{prefix}SV"] = float(np.hypot(s_ed, s_es))
        out[f"{prefix}EF"] = (float(np.hypot(100.0 * esv / edv ** 2 * s_ed, 100.0 / edv * s_es))
                              if edv > 0 else float("nan"))
    out["LVM"] = MYOCARDIUM_DENSITY_G_PER_ML * sd[("ed", MYO)]
    return out


def sample_sds(sampled: Sequence[Mapping[str, float]]) -> Dict[str, float]:
    """Per-index standard deviation (ddof 1) over the posterior samples' indices."""
    return {k: float(np.nanstd([s[k] for s in sampled], ddof=1)) if len(sampled) > 1 else 0.0 for k in INDEX_KEYS}


def misfit_sds(indices: Mapping[str, float], reference: Mapping[str, float]) -> Dict[str, float]:
    """Per-index standard deviation of a motion fitted to given labels: ``|index - reference|``, the
    estimate's own misfit to the indices of the labels it was fitted to (0 where either is not finite)."""
    out = {}
    for k in INDEX_KEYS:
        d = float(indices.get(k, np.nan)) - float(reference.get(k, np.nan))
        out[k] = abs(d) if np.isfinite(d) else 0.0
    return out


def combined_sds(motion: Mapping[str, float], segmentation: Mapping[str, float],
                 calibration: Optional[Mapping[str, float]] = None) -> Dict[str, float]:
    """``c_k sqrt(motion_k^2 + segmentation_k^2)`` per index (``c_k`` = 1 without a calibration)."""
    calibration = calibration or {}
    return {k: float(calibration.get(k, 1.0)) * float(np.hypot(motion.get(k, 0.0), segmentation.get(k, 0.0)))
            for k in INDEX_KEYS}


def physical_range(index: str) -> Tuple[float, float]:
    """Values an index can take: ejection fractions (%) in [0, 100], volumes (ml) and mass (g) >= 0."""
    return (0.0, 100.0) if index.endswith("EF") else (0.0, float("inf"))


def intervals(indices: Mapping[str, float], sds: Mapping[str, float]) -> Dict[str, Tuple[float, float]]:
    """95 % intervals ``estimate +/- 1.96 sd`` per index, cut to the index's :func:`physical_range` (an
    LVEF interval never reaches below 0 %), never cut past the estimate itself, which they always contain."""
    bounds = {}
    for k in indices:
        estimate, half_width = float(indices[k]), Z95 * float(sds[k])
        low, high = physical_range(k)
        lower, upper = estimate - half_width, estimate + half_width
        bounds[k] = (lower if estimate < low else max(lower, low), upper if estimate > high else min(upper, high))
    return bounds


def reference_indices(labels: Mapping[int, np.ndarray], ed: int, es: int, ijk_to_ras: np.ndarray) -> Dict[str, float]:
    """Indices of a subject's own ED and ES label maps (voxel counts, ml / % / g)."""
    voxel_ml = abs(float(np.linalg.det(np.asarray(ijk_to_ras, float)[:3, :3]))) / 1000.0
    volumes = np.array([[np.count_nonzero(labels[f] == label) * voxel_ml for f in (ed, es)] for label in (LV, MYO, RV)])
    return clinical_indices_from_volumes(volumes[0], volumes[2], volumes[1], 0, 1).as_dict()


def fit_calibration(residuals: Sequence[Mapping[str, float]], sds: Sequence[Mapping[str, float]]) -> Dict[str, float]:
    """``{index: c_k}``: ``max(1, RMS of residual / sd)`` over subjects (1 where nothing is finite)."""
    if not residuals or len(residuals) != len(sds):
        raise MotionInputError(None, f"calibration needs one sd per residual, got {len(residuals)} and {len(sds)}")
    scales = {}
    for k in INDEX_KEYS:
        z = np.array([r[k] / s[k] for r, s in zip(residuals, sds) if s[k] > 0 and np.isfinite(r[k] / s[k])])
        scales[k] = float(max(1.0, np.sqrt(np.mean(z ** 2)))) if z.size else 1.0
    return scales


__all__ = ["INDEX_KEYS", "Z95", "combined_sds", "fit_calibration", "intervals",
           "label_volume_sd_ml", "misfit_sds", "reference_indices", "sample_sds", "segmentation_sds"]
