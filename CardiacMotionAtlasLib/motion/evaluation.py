"""Scores of estimated motion against the phantom's ground truth (the motion benchmark's metrics).

Every method supplies voxel fields ``ed_to_t`` / ``t_to_ed`` ``(T, 3, z, y, x)`` (ED first) on the SAX
grid. Shapes are warped both ways between ED and ES (ES masks onto ED with ``u_{ED->ES}``, ED masks onto
ES with ``u_{ES->ED}``); endpoint error (mm) is inside the ED myocardium against
``heart.displacement_field``; indices come from the given ED labels carried to every frame (soft
volumes) against the phantom's analytic indices; strain against :func:`analysis.strain.analytic_strain`.
Label maps are warped with background outside the field of view (:func:`warp_one_hot`).
"""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch
from scipy.stats import chi2, spearmanr

from ..analysis.clinical_indices import clinical_indices_from_volumes
from ..analysis.strain import STRAIN_NAMES, analytic_strain, lv_frame_from_labels, strain_from_displacement
from ..geometry.warp import jacobian_determinant_voxels, voxel_to_ras_displacement, warp
from ..metrics.overlap import dice, jaccard
from ..metrics.surface_labels import hausdorff95_labels, mean_surface_distance_labels
from .losses import one_hot

REGIONS = {"LV": 1, "Myo": 2, "RV": 3}
INDEX_NAMES = ("LVEDV", "LVESV", "LVSV", "LVEF", "RVEDV", "RVESV", "RVSV", "RVEF", "LVM")


LABEL_MARGIN = 4  # in-plane background margin (voxels) around the field of view when label maps are warped


def warp_one_hot(hot: torch.Tensor, displacement: torch.Tensor, margin: int = LABEL_MARGIN) -> torch.Tensor:
    """``hot`` ``(N, 4, z, y, x)`` class probabilities pulled by voxel ``displacement`` ``(N, 3, z, y, x)``,
    with background outside the in-plane field of view (``geometry.warp`` replicates the edge voxel, so a
    structure touching the edge - the RV of a heart that fills the 128 mm field of view - grew wherever
    the field pulls from outside: +17 ml RVESV on an in-family heart at 2.5 mm)."""
    if margin <= 0:
        return warp(hot, displacement)
    pad = (margin, margin, margin, margin)
    padded = torch.nn.functional.pad(hot, pad)
    padded[:, :1] = torch.nn.functional.pad(hot[:, :1], pad, value=1.0)
    field = torch.nn.functional.pad(displacement, (*pad, 0, 0), mode="replicate")
    return warp(padded, field)[..., margin:-margin, margin:-margin]


def shape_scores(ed_to_es: torch.Tensor, es_to_ed: torch.Tensor, labels_ed: np.ndarray, labels_es: np.ndarray,
                 ijk_to_ras: np.ndarray) -> Dict[str, float]:
    """Dice, Jaccard (%), HD95 and mean surface distance (mm) per region of warped masks, averaged over
    the two directions (ES warped onto ED, ED warped onto ES)."""
    device = ed_to_es.device
    ed = torch.as_tensor(labels_ed.astype(np.int64), device=device)[None]
    es = torch.as_tensor(labels_es.astype(np.int64), device=device)[None]
    pairs = [(warp_one_hot(one_hot(es), ed_to_es[None] if ed_to_es.dim() == 4 else ed_to_es).argmax(1)[0], labels_ed),
             (warp_one_hot(one_hot(ed), es_to_ed[None] if es_to_ed.dim() == 4 else es_to_ed).argmax(1)[0], labels_es)]
    scores: Dict[str, list] = {}
    for warped, target in pairs:
        warped = warped.cpu().numpy()
        for name, label in REGIONS.items():
            scores.setdefault(f"dice_{name}", []).append(100 * dice(warped == label, target == label))
            scores.setdefault(f"jaccard_{name}", []).append(100 * jaccard(warped == label, target == label))
            scores.setdefault(f"hd95_{name}", []).append(hausdorff95_labels(warped, target, label, ijk_to_ras=ijk_to_ras))
            scores.setdefault(f"msd_{name}", []).append(
                mean_surface_distance_labels(warped, target, label, ijk_to_ras=ijk_to_ras))
    return {k: float(np.mean(v)) for k, v in scores.items()}


def negative_jacobians(ed_to_t: torch.Tensor) -> int:
    """Voxels with a non-positive Jacobian determinant in the ED -> t fields (summed over frames)."""
    return int((jacobian_determinant_voxels(ed_to_t) <= 0).sum())


