"""Strain in the LV frame from the TRUE displacement field of both phantom families against their analytic
strain (finite differences of ``heart.positions``): right signs, and MAE <= 5 % radial, <= 3 %
circumferential and longitudinal, on a 2.5 mm SAX grid (8 mm slices) aligned with the LV's long axis."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacMotionAtlasLib.analysis.strain import (
    STRAIN_NAMES,
    analytic_strain,
    lv_frame_from_labels,
    strain_from_displacement,
)
from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError
from CardiacMotionAtlasLib.geometry.affine import apply_affine
from CardiacMotionAtlasLib.phantom.families import FAMILY_NAMES, make_heart

TOLERANCE = {"radial": 5.0, "circumferential": 3.0, "longitudinal": 3.0}


def sax_grid(heart, pixel_mm: float = 2.5, slice_mm: float = 8.0, half_width_mm: float = 55.0,
             half_length_mm: float = 60.0):
    """IJK->RAS of a SAX grid (k along the heart's base->apex axis) centred on its contraction centre, and
    its (z, y, x) shape."""
    axis = heart.long_axis_ras
    x = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(axis, x)
    n_in, n_z = int(2 * half_width_mm / pixel_mm) + 1, int(2 * half_length_mm / slice_mm) + 1
    matrix = np.eye(4)
    matrix[:3, :3] = np.stack([x * pixel_mm, y * pixel_mm, axis * slice_mm], 1)
    matrix[:3, 3] = heart.centre_ras - matrix[:3, :3] @ (np.array([n_in, n_in, n_z]) - 1) / 2.0
    return matrix, (n_z, n_in, n_in)


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def family_case(request):
    heart = make_heart(request.param, 0, 1, kind="normal")
    matrix, shape = sax_grid(heart)
    labels = heart.label_volume(matrix, shape, 0.0)
    phases = np.array([0.0, 0.5 * heart.es_phase, heart.es_phase, 0.5 * (1 + heart.es_phase), 0.9])
    fields = np.stack([heart.displacement_field(matrix, shape, 0.0, p, heart_only=False).vectors for p in phases])
    myo = labels == 2
    k, j, i = np.nonzero(myo)
    points = apply_affine(matrix, np.stack([i, j, k], 1).astype(float))
    exact = analytic_strain(heart.positions, points, phases, heart.centre_ras, heart.long_axis_ras)
    centre, axis = lv_frame_from_labels(labels, matrix)
    estimated = strain_from_displacement(fields, matrix, myo, centre, axis)
    return request.param, heart, exact, estimated


def test_true_field_strain_has_the_right_signs(family_case):
    family, heart, exact, estimated = family_case
    es = 2
    for strain in (exact, estimated):
        assert strain["radial"][es] > 5.0, family  # wall thickening
        assert strain["circumferential"][es] < -3.0, family  # circumferential shortening
        assert strain["longitudinal"][es] < -3.0, family  # base descends towards the apex
        for name in STRAIN_NAMES:
            assert strain[name][0] == pytest.approx(0.0, abs=0.1)  # ED is the reference
            assert np.all(np.sign(strain[name][1:]) == np.sign(strain[name][es])), (family, name, strain[name])


def test_true_field_strain_matches_analytic(family_case):
    family, heart, exact, estimated = family_case
    for name, tolerance in TOLERANCE.items():
        mae = float(np.mean(np.abs(estimated[name][1:] - exact[name][1:])))
        assert mae <= tolerance, (family, name, mae, estimated[name], exact[name])


def test_shear_does_not_read_as_lengthening():
    """In-plane displacement varying from slice to slice (shear), no through-plane motion: the normal
    (default) measure gives 0 % longitudinal strain; the fibre stretch reads it as lengthening (+s^2/2)."""
    matrix = np.diag([2.0, 2.0, 8.0, 1.0])
    shape = (7, 15, 15)
    k = np.arange(shape[0], dtype=float)[:, None, None] * np.ones(shape)
    field = np.zeros((1, 3, *shape))
    field[0, 0] = 0.2 * 8.0 * k  # x displacement grows 0.2 mm per mm along z: shear 0.2
    mask = np.zeros(shape, bool)
    mask[2:-2, 3:-3, 3:-3] = True
    centre, axis = np.array([14.0, 14.0, 24.0]), np.array([0.0, 0.0, 1.0])
    normal = strain_from_displacement(field, matrix, mask, centre, axis)
    stretch = strain_from_displacement(field, matrix, mask, centre, axis, measure="stretch")
    assert normal["longitudinal"][0] == pytest.approx(0.0, abs=1e-9)
    assert stretch["longitudinal"][0] == pytest.approx(100 * (np.sqrt(1 + 0.2 ** 2) - 1), rel=1e-6)
    with pytest.raises(CardiacMotionAtlasError, match="strain measure"):
        strain_from_displacement(field, matrix, mask, centre, axis, measure="green")
