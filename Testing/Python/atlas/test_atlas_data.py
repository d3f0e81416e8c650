"""Canonical frame, SDF samples and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacMotionAtlasLib.atlas.errors import AtlasDataError
from CardiacMotionAtlasLib.atlas.frame import CanonicalFrame, canonical_frame_from_labels, canonical_frame_from_mesh
from CardiacMotionAtlasLib.atlas.sampling import subject_from_labels, subject_from_meshes
from CardiacMotionAtlasLib.data.image_sequence import ImageSequence
from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError


@pytest.fixture(scope="module")
def label_maps(phantom_hearts):
    heart = phantom_hearts[0]
    matrix, shape = heart.bounding_grid(3.0)
    phases = np.array([0.0, heart.es_phase])
    return heart, ImageSequence(heart.label_volumes(matrix, shape, phases), matrix, phases, name="tiny_labels")


def _angle_deg(a, b):
    return float(np.degrees(np.arccos(np.clip(abs(np.dot(a, b)), -1.0, 1.0))))


def test_canonical_frame_from_labels_finds_the_lv_axis_and_rv(label_maps):
    heart, labels = label_maps
    frame = canonical_frame_from_labels(labels)
    assert _angle_deg(frame.axes_ras[:, 2], heart.long_axis_ras) < 3.0
    assert frame.axes_ras[:, 2] @ heart.long_axis_ras > 0, "z must point base -> apex"
    assert frame.axes_ras[:, 0] @ heart.local_to_ras[:3, 0] > 0.95, "x must point towards the RV"
    assert np.linalg.det(frame.axes_ras) == pytest.approx(1.0)
    points = np.random.default_rng(0).normal(size=(20, 3)) * 30
    assert np.allclose(frame.to_ras(frame.to_canonical(points)), points)
    assert CanonicalFrame.from_dict(frame.to_dict()).to_dict() == frame.to_dict()


def test_canonical_frame_from_mesh_agrees_with_labels(label_maps):
    heart, labels = label_maps
    vertices, faces = heart.surface("myocardium", 0.0)
    rv_point = heart.to_ras(np.array([60.0, 0.0, 0.0]))
    frame = canonical_frame_from_mesh(vertices, faces, rv_point)
    assert _angle_deg(frame.axes_ras[:, 2], heart.long_axis_ras) < 3.0
    assert frame.axes_ras[:, 2] @ heart.long_axis_ras > 0
    with pytest.raises(AtlasDataError, match="RV"):
        canonical_frame_from_mesh(vertices, faces, None)


def test_label_map_sdf_samples_match_the_exact_distance(label_maps):
    heart, labels = label_maps
    from CardiacMotionAtlasLib.atlas.config import SamplingConfig

    data = subject_from_labels(labels, SamplingConfig(samples_per_frame=400), seed=0)
    assert data.n_frames == 2 and data.es_phase == pytest.approx(heart.es_phase)
    points = data.frame.local_to_ras_points(data.points_mm[0])
    exact = heart.myocardium_sdf(points, 0.0)
    near = np.abs(exact) < 10
    assert np.median(np.abs(data.sdf_mm[0][near] - exact[near])) < 1.5  # 3 mm voxels
    assert np.mean(np.sign(data.sdf_mm[0][near]) == np.sign(exact[near])) > 0.85


def test_empty_label_map_is_refused(label_maps):
    _, labels = label_maps
    empty = ImageSequence(np.zeros_like(labels.array), labels.ijk_to_ras, labels.phases, name="empty_labels")
    with pytest.raises(AtlasDataError, match="empty_labels.*no LV myocardium") as error:
        subject_from_labels(empty)
    assert isinstance(error.value, CardiacMotionAtlasError)


def test_nan_label_map_is_refused(label_maps):
    _, labels = label_maps
    array = labels.array.astype(float)
    array[0, 3, 3, 3] = np.nan
    with pytest.raises(AtlasDataError, match="NaN"):
        subject_from_labels(ImageSequence(array, labels.ijk_to_ras, labels.phases, name="nan_labels"))


def test_wrong_frame_count_is_refused(label_maps, phantom_hearts):
    _, labels = label_maps
    with pytest.raises(AtlasDataError, match="wrong frame count"):
        subject_from_labels(labels, phases=[0.0, 0.2, 0.4])
    mesh = phantom_hearts[0].mesh_sequence("myocardium", [0.0, 0.3])
    frame = canonical_frame_from_labels(labels)
    with pytest.raises(AtlasDataError, match="wrong frame count"):
        subject_from_meshes(mesh, frame, phases=[0.0])


def test_nan_mesh_and_missing_frames_are_refused(label_maps, phantom_hearts, tiny_subjects):
    _, labels = label_maps
    frame = canonical_frame_from_labels(labels)
    mesh = phantom_hearts[0].mesh_sequence("myocardium", [0.0])
    mesh.vertices[0, 5] = np.nan
    with pytest.raises(AtlasDataError, match="NaN"):
        subject_from_meshes(mesh, frame)
    one_frame = tiny_subjects[0].select([0])
    with pytest.raises(AtlasDataError, match="at least 2 frames"):
        one_frame.observed("all")
    with pytest.raises(AtlasDataError, match="no frame at the ES phase"):
        tiny_subjects[0].observed("ed_es")
    with pytest.raises(AtlasDataError, match="unknown fitting setting"):
        tiny_subjects[0].observed("es")


def test_nan_samples_are_refused(tiny_subjects):
    from dataclasses import replace

    sdf = tiny_subjects[0].sdf_mm.copy()
    sdf[0, 0] = np.nan
    with pytest.raises(AtlasDataError, match="NaN"):
        replace(tiny_subjects[0], sdf_mm=sdf)