def endpoint_errors(ed_to_t_ras: np.ndarray, truth_ras: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(T-1, n)`` endpoint errors (mm) inside ``mask`` for frames after ED."""
    return np.linalg.norm(ed_to_t_ras[1:] - truth_ras[1:], axis=1)[:, mask]


def soft_volumes(t_to_ed: torch.Tensor, labels_ed: np.ndarray, voxel_ml: float) -> np.ndarray:
    """``(3, T)`` volumes (ml) of labels 1..3 of the ED labels carried to every frame (summed probabilities)."""
    ed = one_hot(torch.as_tensor(labels_ed.astype(np.int64), device=t_to_ed.device)[None])
    probs = warp_one_hot(ed.expand(t_to_ed.shape[0], -1, -1, -1, -1).contiguous(), t_to_ed)
    return (probs.sum((2, 3, 4)).T[1:] * voxel_ml).cpu().numpy()


def index_errors(volumes: np.ndarray, es_position: int, truth: Dict[str, float]) -> Dict[str, float]:
    """Signed errors (estimate - truth) of the nine indices."""
    indices = clinical_indices_from_volumes(volumes[0], volumes[2], volumes[1], 0, es_position).as_dict()
    return {name: indices[name] - truth[name] for name in INDEX_NAMES}


def uncertainty_scores(mean_ras: np.ndarray, covariance: np.ndarray, truth_ras: np.ndarray,
                       mask: np.ndarray, std_mm: np.ndarray) -> Dict[str, float]:
    """Spearman correlation of the posterior std (mm) with the endpoint error, and the fraction of true
    displacements inside the 95 % posterior ellipsoid, over ``mask`` and every frame after ED."""
    error = np.linalg.norm(mean_ras[1:] - truth_ras[1:], axis=1)[:, mask].ravel()
    spread = std_mm[1:][:, mask].ravel()
    residual = np.moveaxis(truth_ras[1:] - mean_ras[1:], 1, -1)[:, mask]  # (T-1, n, 3)
    cov = covariance[1:][:, mask]
    mahalanobis = np.einsum("tna,tna->tn", residual, np.linalg.solve(cov, residual[..., None])[..., 0])
    return {"unc_corr": float(spearmanr(spread, error).correlation),
            "coverage95": float(100 * np.mean(mahalanobis <= chi2.ppf(0.95, 3)))}


def phantom_strain(heart, labels_ed: np.ndarray, ijk_to_ras: np.ndarray, phases) -> Dict[str, np.ndarray]:
    """Analytic strain (%) of the phantom over the ED myocardium voxels of ``labels_ed`` (exact LV frame)."""
    k, j, i = np.nonzero(labels_ed == 2)
    points = (np.asarray(ijk_to_ras)[:3, :3] @ np.stack([i, j, k]).astype(float)).T + np.asarray(ijk_to_ras)[:3, 3]
    return analytic_strain(heart.positions, points, phases, heart.centre_ras, heart.long_axis_ras)


def strain_errors(ed_to_t_ras: np.ndarray, labels_ed: np.ndarray, ijk_to_ras: np.ndarray,
                  truth: Dict[str, np.ndarray]) -> Dict[str, float]:
    """Mean absolute error (% strain) over frames after ED per component, estimated LV frame."""
    frame = lv_frame_from_labels(labels_ed, ijk_to_ras)
    estimated = strain_from_displacement(ed_to_t_ras, ijk_to_ras, labels_ed == 2, *frame)
    return {f"strain_{name[:4]}": float(np.mean(np.abs(estimated[name][1:] - truth[name][1:]))) for name in STRAIN_NAMES}


def evaluate_fields(ed_to_t: torch.Tensor, t_to_ed: torch.Tensor, ijk_to_ras: np.ndarray, labels: np.ndarray,
                    truth_ras: np.ndarray, es_position: int, truth_indices: Dict[str, float],
                    truth_strain: Dict[str, np.ndarray], uncertainty: Optional[dict] = None) -> Dict[str, float]:
    """All benchmark scores of one method on one subject. ``labels`` ``(T, z, y, x)`` and ``truth_ras``
    ``(T, 3, z, y, x)`` are ED-first; ``uncertainty``: ``{"covariance", "std_mm"}`` (ED-first) or None."""
    ed_to_t_ras = voxel_to_ras_displacement(ed_to_t, ijk_to_ras).cpu().numpy()
    myo = labels[0] == 2
    scores = shape_scores(ed_to_t[es_position], t_to_ed[es_position], labels[0], labels[es_position], ijk_to_ras)
    scores["neg_jac"] = negative_jacobians(ed_to_t[1:])
    scores["epe_myo"] = float(endpoint_errors(ed_to_t_ras, truth_ras, myo).mean())
    scores["epe_myo_es"] = float(np.linalg.norm(ed_to_t_ras[es_position] - truth_ras[es_position], axis=0)[myo].mean())
    voxel_ml = abs(float(np.linalg.det(np.asarray(ijk_to_ras)[:3, :3]))) / 1000.0
    errors = index_errors(soft_volumes(t_to_ed, labels[0], voxel_ml), es_position, truth_indices)
    scores.update({f"err_{k}": v for k, v in errors.items()})
    scores.update(strain_errors(ed_to_t_ras, labels[0], ijk_to_ras, truth_strain))
    if uncertainty is not None:
        scores.update(uncertainty_scores(ed_to_t_ras, uncertainty["covariance"], truth_ras, myo, uncertainty["std_mm"]))
    return scores


__all__ = ["INDEX_NAMES", "REGIONS", "endpoint_errors", "evaluate_fields", "index_errors", "negative_jacobians",
           "phantom_strain", "shape_scores", "soft_volumes", "strain_errors", "uncertainty_scores"]
