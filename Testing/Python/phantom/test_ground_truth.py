"""Labels, displacement fields, meshes and SDF of the phantom against its analytic model."""

import numpy as np
import pytest

from CardiacMotionAtlasLib.geometry.affine import apply_affine
from CardiacMotionAtlasLib.phantom.measurements import closed_mesh_volume_ml


def _mid_wall_material_points(heart, n=400, seed=0):
    """ED RAS positions of material points in the middle of the LV wall (away from every kink)."""
    s = heart.shape
    rng = np.random.default_rng(seed)
    eta = rng.uniform(0.3, np.arccos(s.z_base / s.c_endo) - 0.15, n)
    phi = rng.uniform(0, 2 * np.pi, n)
    a, c = 0.5 * (s.a_endo + s.a_epi), 0.5 * (s.c_endo + s.c_epi)
    local = np.stack([a * np.sin(eta) * np.cos(phi), a * np.sin(eta) * np.sin(phi), c * np.cos(eta)], -1)
    return heart.to_ras(local)


@pytest.mark.parametrize("phase_name", ["mid_systole", "ES", "diastasis"])
def test_displacement_field_carries_material_points(heart, phase_name):
    phase = {"mid_systole": 0.15, "ES": heart.es_phase, "diastasis": 0.7}[phase_name]
    material = _mid_wall_material_points(heart)
    lo, hi = material.min(0) - 3, material.max(0) + 3
    matrix = np.diag([1.0, 1.0, 1.0, 1.0])
    matrix[:3, 3] = lo
    shape = tuple(int(v) for v in np.ceil(hi - lo)[::-1] + 1)
    field = heart.displacement_field(matrix, shape, 0.0, phase)
    carried = material + field.sample(material)
    error = np.linalg.norm(carried - heart.positions(material, phase), axis=-1)
    assert error.max() < 0.1
    # and the field is not trivially zero
    assert np.linalg.norm(field.sample(material), axis=-1).mean() > 0.5


def test_displacement_field_between_any_phases_composes(heart):
    material = _mid_wall_material_points(heart, 50)
    at_es = heart.positions(material, heart.es_phase)
    matrix = np.eye(4)
    matrix[:3, 3] = at_es.min(0) - 3
    shape = tuple(int(v) for v in np.ceil(at_es.max(0) - at_es.min(0) + 6)[::-1] + 1)
    field = heart.displacement_field(matrix, shape, heart.es_phase, 0.0)  # ES -> ED
    assert np.linalg.norm(at_es + field.sample(at_es) - material, axis=-1).max() < 0.1


def test_label_map_volumes_match_analytic_volumes(heart):
    matrix, shape = heart.bounding_grid(1.25)
    voxel_ml = 1.25**3 / 1000
    truth = heart.clinical_indices()
    for phase, lv_key, rv_key in ((0.0, "LVEDV", "RVEDV"), (heart.es_phase, "LVESV", "RVESV")):
        labels = heart.label_volume(matrix, shape, phase)
        assert (labels == 1).sum() * voxel_ml == pytest.approx(truth[lv_key], rel=0.02)
        assert (labels == 3).sum() * voxel_ml == pytest.approx(truth[rv_key], rel=0.02)
        assert (labels == 2).sum() * voxel_ml * 1.05 == pytest.approx(truth["LVM"], rel=0.02)


def test_labels_move_with_the_displacement_field(heart):
    matrix, shape = heart.bounding_grid(2.0)
    es_labels = heart.label_volume(matrix, shape, heart.es_phase)
    field = heart.displacement_field(matrix, shape, heart.es_phase, 0.0)
    nz, ny, nx = shape
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    points = apply_affine(matrix, np.stack([i, j, k], -1).astype(float))
    moved = points + np.moveaxis(field.vectors, 0, -1)
    heart_voxels = es_labels > 0
    assert np.mean(heart.labels(moved[heart_voxels], 0.0) == es_labels[heart_voxels]) > 0.999


def test_meshes_are_closed_with_shared_connectivity(heart):
    from CardiacMotionAtlasLib.metrics.topology import mesh_topology

    sequence = heart.mesh_sequence("myocardium", [0.0, 0.2, heart.es_phase])
    topology = mesh_topology((sequence.vertices[0], sequence.faces))
    assert topology.is_closed and topology.is_manifold and topology.is_consistently_oriented
    assert topology.euler_characteristic == 2 and topology.n_components == 1
    # the same vertex is the same material point: ED vertices pulled back from ES are the ED vertices
    back = heart.material_positions(sequence.vertices[2], heart.es_phase)
    assert np.abs(back - sequence.vertices[0]).max() < 1e-6
    assert sequence.point_data["displacement_mm"][2].mean() > 3.0
    for name in ("lv_cavity", "epicardium"):
        v, f = heart.surface(name, 0.3)
        assert closed_mesh_volume_ml(v, f) > 0  # outward orientation


def test_myocardium_sdf_sign_and_scale(heart):
    s = heart.shape
    cavity_centre = heart.to_ras(np.array([[0.0, 0.0, 0.5 * (s.z_base + s.c_endo)]]))
    z = 0.0
    mid_wall = heart.to_ras(np.array([[0.5 * (s.a_endo + s.a_epi), 0.0, z]]))
    outside = heart.to_ras(np.array([[s.a_epi + 5.0, 0.0, z]]))
    sdf = heart.myocardium_sdf(np.concatenate([cavity_centre, mid_wall, outside]), 0.0)
    assert sdf[0] > 10
    assert sdf[1] == pytest.approx(-0.5 * (s.a_epi - s.a_endo), abs=0.3)
    assert sdf[2] == pytest.approx(5.0, abs=0.3)
    vertices, _ = heart.surface("myocardium", heart.es_phase)
    assert np.abs(heart.myocardium_sdf(vertices[::50], heart.es_phase)).max() < 0.02  # VTK stores float32 points
