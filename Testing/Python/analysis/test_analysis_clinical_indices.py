"""Clinical indices from label maps and closed meshes of spheres/ellipsoids vs analytic volumes."""

import numpy as np
import pytest
from vtkmodules.vtkFiltersSources import vtkSphereSource

from CardiacMotionAtlasLib.analysis.clinical_indices import (
    MYOCARDIUM_DENSITY_G_PER_ML,
    ClinicalIndices,
    clinical_indices_from_labels,
    clinical_indices_from_meshes,
    clinical_indices_from_volumes,
    ejection_fraction,
)
from CardiacMotionAtlasLib.data import ImageSequence, MeshSequence
from CardiacMotionAtlasLib.geometry.affine import make_ijk_to_ras, rotation_matrix
from CardiacMotionAtlasLib.metrics._vtk_mesh import from_polydata

LV_RADII = np.array([25.0, 23.0, 20.0, 22.0])  # mm per frame; ED = 0, ES = 2
RV_AXES = np.array([[22.0, 20.0, 30.0], [21.0, 19.0, 29.0], [18.0, 16.0, 26.0], [20.0, 18.0, 28.0]])
RV_CENTRE = np.array([58.0, 0.0, 0.0])
MYO_OUTER = 32.0  # mm: LV wall between the blood pool radius and 32 mm


def ball_ml(radius):
    return 4.0 / 3.0 * np.pi * radius**3 / 1000.0


def ellipsoid_ml(axes):
    return 4.0 / 3.0 * np.pi * np.prod(axes) / 1000.0


@pytest.fixture(scope="module")
def label_sequence():
    # 1 mm voxels on an oblique grid (the voxel volume must come from the matrix)
    rotation = rotation_matrix((1, 0, 0), 0.2)
    shape_xyz = np.array([128, 80, 80])
    origin = np.array([24.0, 0.0, 0.0]) - rotation @ ((shape_xyz - 1) / 2.0)  # grid centred on the heart
    matrix = make_ijk_to_ras(origin, rotation, (1.0, 1.0, 1.0))
    sequence = ImageSequence(np.zeros((4,) + tuple(shape_xyz[::-1]), dtype=np.uint8), matrix, name="phantom")
    centres = sequence.voxel_centres_ras()
    frames = []
    for radius, axes in zip(LV_RADII, RV_AXES):
        r_lv = np.linalg.norm(centres, axis=-1)
        r_rv = np.linalg.norm((centres - RV_CENTRE) / axes, axis=-1)
        labels = np.zeros(r_lv.shape, dtype=np.uint8)
        labels[r_lv <= MYO_OUTER] = 2
        labels[r_lv <= radius] = 1
        labels[r_rv <= 1.0] = 3
        frames.append(labels)
    labels = np.stack(frames)
    border = np.ones(labels.shape[1:], dtype=bool)
    border[1:-1, 1:-1, 1:-1] = False
    assert not labels[:, border].any()  # every structure lies fully inside the grid
    return ImageSequence(labels, matrix, name="phantom")


def test_label_volumes_match_analytic_within_two_percent(label_sequence):
    indices = clinical_indices_from_labels(label_sequence)
    assert indices.LVEDV == pytest.approx(ball_ml(25.0), rel=0.02)
    assert indices.LVESV == pytest.approx(ball_ml(20.0), rel=0.02)
    assert indices.RVEDV == pytest.approx(ellipsoid_ml(RV_AXES[0]), rel=0.02)
    assert indices.RVESV == pytest.approx(ellipsoid_ml(RV_AXES[2]), rel=0.02)
    assert indices.LVSV == pytest.approx(indices.LVEDV - indices.LVESV)
    expected_ef = 100 * (1 - (20.0 / 25.0) ** 3)
    assert indices.LVEF == pytest.approx(expected_ef, abs=1.0)
    myo_ml = ball_ml(MYO_OUTER) - ball_ml(25.0)
    assert indices.LVM == pytest.approx(myo_ml * MYOCARDIUM_DENSITY_G_PER_ML, rel=0.02)


def test_given_frames_override_max_min(label_sequence):
    indices = clinical_indices_from_labels(label_sequence, ed_frame=1, es_frame=3)
    assert indices.LVEDV == pytest.approx(ball_ml(23.0), rel=0.02)
    assert indices.LVESV == pytest.approx(ball_ml(22.0), rel=0.03)
    assert indices.RVEDV == pytest.approx(ellipsoid_ml(RV_AXES[1]), rel=0.02)
    with pytest.raises(ValueError):
        clinical_indices_from_labels(label_sequence, ed_frame=4)


