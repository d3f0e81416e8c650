"""The LV long axis from a blood pool's cross-section centres, against the phantoms' true axes."""

import numpy as np
import pytest

from CardiacMotionAtlasLib.atlas.sampling import phantom_canonical_frame
from CardiacMotionAtlasLib.geometry.affine import apply_affine
from CardiacMotionAtlasLib.geometry.long_axis import centreline_axis, principal_axis
from CardiacMotionAtlasLib.phantom.families import make_heart


def _angle_deg(a, b):
    return float(np.degrees(np.arccos(np.clip(abs(np.dot(a, b)), 0.0, 1.0))))


def test_centreline_follows_the_section_centres_of_a_sheared_cylinder():
    """A cavity-sized cylinder (radius 30 mm, 80 mm long) whose cross-sections are sheared along the axis
    (z += 0.36 x, a 20 degree tilt): its principal axis tilts, the line through its section centres does not."""
    rng = np.random.default_rng(0)
    r = 30 * np.sqrt(rng.uniform(size=20000))
    phi = rng.uniform(0, 2 * np.pi, 20000)
    z = rng.uniform(0, 80, 20000)
    points = np.stack([r * np.cos(phi), r * np.sin(phi), z], -1)
    points[:, 2] += 0.36 * points[:, 0]
    assert _angle_deg(principal_axis(points)[1], [0, 0, 1]) > 8.0
    assert _angle_deg(centreline_axis(points)[1], [0, 0, 1]) < 2.0


def test_centreline_refuses_too_few_points():
    with pytest.raises(ValueError, match="at least"):
        centreline_axis(np.zeros((4, 3)))


@pytest.mark.parametrize("family, tolerance", [("ellipsoidal", 1.0), ("lofted", 10.0)])
def test_atlas_frame_axis_is_the_hearts_long_axis(family, tolerance):
    for index in (6, 8, 10):
        heart = make_heart(family, 0, index)
        frame = phantom_canonical_frame(heart)
        assert np.dot(frame.axes_ras[:, 2], heart.long_axis_ras) > 0  # base -> apex, not flipped
        assert _angle_deg(frame.axes_ras[:, 2], heart.long_axis_ras) < tolerance
        assert _angle_deg(frame.axes_ras[:, 0], heart.local_to_ras[:3, 0]) < tolerance  # towards the RV


def test_myocardium_moments_alone_miss_the_lofted_axis():
    """Why the cavity is used: on a lofted heart the myocardium's principal axes are far off."""
    heart = make_heart("lofted", 0, 8)
    matrix, shape = heart.bounding_grid(2.0)
    labels = heart.label_volume(matrix, shape, 0.0)
    k, j, i = np.nonzero(labels == 2)
    myocardium = apply_affine(matrix, np.stack([i, j, k], 1).astype(float))
    _, vectors = np.linalg.eigh(np.cov((myocardium - myocardium.mean(0)).T))
    best = min(_angle_deg(vectors[:, n], heart.long_axis_ras) for n in range(3))
    assert best > 15.0
