"""Evaluation helpers for NISF++ (benchmark and tests): baselines that resample the given SAX stack
(SimpleITK, nearest / linear, no motion correction), residual slice misalignment against known
offsets, and label Dice along slice intersections.
"""

from __future__ import annotations

from itertools import combinations
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from ..data.cine_study import CineSlice, CineStudy
from ..geometry.affine import apply_affine
from ..io.itk_images import sitk_from_volume
from ..io.layout_common import stack_slices
from ..metrics import dice_per_label, hausdorff95_labels, ncc, psnr, ssim
from .data import N_CLASSES
from .model import SubjectFit
from .sampling import predict_slice, scatter_roi

CLASS_NAMES = {1: "LV", 2: "myo", 3: "RV"}


def _reference(ijk_to_ras: np.ndarray, shape_zyx: Sequence[int]) -> sitk.Image:
    return sitk_from_volume(np.zeros(tuple(int(v) for v in shape_zyx), np.uint8), ijk_to_ras)


def resample_sax_stack(study: CineStudy, ijk_to_ras: np.ndarray, shape_zyx: Sequence[int], frames: Sequence[int],
                       *, labels: bool, interpolation: str = "nearest") -> np.ndarray:
    """The SAX stack (nominal geometry, no motion correction) resampled onto a grid with SimpleITK:
    ``(len(frames), z, y, x)``. Labels: ``nearest``, or ``linear`` on one-hot channels then argmax;
    intensities: ``nearest`` or ``linear`` (float32). Outside the stack: 0."""
    sax = sorted(study.sax, key=lambda s: s.slice_index)
    stack, _, _ = stack_slices(sax)
    reference = _reference(ijk_to_ras, shape_zyx)
    method = {"nearest": sitk.sitkNearestNeighbor, "linear": sitk.sitkLinear}[interpolation]
    out = []
    for frame in frames:
        if labels:
            volume = np.stack([np.asarray(s.labels.array[frame, 0]) for s in sax]).astype(np.uint8)
            if interpolation == "nearest":
                image = sitk_from_volume(volume, stack)
                out.append(sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), method, 0)))
                continue
            channels = []
            for label in range(N_CLASSES):
                image = sitk_from_volume((volume == label).astype(np.float32), stack)
                channels.append(sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), method, 0.0)))
            out.append(np.argmax(np.stack(channels), axis=0).astype(np.uint8))
        else:
            volume = np.stack([np.asarray(s.image.array[frame, 0], np.float32) for s in sax])
            image = sitk_from_volume(volume, stack)
            out.append(sitk.GetArrayFromImage(sitk.Resample(image, reference, sitk.Transform(), method, 0.0)))
    return np.stack(out)


def resample_sax_onto_slice(study: CineStudy, target_ijk_to_ras: np.ndarray, shape_yx: Sequence[int],
                            frames: Sequence[int], *, labels: bool, interpolation: str) -> np.ndarray:
    """The SAX stack resampled onto one slice plane: ``(len(frames), y, x)``."""
    return resample_sax_stack(study, target_ijk_to_ras, (1,) + tuple(shape_yx), frames, labels=labels,
                              interpolation=interpolation)[:, 0]


