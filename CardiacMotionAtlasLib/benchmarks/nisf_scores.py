"""Scores of the NISF++ benchmark (:mod:`.nisf`): segmentation (Dice, HD95 mm) on a grid, slice-motion
correction (residual misalignment mm / degrees, NCC and Dice along slice intersections) and a held-out view
predicted on its plane, each next to its baseline."""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ..geometry.affine import apply_affine
from ..metrics import dice_per_label, ncc, ncc_along_slice_intersections
from ..nisf import fit_subject
from ..nisf.sampling import sample_grid, sample_points
from ..nisf.evaluation import (CLASS_NAMES, dice_along_intersections, errors_by_level, resample_sax_onto_slice, residual_misalignment,
                               segmentation_scores, study_geometries, with_geometries)

SEG_METRICS = [f"dice_{n}" for n in CLASS_NAMES.values()] + [f"hd95_{n}" for n in CLASS_NAMES.values()]


def segmentation(fit_or_none, heart, sim, frames, grid, truth, baseline=None,
                 levels: Optional[List[Dict]] = None) -> Dict[str, List[float]]:
    """Dice and HD95 per class and frame; with ``levels`` (a list) also appends, per frame and class,
    where the wrong voxels lie along the heart's true long axis (:func:`~..nisf.evaluation.errors_by_level`)."""
    matrix, shape = grid
    phases = [f / sim.study.n_frames for f in frames]
    if fit_or_none is not None:
        labels = sample_grid(fit_or_none, matrix, shape, phases, want_intensity=False).labels.array
    else:
        labels = baseline
    scores: Dict[str, List[float]] = {k: [] for k in SEG_METRICS}
    for f in range(len(frames)):
        for key, value in segmentation_scores(labels[f], truth[f], matrix).items():
            scores[key].append(value)
        if levels is not None:
            for label, name in CLASS_NAMES.items():
                levels.append({"class": name, **errors_by_level(labels[f], truth[f], matrix, heart.local_to_ras[:3, 3],
                                                                heart.local_to_ras[:3, 2], label)})
    return scores


def merge_scores(target: Dict[str, List[float]], new: Dict[str, List[float]]) -> None:
    for key, values in new.items():
        target.setdefault(key, []).extend(values)


def motion_scores(fit, sim) -> Dict[str, float]:
    study = sim.study
    truth = [t.true_ijk_to_ras for t in sim.truth]
    shapes = [s.image.shape_zyx[1:] for s in study.slices]
    nominal = [s.image.ijk_to_ras for s in study.slices]
    corrected = study_geometries(study, fit)
    before = residual_misalignment(nominal, truth, shapes)
    after = residual_misalignment(corrected, truth, shapes)
    moved = with_geometries(study, corrected)
    return {"mm_before": before["mm"].mean(), "mm_after": after["mm"].mean(),
            "deg_before": before["deg"].mean(), "deg_after": after["deg"].mean(),
            "in_plane_mm_after": after["in_plane_mm"].mean(), "through_plane_mm_after": after["through_plane_mm"].mean(),
            "ncc_before": ncc_along_slice_intersections(study).mean,
            "ncc_after": ncc_along_slice_intersections(moved).mean,
            "dice_x_before": dice_along_intersections(study), "dice_x_after": dice_along_intersections(moved)}


def held_out_view(trained, sim, view: str = "4CH") -> Dict[str, float]:
    """Fit without ``view``, predict it on its (nominal) plane at its labelled frames."""
    study = sim.study
    target = study.view(view)[0]
    fit = fit_subject(trained, study, exclude_views=(view,))
    frames = sorted(target.labelled_frames)
    _, ny, nx = target.image.shape_zyx
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    points = np.c_[ii.ravel(), jj.ravel(), np.zeros(ii.size)]
    ras = apply_affine(target.image.ijk_to_ras, points)
    intensity, labels = sample_points(fit, ras, [target.image.phases[f] for f in frames])
    given = np.asarray(target.labels.array)[frames, 0].reshape(len(frames), -1)
    observed = np.asarray(target.image.array, float)[frames, 0].reshape(len(frames), -1)
    inside = labels.any(0) | given.any(0)  # compare where heart labels exist in either (the modelled region)
    out = {"dice_model": float(np.mean(list(dice_per_label(labels[:, inside], given[:, inside]).values()))),
           "ncc_model": ncc(intensity[:, inside], observed[:, inside])}
    nn = resample_sax_onto_slice(study, target.image.ijk_to_ras, (ny, nx), frames, labels=True, interpolation="nearest")
    lin = resample_sax_onto_slice(study, target.image.ijk_to_ras, (ny, nx), frames, labels=False,
                                  interpolation="linear")
    nn = nn.reshape(len(frames), -1)
    out["dice_nn"] = float(np.mean(list(dice_per_label(nn[:, inside], given[:, inside]).values())))
    out["ncc_linear"] = ncc(lin.reshape(len(frames), -1)[:, inside], observed[:, inside])
    return out
