"""Image similarity: PSNR (dB), SSIM and NCC (unitless), and NCC along cine-slice intersections.

:func:`ncc_along_slice_intersections` is the usual consistency measure for slice motion correction: two
non-parallel 2D+t slices of the same heart image the same tissue along the line where their planes meet,
so misaligned slices show different intensity profiles there (lower NCC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
from scipy.ndimage import map_coordinates
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from ..data.cine_study import CineSlice, CineStudy
from ..geometry.affine import apply_affine


def _pair(reference: np.ndarray, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64)
    image = np.asarray(image, dtype=np.float64)
    if reference.shape != image.shape:
        raise ValueError(f"images differ in shape: {reference.shape} vs {image.shape}")
    if reference.size == 0:
        raise ValueError("images are empty")
    return reference, image


def _data_range(reference: np.ndarray, data_range: Optional[float]) -> float:
    if data_range is None:
        data_range = float(reference.max() - reference.min())
        if data_range <= 0:
            raise ValueError("reference image is constant: give data_range explicitly")
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    return float(data_range)


def psnr(reference: np.ndarray, image: np.ndarray, data_range: Optional[float] = None) -> float:
    """Peak signal-to-noise ratio (dB) ``10 log10(data_range^2 / MSE)``; ``data_range`` defaults to the
    reference's max - min. Identical images -> ``inf``."""
    reference, image = _pair(reference, image)
    data_range = _data_range(reference, data_range)
    if np.array_equal(reference, image):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, image, data_range=data_range))


def ssim(
    reference: np.ndarray,
    image: np.ndarray,
    data_range: Optional[float] = None,
    win_size: Optional[int] = None,
    **kwargs,
) -> float:
    """Mean structural similarity (skimage) of 2D or 3D images (singleton axes are squeezed, so a
    ``(1, y, x)`` slice is treated as 2D). ``data_range`` defaults to the reference's max - min;
    ``win_size`` defaults to 7, reduced to the largest odd size fitting the smallest axis."""
    reference, image = _pair(reference, image)
    reference, image = np.squeeze(reference), np.squeeze(image)
    if reference.ndim not in (2, 3):
        raise ValueError(f"SSIM needs a 2D or 3D image, got {reference.ndim}D after squeezing")
    data_range = _data_range(reference, data_range)
    if win_size is None:
        smallest = min(reference.shape)
        win_size = min(7, smallest if smallest % 2 else smallest - 1)
    if win_size < 3 or win_size > min(reference.shape):
        raise ValueError(f"image of shape {reference.shape} is too small for an SSIM window of {win_size}")
    return float(structural_similarity(reference, image, data_range=data_range, win_size=win_size, **kwargs))