def rigid_alignment(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4x4 rigid transform ``C`` minimising ``sum |C source_i - target_i|^2`` (Kabsch), points ``(n, 3)``."""
    mean_s, mean_t = source.mean(0), target.mean(0)
    u, _, vt = np.linalg.svd((source - mean_s).T @ (target - mean_t))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    rotation = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    out = np.eye(4)
    out[:3, :3] = rotation
    out[:3, 3] = mean_t - rotation @ mean_s
    return out


def _slice_points(ijk_to_ras: np.ndarray, shape_yx: Sequence[int], radius_px: float) -> np.ndarray:
    ny, nx = shape_yx
    centre = np.array([(nx - 1) / 2.0, (ny - 1) / 2.0, 0.0])
    offsets = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], float) * radius_px
    return apply_affine(ijk_to_ras, centre + offsets)


def residual_misalignment(estimated: Sequence[np.ndarray], truth: Sequence[np.ndarray], shapes: Sequence[Sequence[int]],
                          radius_mm: float = 40.0) -> Dict[str, np.ndarray]:
    """Per-slice residual between estimated and true IJK->RAS geometries with the common rigid offset
    removed (a shared offset of all slices plus the anatomy is not identifiable): ``{"mm": distance of
    the slice centres, "in_plane_mm"/"through_plane_mm": its components along the true plane and its
    normal, "deg": rotation angle of the residual, "rms_mm": RMS over points within radius_mm of the
    centre}``."""
    source, target, counts = [], [], []
    for est, true, shape in zip(estimated, truth, shapes):
        pixel = float(np.linalg.norm(np.asarray(true)[:3, 0]))
        source.append(_slice_points(est, shape, radius_mm / pixel))
        target.append(_slice_points(true, shape, radius_mm / pixel))
    common = rigid_alignment(np.concatenate(source), np.concatenate(target))
    mm, deg, rms, through = [], [], [], []
    for est, true, src, tgt in zip(estimated, truth, source, target):
        moved = apply_affine(common, src)
        mm.append(float(np.linalg.norm(moved[0] - tgt[0])))
        normal = np.asarray(true)[:3, 2] / np.linalg.norm(np.asarray(true)[:3, 2])
        through.append(float(abs((moved[0] - tgt[0]) @ normal)))
        rms.append(float(np.sqrt(((moved - tgt) ** 2).sum(1).mean())))
        rotation = (common[:3, :3] @ np.asarray(est)[:3, :3]) @ np.linalg.inv(np.asarray(true)[:3, :3])
        cosine = np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0)
        deg.append(float(np.degrees(np.arccos(cosine))))
    mm, through = np.asarray(mm), np.asarray(through)
    return {"mm": mm, "deg": np.asarray(deg), "rms_mm": np.asarray(rms), "through_plane_mm": through,
            "in_plane_mm": np.sqrt(np.maximum(mm**2 - through**2, 0.0))}


def _line_through(slice_a: CineSlice, matrix_a: np.ndarray, slice_b: CineSlice, matrix_b: np.ndarray,
                  min_angle_deg: float = 10.0) -> Optional[np.ndarray]:
    normal_a = matrix_a[:3, 2] / np.linalg.norm(matrix_a[:3, 2])
    normal_b = matrix_b[:3, 2] / np.linalg.norm(matrix_b[:3, 2])
    cross = np.cross(normal_a, normal_b)
    if np.linalg.norm(cross) < np.sin(np.deg2rad(min_angle_deg)):
        return None
    direction = cross / np.linalg.norm(cross)
    system = np.stack([normal_a, normal_b, direction])
    middle = 0.5 * (matrix_a[:3, 3] + matrix_b[:3, 3])
    rhs = np.array([normal_a @ matrix_a[:3, 3], normal_b @ matrix_b[:3, 3], direction @ middle])
    point = np.linalg.solve(system, rhs)
    step = float(min(np.linalg.norm(matrix_a[:3, 0]), np.linalg.norm(matrix_b[:3, 0])))
    ny, nx = slice_a.image.shape_zyx[1:]
    half = 0.75 * max(nx, ny) * step
    s = np.arange(-half, half, step)
    points = point + s[:, None] * direction
    keep = np.ones(len(points), bool)
    for slice_, matrix in ((slice_a, matrix_a), (slice_b, matrix_b)):
        ijk = apply_affine(np.linalg.inv(matrix), points)
        ny, nx = slice_.image.shape_zyx[1:]
        keep &= (ijk[:, 0] >= 0) & (ijk[:, 0] <= nx - 1) & (ijk[:, 1] >= 0) & (ijk[:, 1] <= ny - 1)
    return points[keep] if keep.sum() >= 5 else None


def dice_along_intersections(study: CineStudy, geometries: Optional[Sequence[np.ndarray]] = None,
                             frames: Optional[Sequence[int]] = None) -> float:
    """Mean (over slice pairs with labels in the same frames, and classes 1-3 present) Dice of the two
    slices' nearest-neighbour labels along their intersection line, with ``geometries`` (default: the
    headers')."""
    slices = list(study.slices)
    geometries = [s.image.ijk_to_ras for s in slices] if geometries is None else list(geometries)
    scores: List[float] = []
    for a, b in combinations(range(len(slices)), 2):
        sa, sb = slices[a], slices[b]
        if sa.labels is None or sb.labels is None:
            continue
        common = sorted(set(sa.labelled_frames or []) & set(sb.labelled_frames or []))
        if frames is not None:
            common = [f for f in common if f in set(frames)]
        points = _line_through(sa, geometries[a], sb, geometries[b])
        if points is None or not common:
            continue
        values = []
        for slice_, matrix in ((sa, geometries[a]), (sb, geometries[b])):
            ijk = np.rint(apply_affine(np.linalg.inv(matrix), points)).astype(int)
            values.append(np.asarray(slice_.labels.array)[common][:, 0, ijk[:, 1], ijk[:, 0]])
        for label in (1, 2, 3):
            mask_a, mask_b = values[0] == label, values[1] == label
            total = mask_a.sum() + mask_b.sum()
            if total:
                scores.append(2.0 * (mask_a & mask_b).sum() / total)
    return float(np.mean(scores)) if scores else float("nan")


def with_geometries(study: CineStudy, geometries: Sequence[np.ndarray]) -> CineStudy:
    """A copy of ``study`` whose slices carry ``geometries`` (same order as ``study.slices``)."""
    from dataclasses import replace

    slices = []
    for slice_, matrix in zip(study.slices, geometries):
        image = replace(slice_.image, ijk_to_ras=np.asarray(matrix, float))
        labels = None if slice_.labels is None else replace(slice_.labels, ijk_to_ras=np.asarray(matrix, float))
        slices.append(replace(slice_, image=image, labels=labels))
    return replace(study, slices=slices)


def frame_errors_deg(frame_axes_ras: np.ndarray, heart_local_to_ras: np.ndarray) -> Dict[str, float]:
    """Angles (degrees) between a standardised frame's x (towards the RV) and z (base -> apex) and the
    phantom heart's true LV-frame axes (``local_to_ras`` columns): 0 = right, 180 = flipped."""
    out = {}
    for name, column in (("x_to_rv_deg", 0), ("z_to_apex_deg", 2)):
        a = np.asarray(frame_axes_ras, float)[:, column]
        b = np.asarray(heart_local_to_ras, float)[:3, column]
        cosine = float(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1.0, 1.0))
        out[name] = float(np.degrees(np.arccos(cosine)))
    return out


