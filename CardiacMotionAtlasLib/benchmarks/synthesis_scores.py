"""Scores of the synthesis benchmark (:mod:`.synthesis`): endpoint errors (voxels), plausibility of
generated flows (folding %, myocardial volume change %, implied LVEF %), sample diversity, per-subject LVEF
ranges, and the rows/text of its tables."""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import torch

from ..data.displacement_field import DisplacementField
from ..metrics.jacobian import negative_jacobian
from ..synthesis import SynthConfig
from ..synthesis.data import stack_pairs
from ..synthesis.train import estimate_flow
from ..synthesis.grid import warp_labels
from ..synthesis.indices import implied_indices

def endpoint_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-voxel endpoint error (voxels) of voxel flows ``(3, z, y, x)``."""
    return np.linalg.norm(np.asarray(a, float) - np.asarray(b, float), axis=0)


def score_row(table: str, method: str, **values) -> Dict:
    row = {"table": table, "method": method}
    for key, series in values.items():
        if isinstance(series, (list, np.ndarray)):
            series = np.asarray(series, float)
            row[key] = float(series.mean()) if series.size else float("nan")
            row[f"{key}_std"] = float(series.std()) if series.size else float("nan")
        else:
            row[key] = series
    return row


def text_rows(rows: List[Dict], keys: List[str]) -> List[Dict]:
    out = []
    for row in rows:
        text = {"test_set": row.get("test_set", "-"), "method": row["method"]}
        for key in keys:
            value = row.get(key)
            if isinstance(value, str) or value is None:
                text[key] = value if value is not None else "-"
            elif not np.isfinite(value):
                text[key] = "-"
            elif f"{key}_std" in row:
                text[key] = f"{value:.3g} +/- {row[f'{key}_std']:.2g}"
            else:
                text[key] = f"{value:.3g}"
        out.append(text)
    return out


def label_stats(labels_es: np.ndarray, labels_ed: np.ndarray) -> Dict[str, float]:
    """Myocardial volume change ED vs ES (%) and LV EF (%) implied by a pair of label maps."""
    implied = implied_indices(labels_es, labels_ed)
    return {"myo_change": implied["myo_change_pct"], "lvef": implied["lvef_pct"]}


def flow_stats(flows_vox: np.ndarray, pair, config: SynthConfig) -> Dict[str, list]:
    """Plausibility of voxel flows ``(K, 3, n, n, n)`` for one ES frame, and their diversity."""
    heart = pair.labels_ed > 0
    out = {"neg_jac": [], "myo_change": [], "lvef": [], "diversity": []}
    labels_es = torch.as_tensor(pair.labels_es)[None, None]
    for flow in flows_vox:
        field = DisplacementField(flow * config.working_voxel_mm, pair.ijk_to_ras)
        out["neg_jac"].append(100.0 * negative_jacobian(field).fraction)
        warped = warp_labels(labels_es, torch.as_tensor(flow)[None])[0, 0].numpy()
        stats = label_stats(pair.labels_es, warped)
        out["myo_change"].append(stats["myo_change"])
        out["lvef"].append(stats["lvef"])
    for i in range(len(flows_vox)):
        for j in range(i + 1, len(flows_vox)):
            out["diversity"].append(float(endpoint_error(flows_vox[i], flows_vox[j])[heart].mean()))
    return out


CVAE_NAME = "CVAE, p(z | frame)"
PREVIOUS_NAME = "previous CVAE (baseline)"
BASELINE_NAME = "CVAE, N(0, I) prior (baseline)"
AMPLITUDE_NAME = "CVAE + LVEF coordinate (opt-in)"
PRIOR_CLIP_NAME = "CVAE + own prior clip (opt-in)"
AMPLITUDE_CLIP_NAME = "CVAE + LVEF coordinate + own prior clip (opt-in)"
POOLED_NAME = "CVAE + pooled-only prior (opt-in)"
AMPLITUDE_POOLED_NAME = "CVAE + LVEF coordinate + pooled-only prior (opt-in)"
SAMPLE_COLUMNS = {CVAE_NAME: "cvae_samples", PREVIOUS_NAME: "previous_cvae_samples", BASELINE_NAME: "baseline_cvae_samples",
                  AMPLITUDE_NAME: "amplitude_cvae_samples", PRIOR_CLIP_NAME: "prior_clip_cvae_samples",
                  AMPLITUDE_CLIP_NAME: "amplitude_clip_cvae_samples", POOLED_NAME: "pooled_cvae_samples",
                  AMPLITUDE_POOLED_NAME: "amplitude_pooled_cvae_samples"}


def subject_rows(test_set, test_pairs, truth, generators) -> List[Dict]:
    """Per held-out subject: true LVEF (analytic, and implied by the true flow) and each generator's
    samples' implied LVEF, ``mean [min, max]`` (%)."""
    rows = []
    for index, (pair, ef) in enumerate(zip(test_pairs, truth)):
        row = {"test_set": test_set.label, "method": "-", "subject": pair.subject_id, "true_lvef_pct": float(ef),
               "true_flow_lvef_pct": float(generators["true flows (phantom)"][index]["lvef"][0])}
        for name, per_subject in generators.items():
            if name.endswith(" samples"):
                efs = np.asarray(per_subject[index]["lvef"], float)
                key = SAMPLE_COLUMNS.get(name[:-len(" samples")], name)
                row[key] = f"{efs.mean():.1f} [{efs.min():.1f}, {efs.max():.1f}]"
        rows.append(row)
    return rows


def estimator_epe(estimator, test_pairs, config, device) -> Dict[str, list]:
    data = stack_pairs(test_pairs, config, device)
    flows = estimate_flow(estimator, data.ed, data.es).cpu().numpy()
    heart, grid = [], []
    for flow, pair in zip(flows, test_pairs):
        epe = endpoint_error(flow, np.clip(pair.flow_vox, -config.flow_clip_mm / config.working_voxel_mm,
                                 config.flow_clip_mm / config.working_voxel_mm))
        heart.append(epe[pair.labels_ed > 0])
        grid.append(epe.ravel())
    return {"heart": np.concatenate(heart), "grid": np.concatenate(grid),
            "subject_heart": [float(h.mean()) for h in heart]}
