"""NCC along cine-slice intersections: consistent slices of one 3D+t function vs misaligned ones."""

import numpy as np
import pytest

from CardiacMotionAtlasLib.data import CineSlice, CineStudy, ImageSequence
from CardiacMotionAtlasLib.geometry.affine import apply_affine, make_ijk_to_ras, rotation_matrix
from CardiacMotionAtlasLib.metrics.image import ncc_along_slice_intersections

N_FRAMES = 5
AXIAL = np.eye(3)  # i = R, j = A, normal S
CORONAL = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])  # columns: i = R, j = I (-S), normal = A
SAGITTAL = np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]])  # columns: i = A, j = S, normal = R


def intensity(points, phase):
    """A smooth 3D+t 'heart' (RAS mm, phase in [0, 1))."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    blob = 0.5 * np.exp(-(x**2 + y**2 + z**2) / 400.0) * (1 + np.cos(2 * np.pi * phase))
    return np.sin(x / 6 + 2 * np.pi * phase) + np.cos(y / 5) * np.sin(z / 4 + 0.5) + blob


def make_slice(direction, centre, view, n=64, spacing=1.25, thickness=8.0, n_frames=N_FRAMES):
    direction = np.asarray(direction, dtype=float)
    half = spacing * (n - 1) / 2
    origin = np.asarray(centre, float) - half * direction[:, 0] - half * direction[:, 1]
    matrix = make_ijk_to_ras(origin, direction, (spacing, spacing, thickness))
    j, i = np.mgrid[0:n, 0:n]
    points = apply_affine(matrix, np.stack([i, j, np.zeros_like(i)], axis=-1).astype(float))
    frames = np.stack([intensity(points, t / n_frames) for t in range(n_frames)])[:, None]
    return CineSlice(ImageSequence(frames.astype(np.float32), matrix), view=view)


def moved(slice_, shift_mm):
    """The same pixels with the header moved by ``shift_mm`` (RAS): a misaligned slice."""
    matrix = slice_.image.ijk_to_ras.copy()
    matrix[:3, 3] += shift_mm
    return CineSlice(ImageSequence(slice_.image.array, matrix), view=slice_.view)


@pytest.fixture(scope="module")
def slices():
    return [
        make_slice(AXIAL, (0, 0, 0), "SAX"),
        make_slice(rotation_matrix((0, 0, 1), 0.3) @ CORONAL, (2, 1, 0), "4CH"),
        make_slice(SAGITTAL, (0, 0, 0), "2CH"),
    ]


def test_consistent_slices_have_ncc_near_one(slices):
    result = ncc_along_slice_intersections(slices)
    assert set(result.pairs) == {(0, 1), (0, 2), (1, 2)}
    assert min(result.pairs.values()) > 0.999
    assert result.mean > 0.999
    # the line crosses the whole 80 mm field of view at ~1.25 mm spacing
    assert all(60 <= n <= 66 for n in result.n_points.values())
    study = CineStudy("s1", slices)
    assert ncc_along_slice_intersections(study).mean == pytest.approx(result.mean)


def test_misaligned_slice_lowers_ncc(slices):
    before = ncc_along_slice_intersections(slices)
    small = ncc_along_slice_intersections([slices[0], slices[1], moved(slices[2], (0, 0, 2.0))])
    large = ncc_along_slice_intersections([slices[0], slices[1], moved(slices[2], (0, 0, 4.0))])
    assert large.pairs[(0, 2)] < small.pairs[(0, 2)] < before.pairs[(0, 2)]
    assert large.pairs[(0, 2)] < 0.9 and large.pairs[(1, 2)] < 0.95
    assert large.pairs[(0, 1)] == pytest.approx(before.pairs[(0, 1)])  # untouched pair unchanged
    assert large.mean < before.mean - 0.05


def test_parallel_and_disjoint_pairs_are_skipped(slices):
    stack = [make_slice(AXIAL, (0, 0, z), "SAX") for z in (-8.0, 0.0, 8.0)]
    result = ncc_along_slice_intersections(stack)
    assert result.pairs == {} and np.isnan(result.mean)
    # a sagittal slice far to the right never meets the axial slice inside its field of view
    far = make_slice(SAGITTAL, (200.0, 0, 0), "2CH")
    assert ncc_along_slice_intersections([slices[0], far]).pairs == {}


def test_bad_input(slices):
    with pytest.raises(ValueError):
        ncc_along_slice_intersections(slices[:1])
    with pytest.raises(ValueError):
        ncc_along_slice_intersections([slices[0], slices[1].image])
    with pytest.raises(ValueError):
        ncc_along_slice_intersections([slices[0], make_slice(SAGITTAL, (0, 0, 0), "2CH", n_frames=3)])
