"""Label-map surface distances (HD95, MSD) with voxel spacing."""

import numpy as np
import pytest

from CardiacMotionAtlasLib.geometry.affine import make_ijk_to_ras, rotation_matrix
from CardiacMotionAtlasLib.metrics.surface_labels import (
    hausdorff95_labels,
    label_surface_distances,
    mean_surface_distance_labels,
    surface_voxels,
)


def box(shape, lo, hi, value=1):
    labels = np.zeros(shape, dtype=np.uint8)
    labels[tuple(slice(a, b) for a, b in zip(lo, hi))] = value
    return labels


def test_surface_voxels_of_a_box():
    mask = box((10, 10, 10), (2, 2, 2), (7, 7, 7))
    surface = surface_voxels(mask)
    assert surface.sum() == 5**3 - 3**3
    assert not surface[4, 4, 4] and surface[2, 4, 4]


def test_identical_masks_give_zero():
    labels = box((20, 20, 20), (5, 5, 5), (15, 15, 15), value=2)
    assert hausdorff95_labels(labels, labels, label=2) == 0.0
    assert mean_surface_distance_labels(labels, labels, label=2) == 0.0


def test_grown_box_distances():
    a = box((40, 40, 40), (10, 10, 10), (30, 30, 30))
    b = box((40, 40, 40), (8, 8, 8), (32, 32, 32))
    d_ab, d_ba = label_surface_distances(a, b)
    np.testing.assert_allclose(d_ab, 2.0)  # every A surface voxel is 2 voxels from B's nearest face
    assert d_ba.max() == pytest.approx(np.sqrt(12.0))  # B's corners
    assert hausdorff95_labels(a, b, percentile=100) == pytest.approx(np.sqrt(12.0))
    assert 2.0 < mean_surface_distance_labels(a, b) < 2.3


def test_spacing_is_taken_from_ijk_to_ras_in_array_order():
    a = box((20, 20, 20), (5, 5, 5), (15, 15, 15))
    b = box((20, 20, 20), (5, 5, 6), (15, 15, 16))  # shifted one voxel along i (x)
    matrix = make_ijk_to_ras((3.0, -2.0, 1.0), rotation_matrix((1, 1, 0), 0.4), (2.5, 1.0, 1.0))
    assert hausdorff95_labels(a, b, ijk_to_ras=matrix, percentile=100) == pytest.approx(2.5)
    assert hausdorff95_labels(a, b, spacing_zyx=(1.0, 1.0, 2.5), percentile=100) == pytest.approx(2.5)
    assert hausdorff95_labels(a, b, spacing_zyx=(2.5, 1.0, 1.0), percentile=100) == pytest.approx(1.0)


def test_concentric_spheres_msd_close_to_radius_difference():
    z, y, x = np.mgrid[-30:31, -30:31, -30:31]
    r = np.sqrt(x**2 + y**2 + z**2)
    a, b = (r <= 15).astype(np.uint8), (r <= 18).astype(np.uint8)
    assert mean_surface_distance_labels(a, b) == pytest.approx(3.0, abs=0.4)
    assert hausdorff95_labels(a, b) == pytest.approx(3.0, abs=0.8)


def test_empty_masks_and_bad_input():
    empty = np.zeros((10, 10, 10), dtype=np.uint8)
    full = box((10, 10, 10), (2, 2, 2), (8, 8, 8))
    assert hausdorff95_labels(empty, empty) == 0.0
    assert mean_surface_distance_labels(empty, empty) == 0.0
    assert hausdorff95_labels(full, empty) == float("inf")
    assert mean_surface_distance_labels(empty, full) == float("inf")
    with pytest.raises(ValueError):
        hausdorff95_labels(full, full[:-1])
    with pytest.raises(ValueError):
        hausdorff95_labels(full, full, spacing_zyx=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError):
        hausdorff95_labels(full, full, spacing_zyx=(1.0, 1.0, 1.0), ijk_to_ras=np.eye(4))