def ncc(image_a: np.ndarray, image_b: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Global normalised cross-correlation (Pearson correlation of intensities, in [-1, 1]), optionally
    over ``mask``. ``nan`` when either image is constant (undefined)."""
    image_a, image_b = _pair(image_a, image_b)
    if mask is not None:
        mask = np.asarray(mask) != 0
        if mask.shape != image_a.shape:
            raise ValueError(f"mask shape {mask.shape} != image shape {image_a.shape}")
        image_a, image_b = image_a[mask], image_b[mask]
        if image_a.size == 0:
            raise ValueError("mask is empty")
    if np.ptp(image_a) == 0 or np.ptp(image_b) == 0:
        return float("nan")
    a = image_a.ravel() - image_a.mean()
    b = image_b.ravel() - image_b.mean()
    return float(np.clip(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)), -1.0, 1.0))


@dataclass(frozen=True)
class SliceIntersectionNCC:
    """NCC of intensity profiles along the intersection lines of pairs of cine slices.

    Attributes:
        mean: mean NCC over the pairs with a defined value (``nan`` if none).
        pairs: ``{(a, b): ncc}`` for slice indices ``a < b`` (positions in the given slice list) whose
            planes meet inside both images.
        n_points: ``{(a, b): number of samples along the line}`` (per frame).
    """

    mean: float
    pairs: Dict[Tuple[int, int], float] = field(default_factory=dict)
    n_points: Dict[Tuple[int, int], int] = field(default_factory=dict)


def _in_plane_interval(slice_: CineSlice, point: np.ndarray, direction: np.ndarray) -> Tuple[float, float]:
    """Range of ``s`` for which ``point + s * direction`` (RAS mm) has i in [0, nx-1] and j in
    [0, ny-1] in the slice's voxel coordinates (empty when lo > hi)."""
    ras_to_ijk = np.linalg.inv(slice_.image.ijk_to_ras)
    start = apply_affine(ras_to_ijk, point)[:2]
    slope = ras_to_ijk[:3, :3].dot(direction)[:2]
    _, ny, nx = slice_.image.shape_zyx
    upper = np.array([nx - 1, ny - 1], dtype=float)
    lo, hi = -np.inf, np.inf
    for a, b, top in zip(start, slope, upper):
        if abs(b) < 1e-12:
            if not -1e-9 <= a <= top + 1e-9:
                return np.inf, -np.inf
            continue
        s0, s1 = sorted(((0.0 - a) / b, (top - a) / b))
        lo, hi = max(lo, s0), min(hi, s1)
    return lo, hi


def _sample_along(slice_: CineSlice, points: np.ndarray) -> np.ndarray:
    """Bilinear intensities ``(t, n)`` of every frame at RAS points ``(n, 3)`` lying in the slice."""
    ijk = apply_affine(np.linalg.inv(slice_.image.ijk_to_ras), points)
    frames = slice_.image.array[:, 0].astype(np.float64)  # (t, y, x)
    n_frames, n = frames.shape[0], len(points)
    coords = np.stack(
        [np.repeat(np.arange(n_frames, dtype=float), n), np.tile(ijk[:, 1], n_frames), np.tile(ijk[:, 0], n_frames)]
    )
    return map_coordinates(frames, coords, order=1, mode="nearest").reshape(n_frames, n)


def _intersection_samples(
    slice_a: CineSlice, slice_b: CineSlice, min_angle_rad: float
) -> Optional[np.ndarray]:
    """RAS points (mm) along the intersection of the two slice planes, spaced by the smaller in-plane
    pixel size and inside both images; None if the planes are (nearly) parallel or do not meet there."""
    normal_a, normal_b = slice_a.normal, slice_b.normal
    cross = np.cross(normal_a, normal_b)
    if np.linalg.norm(cross) < np.sin(min_angle_rad):
        return None
    direction = cross / np.linalg.norm(cross)
    origin_a, origin_b = slice_a.image.origin, slice_b.image.origin
    system = np.stack([normal_a, normal_b, direction])
    rhs = np.array([normal_a @ origin_a, normal_b @ origin_b, direction @ (0.5 * (origin_a + origin_b))])
    point = np.linalg.solve(system, rhs)
    lo_a, hi_a = _in_plane_interval(slice_a, point, direction)
    lo_b, hi_b = _in_plane_interval(slice_b, point, direction)
    lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
    if not hi > lo:
        return None
    step = float(min(slice_a.image.spacing[:2].min(), slice_b.image.spacing[:2].min()))
    n = int(np.floor((hi - lo) / step)) + 1
    s = lo + 0.5 * ((hi - lo) - (n - 1) * step) + step * np.arange(n)
    return point + s[:, None] * direction


def ncc_along_slice_intersections(
    study_or_slices: Union[CineStudy, Sequence[CineSlice]],
    min_angle_deg: float = 10.0,
    min_points: int = 5,
) -> SliceIntersectionNCC:
    """NCC between the intensity profiles of every pair of non-parallel cine slices along their
    intersection line, over all frames.

    For each pair whose planes (k = 0 of each slice's IJK->RAS) meet at more than ``min_angle_deg``, the
    line is sampled every ~pixel size (the smaller in-plane spacing, mm) where it lies inside both
    images; each slice is sampled bilinearly (``map_coordinates``) in its own voxel coordinates, and the
    NCC is that of the two ``(t, n)`` profiles flattened over frames. Pairs with fewer than
    ``min_points`` samples are skipped; pairs with a constant profile get ``nan`` (left out of the mean).
    """
    slices = list(study_or_slices.slices if isinstance(study_or_slices, CineStudy) else study_or_slices)
    if len(slices) < 2:
        raise ValueError(f"need at least two slices, got {len(slices)}")
    for index, slice_ in enumerate(slices):
        if not isinstance(slice_, CineSlice):
            raise ValueError(f"item {index} is a {type(slice_).__name__}, expected a CineSlice")
    if len({s.n_frames for s in slices}) != 1:
        raise ValueError(f"slices have different frame counts: {sorted({s.n_frames for s in slices})}")
    min_angle_rad = np.deg2rad(float(min_angle_deg))
    pairs: Dict[Tuple[int, int], float] = {}
    counts: Dict[Tuple[int, int], int] = {}
    for a, b in combinations(range(len(slices)), 2):
        points = _intersection_samples(slices[a], slices[b], min_angle_rad)
        if points is None or len(points) < min_points:
            continue
        pairs[(a, b)] = ncc(_sample_along(slices[a], points), _sample_along(slices[b], points))
        counts[(a, b)] = len(points)
    values = np.array([v for v in pairs.values() if np.isfinite(v)])
    mean = float(values.mean()) if values.size else float("nan")
    return SliceIntersectionNCC(mean=mean, pairs=pairs, n_points=counts)


__all__ = ["psnr", "ssim", "ncc", "SliceIntersectionNCC", "ncc_along_slice_intersections"]