def segmentation_scores(predicted: np.ndarray, truth: np.ndarray, ijk_to_ras: np.ndarray) -> Dict[str, float]:
    """Dice and HD95 (mm) per class (LV BP, LV myo, RV BP) of one ``(z, y, x)`` label map."""
    dice = dice_per_label(predicted, truth, [1, 2, 3])
    out = {f"dice_{name}": dice[label] for label, name in CLASS_NAMES.items()}
    for label, name in CLASS_NAMES.items():
        out[f"hd95_{name}"] = hausdorff95_labels(predicted, truth, label, ijk_to_ras=ijk_to_ras)
    return out


LEVELS = ("beyond_base", "basal", "mid", "apical", "beyond_apex")


def errors_by_level(predicted: np.ndarray, truth: np.ndarray, ijk_to_ras: np.ndarray, origin_ras: np.ndarray,
                    axis_ras: np.ndarray, label: int) -> Dict[str, float]:
    """Where one class's errors lie along the long axis: the volume (ml) of wrong voxels (false
    positives and false negatives of ``label``) in each level of ``(z, y, x)`` label maps on the grid
    ``ijk_to_ras`` (RAS mm). Levels are thirds of the true class's extent along ``axis_ras`` (unit-free
    direction base -> apex, through ``origin_ras``), plus what lies beyond its base and its apex.
    Keys ``{level}_ml`` for :data:`LEVELS` and ``base_shift_mm`` (the prediction's basal-most height
    minus the truth's, mm; negative = the label reaches past the true base). NaN when the class is
    absent from either map."""
    wrong = (predicted == label) != (truth == label)
    out = {f"{level}_ml": float("nan") for level in LEVELS}
    out["base_shift_mm"] = float("nan")
    if not (truth == label).any() or not (predicted == label).any():
        return out
    matrix = np.asarray(ijk_to_ras, float)
    axis = np.asarray(axis_ras, float) / np.linalg.norm(axis_ras)
    k, j, i = np.nonzero(wrong | (truth == label) | (predicted == label))
    heights = (apply_affine(matrix, np.stack([i, j, k], 1).astype(float)) - np.asarray(origin_ras, float)) @ axis
    in_truth, in_pred, bad = truth[k, j, i] == label, predicted[k, j, i] == label, wrong[k, j, i]
    low, high = heights[in_truth].min(), heights[in_truth].max()
    edges = [low, low + (high - low) / 3.0, low + 2.0 * (high - low) / 3.0, high]
    level = np.digitize(heights[bad], edges, right=False)  # 0 beyond base, 1-3 thirds, 4 beyond apex
    level[heights[bad] == high] = 3
    voxel_ml = abs(np.linalg.det(matrix[:3, :3])) / 1000.0
    counts = np.bincount(level, minlength=5)
    for name, count in zip(LEVELS, counts):
        out[f"{name}_ml"] = float(count * voxel_ml)
    out["base_shift_mm"] = float(heights[in_pred].min() - low)
    return out