def test_missing_structures(label_sequence):
    only_lv = ImageSequence(np.where(label_sequence.array == 1, 1, 0), label_sequence.ijk_to_ras)
    indices = clinical_indices_from_labels(only_lv)
    assert np.isfinite(indices.LVEF)
    assert np.isnan(indices.RVEDV) and np.isnan(indices.RVEF) and np.isnan(indices.LVM)
    with pytest.raises(ValueError):
        clinical_indices_from_labels(ImageSequence(np.zeros((2, 4, 4, 4), np.uint8), np.eye(4)))


def test_ef_from_known_volumes():
    indices = clinical_indices_from_volumes([150.0, 120.0, 60.0, 90.0], rv_ml=[160.0, 130.0, 80.0, 100.0],
                                            myocardium_ml=[100.0, 101.0, 102.0, 101.0])
    assert (indices.LVEDV, indices.LVESV, indices.LVSV, indices.LVEF) == (150.0, 60.0, 90.0, 60.0)
    assert (indices.RVEDV, indices.RVESV, indices.RVSV, indices.RVEF) == (160.0, 80.0, 80.0, 50.0)
    assert indices.LVM == pytest.approx(105.0)
    assert ejection_fraction(100.0, 45.0) == pytest.approx(55.0)
    assert np.isnan(ejection_fraction(0.0, 0.0))
    assert list(indices.as_dict()) == ["LVEDV", "LVESV", "LVSV", "LVEF", "RVEDV", "RVESV", "RVSV", "RVEF", "LVM"]
    assert np.isnan(ClinicalIndices().as_dict()["LVEF"])
    with pytest.raises(ValueError):
        clinical_indices_from_volumes([1.0, 2.0], rv_ml=[1.0, 2.0, 3.0])


def unit_sphere(resolution=64):
    source = vtkSphereSource()
    source.SetRadius(1.0)
    source.SetThetaResolution(resolution)
    source.SetPhiResolution(resolution)
    source.Update()
    return from_polydata(source.GetOutput())


def test_indices_from_meshes():
    vertices, faces = unit_sphere()
    lv = MeshSequence(vertices[None] * LV_RADII[:, None, None], faces, name="LV")
    rv = MeshSequence(vertices[None] * RV_AXES[:, None, :] + RV_CENTRE, faces, name="RV")
    # myocardium wall: outer sphere outward, inner sphere (the LV cavity) with reversed winding
    n = len(vertices)
    outer = np.broadcast_to(vertices * MYO_OUTER, (len(LV_RADII), n, 3))
    wall_vertices = np.concatenate([outer, vertices[None] * LV_RADII[:, None, None]], axis=1)
    wall = MeshSequence(wall_vertices, np.concatenate([faces, faces[:, ::-1] + n]), name="myo")
    indices = clinical_indices_from_meshes(lv, rv, wall)
    # polyhedral approximation of a sphere at this resolution loses < 0.5 % of the volume
    assert indices.LVEDV == pytest.approx(ball_ml(25.0), rel=0.005)
    assert indices.LVESV == pytest.approx(ball_ml(20.0), rel=0.005)
    assert indices.LVEDV < ball_ml(25.0)  # inscribed polyhedron
    assert indices.RVEDV == pytest.approx(ellipsoid_ml(RV_AXES[0]), rel=0.005)
    assert indices.LVEF == pytest.approx(100 * (1 - 0.8**3), abs=0.1)
    myo_ml = ball_ml(MYO_OUTER) - ball_ml(25.0)
    assert indices.LVM == pytest.approx(myo_ml * MYOCARDIUM_DENSITY_G_PER_ML, rel=0.005)


def test_open_or_misoriented_meshes_are_rejected():
    vertices, faces = unit_sphere(16)
    with pytest.raises(ValueError, match="not closed"):
        clinical_indices_from_meshes(MeshSequence(vertices * 20, faces[1:]))
    flipped = faces.copy()
    flipped[3] = flipped[3, ::-1]
    with pytest.raises(ValueError, match="oriented"):
        clinical_indices_from_meshes(MeshSequence(vertices * 20, flipped))
