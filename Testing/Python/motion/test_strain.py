"""Strain in the LV frame: known homogeneous deformations, and the phantom's analytic strain against the
strain of its exact DVF on a grid."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacMotionAtlasLib.analysis.strain import (
    analytic_strain,
    lv_directions,
    lv_frame_from_labels,
    strain_from_displacement,
)

AXIS = np.array([0.0, 0.0, 1.0])
CENTRE = np.array([1.0, -2.0, 3.0])


def _grid(n=(5, 9, 9), spacing=(2.0, 2.0, 4.0)):
    matrix = np.diag([*spacing, 1.0])
    matrix[:3, 3] = CENTRE - np.array(spacing) * (np.array(n[::-1]) - 1) / 2
    k, j, i = np.meshgrid(*(np.arange(s) for s in n), indexing="ij")
    points = np.stack([i, j, k], -1) * np.array(spacing) + matrix[:3, 3]
    return matrix, points


def _deformation(points, radial=0.1, longitudinal=-0.05):
    offset = points - CENTRE
    return CENTRE + offset * np.array([1 + radial, 1 + radial, 1 + longitudinal])


def test_directions_are_orthonormal():
    points = np.random.default_rng(0).normal(size=(50, 3)) * 10
    d = lv_directions(points, CENTRE, 3 * AXIS)
    gram = np.einsum("nad,nbd->nab", d, d)
    assert np.allclose(gram, np.eye(3), atol=1e-9)
    assert np.allclose(d[:, 2], AXIS)


def test_homogeneous_expansion_both_ways():
    """In-plane expansion by 10 %, axial shortening by 5 %: radial = circumferential = +10 %, longitudinal -5 %."""
    matrix, points = _grid()
    moved = _deformation(points)
    field = np.moveaxis(moved - points, -1, 0)[None]
    mask = np.zeros(points.shape[:3], bool)
    mask[1:-1, 2:-2, 2:-2] = True
    mask[:, 4, 4] = False  # on the axis the radial direction is undefined
    from_field = strain_from_displacement(np.concatenate([0 * field, field]), matrix, mask, CENTRE, AXIS)
    exact = analytic_strain(lambda p, phase: _deformation(p, 0.1 * phase / 0.5, -0.05 * phase / 0.5),
                            points[mask], [0.0, 0.5], CENTRE, AXIS)
    for name, expected in (("radial", 10.0), ("circumferential", 10.0), ("longitudinal", -5.0)):
        assert from_field[name][0] == pytest.approx(0.0, abs=1e-9)
        assert from_field[name][1] == pytest.approx(expected, abs=1e-6)
        assert exact[name][1] == pytest.approx(expected, abs=1e-6)


def test_phantom_dvf_strain_matches_analytic(motion_heart, small_cine):

    stack = small_cine.study.sax_stack(labels=True)
    heart, es = motion_heart, motion_heart.es_phase
    labels = stack.array[0]
    myo = labels == 2
    k, j, i = np.nonzero(myo)
    points = (stack.ijk_to_ras[:3, :3] @ np.stack([i, j, k]).astype(float)).T + stack.ijk_to_ras[:3, 3]
    exact = analytic_strain(heart.positions, points, [es], heart.centre_ras, heart.long_axis_ras)
    field = heart.displacement_field(stack.ijk_to_ras, stack.shape_zyx, 0.0, es, heart_only=False).vectors
    centre, axis = lv_frame_from_labels(labels, stack.ijk_to_ras)
    assert abs(np.dot(axis, heart.long_axis_ras)) > 0.95  # the SAX normal is the long axis
    estimated = strain_from_displacement(field[None], stack.ijk_to_ras, myo, centre, axis)
    assert exact["radial"][0] > 10 and exact["circumferential"][0] < -5 and exact["longitudinal"][0] < -3
    for name in ("radial", "circumferential"):  # coarse grid (5 mm pixels): a few % strain
        assert estimated[name][0] == pytest.approx(exact[name][0], abs=0.35 * abs(exact[name][0]) + 2.0)
    assert np.sign(estimated["circumferential"][0]) == np.sign(exact["circumferential"][0])
