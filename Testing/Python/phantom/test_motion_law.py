"""The phantom's motion law against its own analytic truth."""

import numpy as np
import pytest

from CardiacMotionAtlasLib.phantom.heart import PhantomHeart
from CardiacMotionAtlasLib.phantom.measurements import closed_mesh_volume_ml, measure_heart
from CardiacMotionAtlasLib.phantom.parameters import SUBJECT_KINDS, sample_subject_parameters
from CardiacMotionAtlasLib.phantom.volume_curve import ContractionCurve


def test_inverse_undoes_forward_everywhere(heart):
    rng = np.random.default_rng(3)
    material = heart.to_ras(rng.uniform(-90, 90, size=(20000, 3)))
    for phase in (0.1, heart.es_phase, 0.7):
        moved = heart.positions(material, phase)
        assert np.abs(heart.material_positions(moved, phase) - material).max() < 1e-6


def test_ed_is_identity(heart):
    points = heart.to_ras(np.random.default_rng(0).uniform(-80, 80, size=(1000, 3)))
    assert np.abs(heart.positions(points, 0.0) - points).max() < 1e-9


def test_contraction_curve_shape():
    curve = ContractionCurve.for_heart_rate(65.0)
    t = np.linspace(0, 1, 2001)
    s = curve(t)
    assert s[0] == pytest.approx(0.0) and curve(1.0) == pytest.approx(0.0)
    assert t[np.argmax(s)] == pytest.approx(curve.es_phase, abs=2e-3)
    assert 0.28 <= curve.es_phase <= 0.42
    assert np.abs(np.diff(s)).max() < 0.01  # continuous
    # rapid filling refills most of the stroke volume before diastasis, the atrial kick the rest
    assert curve(curve.rapid_filling_end) < 0.35
    assert curve(curve.atrial_kick_start) > 0.1


@pytest.mark.parametrize("kind", SUBJECT_KINDS)
def test_myocardium_is_incompressible_and_volumes_are_exact(kind):
    heart = PhantomHeart(sample_subject_parameters(5, 1, kind))
    truth = heart.clinical_indices()
    vertices, faces = heart.material_surface_local("myocardium", 48, 96)
    cav_vertices, cav_faces = heart.material_surface_local("lv_cavity", 48, 96)
    ed_myo = closed_mesh_volume_ml(vertices, faces)
    for phase in np.linspace(0, 1, 9, endpoint=False):
        myo = closed_mesh_volume_ml(heart.motion.forward(vertices, phase), faces)
        assert abs(myo / ed_myo - 1) < 0.005  # the law is exactly incompressible; meshes add <0.5 %
        cavity = closed_mesh_volume_ml(heart.motion.forward(cav_vertices, phase), cav_faces)
        assert cavity == pytest.approx(float(heart.lv_volume_ml(phase)), rel=0.005)
    assert truth["LVM"] == pytest.approx(ed_myo * 1.05, rel=0.005)


def test_physiology_in_plausible_ranges():
    for index in range(3):
        heart = PhantomHeart(sample_subject_parameters(11, index, "normal"))
        m = measure_heart(heart)
        assert 90 <= m["EDV_ml"] <= 220 and 55 <= m["EF_pct"] <= 72
        assert 70 <= m["LVM_g"] <= 210
        assert 25 <= m["thickening_pct"] <= 65
        assert 9 <= m["long_shortening_pct"] <= 19
        assert 8 <= m["base_descent_mm"] <= 17
        assert 8 <= m["torsion_deg"] <= 22
        assert m["myo_drift_pct"] < 5
        assert m["ed_es_chamfer_mm"] > 2.5  # a static model must score visibly worse than a moving one


def test_abnormal_subjects_move_less():
    normal = measure_heart(PhantomHeart(sample_subject_parameters(2, 0, "normal")))
    reduced = measure_heart(PhantomHeart(sample_subject_parameters(2, 0, "reduced_ef")))
    assert reduced["EF_pct"] < 46 <= normal["EF_pct"]
    assert reduced["thickening_pct"] < normal["thickening_pct"]


def test_parameters_are_deterministic_and_round_trip():
    a = sample_subject_parameters(4, 2)
    b = sample_subject_parameters(4, 2)
    assert a == b
    assert sample_subject_parameters(4, 3) != a
    assert type(a).from_dict(a.to_dict()) == a


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match="unknown subject kind"):
        sample_subject_parameters(0, 0, "martian")
