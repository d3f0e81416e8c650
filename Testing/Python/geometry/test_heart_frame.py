"""geometry.heart_frame: the one heart frame (axes from the long axis and the RV, RAS <-> frame maps, checks,
record) that the atlas, NISF++ and strain frames share."""

from dataclasses import dataclass

import numpy as np
import pytest

from CardiacMotionAtlasLib.analysis.strain import lv_frame_from_labels
from CardiacMotionAtlasLib.atlas.errors import AtlasDataError
from CardiacMotionAtlasLib.atlas.frame import CanonicalFrame
from CardiacMotionAtlasLib.geometry.affine import make_ijk_to_ras, rotation_matrix
from CardiacMotionAtlasLib.geometry.heart_frame import HeartFrame, heart_axes, label_points_ras, perpendicular_part
from CardiacMotionAtlasLib.nisf.errors import NISFInputError
from CardiacMotionAtlasLib.nisf.frame import StandardFrame


@dataclass
class Frame(HeartFrame):
    origin_ras: np.ndarray
    axes_ras: np.ndarray
    scale_mm: float

    def __post_init__(self):
        self._check_axes("test frame", ValueError)


def test_heart_axes_point_x_to_the_rv_and_are_right_handed():
    z = np.array([1.0, 2.0, -2.0]) / 3.0
    towards_rv = np.array([5.0, 0.0, 1.0])
    axes = heart_axes(z, towards_rv)
    assert np.allclose(axes.T @ axes, np.eye(3)) and np.linalg.det(axes) == pytest.approx(1.0)
    assert np.array_equal(axes[:, 2], z)
    expected_x = perpendicular_part(towards_rv, z)
    assert np.allclose(axes[:, 0], expected_x / np.linalg.norm(expected_x))
    assert abs(axes[:, 0] @ z) < 1e-12 and axes[:, 0] @ towards_rv > 0
    with pytest.raises(ValueError, match="along the LV long axis"):
        heart_axes(z, 7.0 * z + 1e-5)


def test_maps_are_a_similarity_and_its_inverse():
    axes = rotation_matrix([0.3, -0.2, 0.9], 0.7)
    frame = Frame(np.array([10.0, -20.0, 5.0]), axes, 50.0)
    points = np.random.default_rng(0).normal(0.0, 40.0, (20, 3))
    canonical = frame.to_canonical(points)
    assert np.allclose(canonical, (points - frame.origin_ras) @ axes / 50.0)
    assert np.allclose(frame.to_ras(canonical), points)
    assert np.allclose(frame.ras_to_canonical @ frame.canonical_to_ras, np.eye(4))
    assert np.allclose(frame.local_to_ras_points(frame.to_local(points)), points)
    assert np.allclose(np.linalg.norm(frame.to_local(points) - frame.to_local(points[:1]), axis=1),
                       np.linalg.norm(points - points[:1], axis=1))  # local mm keep distances
    assert np.array_equal(frame.long_axis, axes[:, 2])
    record = frame.axes_dict()
    assert set(record) == {"origin_ras", "axes_ras"} and all(type(v) is float for v in record["origin_ras"])
    origin, back = HeartFrame.axes_from_dict(record)
    assert np.array_equal(origin, frame.origin_ras) and np.array_equal(back, axes)


def test_checks_refuse_bad_frames_with_each_methods_error():
    with pytest.raises(ValueError, match="test frame axes are not a right-handed"):
        Frame(np.zeros(3), np.diag([1.0, 1.0, -1.0]), 1.0)
    with pytest.raises(ValueError, match="test frame has non-finite entries or a non-positive scale"):
        Frame(np.array([np.nan, 0, 0]), np.eye(3), 1.0)
    with pytest.raises(AtlasDataError, match="canonical frame axes are not a right-handed"):
        CanonicalFrame(np.zeros(3), 2 * np.eye(3), 30.0)
    with pytest.raises(NISFInputError, match="standardised frame has non-finite entries"):
        StandardFrame(np.zeros(3), np.eye(3), -1.0)
    atlas_frame, nisf_frame = CanonicalFrame(np.ones(3), np.eye(3), 30.0, 2.0), StandardFrame(np.ones(3), np.eye(3), 60.0)
    assert isinstance(atlas_frame, HeartFrame) and isinstance(nisf_frame, HeartFrame)
    assert np.array_equal(atlas_frame.canonical_to_ras, nisf_frame.canonical_to_ras)  # same scale: same map


def test_label_points_are_voxel_centres_in_ras_and_give_the_strain_centre():
    labels = np.zeros((3, 4, 5), np.uint8)
    labels[1, 2, 3] = 2
    labels[2, 0, 1] = 1
    labels[0, 3, 4] = 3
    ijk_to_ras = make_ijk_to_ras((4.0, 5.0, 6.0), np.diag([-1.0, -1.0, 1.0]), (2.0, 1.5, 8.0))
    points = label_points_ras(labels, ijk_to_ras, (1, 2))
    expected = (ijk_to_ras @ np.array([[3, 2, 1, 1], [1, 0, 2, 1]], float).T).T[:, :3]  # (i, j, k), in (z, y, x) C order
    assert np.allclose(points, expected)
    centre, axis = lv_frame_from_labels(labels, ijk_to_ras)
    assert np.allclose(centre, expected.mean(0)) and np.allclose(axis, [0.0, 0.0, 1.0])
    assert label_points_ras(labels, ijk_to_ras, (7,)).shape == (0, 3)
