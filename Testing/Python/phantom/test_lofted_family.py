"""The second phantom family (``lofted``) against its own analytic truth, and the family registry."""

import json

import numpy as np
import pytest

from CardiacMotionAtlasLib.phantom.families import FAMILY_NAMES, family_of_subject, make_heart
from CardiacMotionAtlasLib.phantom.lofted import LoftedHeart
from CardiacMotionAtlasLib.phantom.lofted_motion import LoftedCurve
from CardiacMotionAtlasLib.phantom.lofted_parameters import LoftedParameters, sample_lofted_parameters
from CardiacMotionAtlasLib.phantom.measurements import closed_mesh_volume_ml, measure_heart
from CardiacMotionAtlasLib.phantom.parameters import SUBJECT_KINDS
from CardiacMotionAtlasLib.phantom.tissues import Tissue


@pytest.fixture(scope="module")
def lofted():
    return LoftedHeart(sample_lofted_parameters(3, 2, "normal"))


def test_inverse_undoes_forward_everywhere(lofted):
    rng = np.random.default_rng(3)
    material = lofted.to_ras(rng.uniform(-110, 110, size=(20000, 3)))
    for phase in (0.1, lofted.es_phase, 0.7):
        moved = lofted.positions(material, phase)
        assert np.abs(lofted.material_positions(moved, phase) - material).max() < 1e-6


def test_ed_is_identity(lofted):
    points = lofted.to_ras(np.random.default_rng(0).uniform(-90, 90, size=(2000, 3)))
    assert np.abs(lofted.positions(points, 0.0) - points).max() < 1e-9


def test_motion_is_locally_incompressible_in_the_myocardium(lofted):
    """Finite-difference Jacobian determinant of the ED -> ES map at myocardial material points."""
    rng = np.random.default_rng(1)
    candidates = lofted.to_local(lofted.to_ras(rng.uniform(-60, 60, size=(40000, 3))))
    myo = candidates[lofted.material_tissue_local(candidates) == Tissue.LV_MYOCARDIUM][:300]
    assert len(myo) > 100
    h = 1e-3
    columns = [(lofted.motion.forward(myo + h * e, lofted.es_phase) - lofted.motion.forward(myo - h * e, lofted.es_phase))
               / (2 * h) for e in np.eye(3)]
    det = np.linalg.det(np.stack(columns, axis=-1))
    assert np.abs(det - 1.0).max() < 1e-3
    # and the blood pool does change volume (the law is not incompressible everywhere)
    blood = candidates[lofted.material_tissue_local(candidates) == Tissue.LV_BLOOD][:50]
    columns = [(lofted.motion.forward(blood + h * e, lofted.es_phase) - lofted.motion.forward(blood - h * e, lofted.es_phase))
               / (2 * h) for e in np.eye(3)]
    assert np.linalg.det(np.stack(columns, axis=-1)).mean() < 0.8


@pytest.mark.parametrize("kind", SUBJECT_KINDS)
def test_myocardium_is_incompressible_and_volumes_are_exact(kind):
    heart = LoftedHeart(sample_lofted_parameters(5, 1, kind))
    truth = heart.clinical_indices()
    vertices, faces = heart.material_surface_local("myocardium", 48, 96)
    cav_vertices, cav_faces = heart.material_surface_local("lv_cavity", 48, 96)
    ed_myo = closed_mesh_volume_ml(vertices, faces)
    for phase in np.linspace(0, 1, 7, endpoint=False):
        myo = closed_mesh_volume_ml(heart.motion.forward(vertices, phase), faces)
        assert abs(myo / ed_myo - 1) < 0.005
        cavity = closed_mesh_volume_ml(heart.motion.forward(cav_vertices, phase), cav_faces)
        assert cavity == pytest.approx(float(heart.lv_volume_ml(phase)), rel=0.005)
    assert truth["LVM"] == pytest.approx(ed_myo * 1.05, rel=0.005)
    assert truth["LVEF"] == pytest.approx(100 * heart.params.lv_ef, rel=1e-6)
    assert truth["LVEDV"] == pytest.approx(heart.params.lv_edv_ml, rel=1e-3)
    assert truth["RVEDV"] == pytest.approx(heart.params.rv_edv_ml, rel=1e-3)


def test_label_maps_hold_the_exact_volumes(lofted):
    matrix, shape = lofted.bounding_grid(1.5)
    voxel_ml = 1.5**3 / 1000
    truth = lofted.clinical_indices()
    labels = lofted.label_volumes(matrix, shape, [0.0, lofted.es_phase])
    for frame, lv_key, rv_key in ((0, "LVEDV", "RVEDV"), (1, "LVESV", "RVESV")):
        assert (labels[frame] == 1).sum() * voxel_ml == pytest.approx(truth[lv_key], rel=0.03)
        assert (labels[frame] == 3).sum() * voxel_ml == pytest.approx(truth[rv_key], rel=0.03)
        assert (labels[frame] == 2).sum() * voxel_ml * 1.05 == pytest.approx(truth["LVM"], rel=0.03)
    # the grid holds the whole heart: no label on its faces
    for frame in labels:
        faces = [frame[0], frame[-1], frame[:, 0], frame[:, -1], frame[:, :, 0], frame[:, :, -1]]
        assert all(face.max() == 0 for face in faces)