def study_geometries(study: CineStudy, fit: SubjectFit) -> List[np.ndarray]:
    """IJK->RAS of every slice of ``study``: corrected where ``fit`` modelled the slice, else the header's."""
    geometries = [np.asarray(s.image.ijk_to_ras, float) for s in study.slices]
    for slice_, corrected in zip(fit.subject.slices, fit.corrected_geometries()):
        geometries[slice_.index_in_study] = corrected
    return geometries


def _bbox_images(slice_shape, roi_pixels, *arrays):
    images = [scatter_roi(slice_shape, roi_pixels, a) for a in arrays]
    mask = scatter_roi(slice_shape, roi_pixels, np.ones((1, len(roi_pixels)), np.uint8))[0]
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [im[:, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] for im in images]


def inplane_scores(fit: SubjectFit, study: CineStudy, psf_samples: Optional[int] = None) -> List[Dict]:
    """Per modelled slice: the model's intensities on its corrected plane against the observed slice
    (PSNR dB / SSIM over the modelled pixels' bounding box, zeros outside them, data range 1 in
    normalised units), NCC over the modelled pixels (mean over frames: does the field put the anatomy
    where this slice sees it, whatever the intensity scale) and its labels against the given labels
    (mean Dice of LV BP / myo / RV BP, at the labelled frames). Rows: ``{"slice", "type", "psnr",
    "ssim", "ncc", "dice"}``."""
    rows = []
    for position, slice_ in enumerate(fit.subject.slices):
        source = study.slices[slice_.index_in_study]
        intensity, labels = predict_slice(fit, position, psf_samples=psf_samples)
        observed = slice_.intensities
        pred_img, obs_img = _bbox_images(slice_.shape_yx, slice_.roi_pixels, intensity, observed)
        row = {"slice": slice_.name, "type": slice_.slice_type,
               "psnr": psnr(obs_img, pred_img, data_range=1.0),
               "ssim": float(np.mean([ssim(o, p, data_range=1.0) for o, p in zip(obs_img, pred_img)])),
               "ncc": float(np.nanmean([ncc(p, o) for p, o in zip(intensity, observed)])), "dice": np.nan}
        if source.labels is not None and source.labelled_frames:
            frames = sorted(source.labelled_frames)
            given = np.asarray(source.labels.array)[frames, 0].reshape(len(frames), -1)[:, slice_.roi_pixels]
            scores = list(dice_per_label(labels[frames], given).values()) or [1.0]
            row["dice"] = float(np.mean(scores))
        rows.append(row)
    return rows


__all__ = ["LEVELS", "errors_by_level", "frame_errors_deg", "segmentation_scores", "study_geometries", "inplane_scores", "CLASS_NAMES", "resample_sax_stack",
           "resample_sax_onto_slice", "rigid_alignment", "residual_misalignment",
           "dice_along_intersections", "with_geometries"]