def test_flow_field_is_exact(lofted):
    matrix, shape = lofted.bounding_grid(4.0)
    field = lofted.displacement_field(matrix, shape, 0.0, lofted.es_phase)
    labels = lofted.label_volume(matrix, shape, 0.0)
    from CardiacMotionAtlasLib.phantom.heart_base import grid_points_ras

    points = grid_points_ras(matrix, shape)[labels == 2]
    moved = points + field.vectors[:, labels == 2].T
    assert np.abs(lofted.material_positions(moved, lofted.es_phase) - points).max() < 1e-6
    assert np.linalg.norm(field.vectors[:, labels == 2], axis=0).mean() > 3.0  # the myocardium moves


def test_meshes_are_closed_with_fixed_connectivity_and_follow_the_material(lofted):
    other = make_heart("lofted", 9, 4)
    for name in ("myocardium", "lv_cavity", "epicardium"):
        vertices, faces = lofted.material_surface_local(name, 20, 40)
        assert other.material_surface_local(name, 20, 40)[1].tolist() == faces.tolist()
        edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
        _, counts = np.unique(edges, axis=0, return_counts=True)
        assert np.all(counts == 2)  # closed two-manifold
        assert closed_mesh_volume_ml(vertices, faces) > 0  # outward faces
    sequence = lofted.mesh_sequence("myocardium", [0.0, 0.2, lofted.es_phase], n_rings=20, n_around=40)
    ed_vertices = lofted.to_ras(lofted.material_surface_local("myocardium", 20, 40)[0])
    assert np.allclose(sequence.vertices[2], lofted.positions(ed_vertices, lofted.es_phase))


def test_volume_curve_is_smooth_periodic_and_peaks_at_es():
    for index in range(6):
        params = sample_lofted_parameters(0, index)
        curve = LoftedCurve(params.curve_phases, params.curve_values)
        t = np.linspace(0, 1, 4001)
        s = curve(t)
        assert s[0] == pytest.approx(0.0, abs=1e-12) and s[-1] == pytest.approx(0.0, abs=1e-12)
        assert t[np.argmax(s)] == pytest.approx(curve.es_phase, abs=1e-3) and s.max() == pytest.approx(1.0)
        assert 0.28 <= curve.es_phase <= 0.46
        slope = np.diff(s) / np.diff(t)
        assert np.abs(np.diff(slope)).max() < 0.5  # C1: no jump in slope, also across ED
        assert abs(slope[0] - slope[-1]) < 0.05


def test_physiology_in_plausible_ranges():
    for index in range(3):
        m = measure_heart(LoftedHeart(sample_lofted_parameters(11, index, "normal")))
        assert 90 <= m["EDV_ml"] <= 220 and 55 <= m["EF_pct"] <= 72
        assert 70 <= m["LVM_g"] <= 210
        assert 25 <= m["thickening_pct"] <= 65
        assert 9 <= m["long_shortening_pct"] <= 19
        assert 7 <= m["base_descent_mm"] <= 17
        assert 6 <= m["torsion_deg"] <= 22
        assert 4 <= m["endo_inward_mm"] <= 12
        assert m["myo_drift_pct"] < 0.5


def test_anatomy_differs_in_kind_from_the_ellipsoidal_family(lofted):
    """Non-circular cross-sections, a base that is not perpendicular to the axis, a bent axis."""
    s = lofted.shape
    phi = np.linspace(-np.pi, np.pi, 360, endpoint=False)
    rho = s.rho_endo(phi, np.full_like(phi, 0.4 * s.cavity_length))
    assert rho.std() / rho.mean() > 0.01
    base = lofted.epicardial_ring_local(0.0)
    assert base[:, 2].max() - base[:, 2].min() > 2 * np.tan(np.deg2rad(5.0)) * s.radius
    sampled = [sample_lofted_parameters(0, i) for i in range(40)]
    es = np.array([p.es_phase for p in sampled])
    rate = np.array([p.heart_rate_bpm for p in sampled])
    assert abs(np.corrcoef(es, rate)[0, 1]) < 0.5  # ES timing does not follow the heart rate


def test_parameters_round_trip_and_are_deterministic():
    params = sample_lofted_parameters(2, 7)
    again = LoftedParameters.from_dict(json.loads(json.dumps(params.to_dict())))
    assert again == params
    assert sample_lofted_parameters(2, 8) != params
    assert LoftedHeart(again).clinical_indices() == pytest.approx(LoftedHeart(params).clinical_indices())


def test_family_registry():
    assert family_of_subject("mixed", 0) != family_of_subject("mixed", 1)
    assert {family_of_subject("mixed", i) for i in range(4)} == set(FAMILY_NAMES)
    assert make_heart("lofted", 0, 3).subject_id == "lofted003"
    assert make_heart("ellipsoidal", 0, 3).subject_id == "phantom003"
    with pytest.raises(ValueError, match="unknown phantom family 'other'"):
        make_heart("other", 0, 0)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_phenotype_of_every_family_is_plausible(family):
    from CardiacMotionAtlasLib.phantom.plausibility import plausibility_rows

    rows = plausibility_rows([make_heart(family, 4, i, kind) for i, kind in enumerate(SUBJECT_KINDS)])
    assert [row["out_of_range"] for row in rows] == [""] * len(SUBJECT_KINDS), rows


def test_plausibility_flags_an_implausible_heart():
    from CardiacMotionAtlasLib.phantom.plausibility import plausibility_rows

    params = sample_lofted_parameters(0, 0, "normal")
    params.lv_ef = 0.9  # a heart that empties 90 % of its volume is not a normal adult heart
    (row,) = plausibility_rows([LoftedHeart(params)])
    assert "EF_pct" in row["out_of_range"].split()
