"""CMR and CT simulators against the analytic phantom."""

import numpy as np
import pytest

from CardiacMotionAtlasLib.geometry.affine import apply_affine
from CardiacMotionAtlasLib.phantom.cmr import CMRConfig, planned_slices
from CardiacMotionAtlasLib.phantom.ct import CTConfig, simulate_ct


def _pixel_points(ijk_to_ras, n):
    jj, ii = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return apply_affine(ijk_to_ras, np.stack([ii, jj, np.zeros_like(ii)], -1).astype(float))


def test_slice_labels_match_analytic_labels_at_true_plane(heart, tiny_cine):
    study, truths = tiny_cine.study, tiny_cine.truth
    n = CMRConfig.tiny().matrix
    checked = 0
    for cine_slice, truth in zip(study.slices, truths):
        true_points = _pixel_points(truth.true_ijk_to_ras, n)
        nominal_points = _pixel_points(cine_slice.image.ijk_to_ras, n)
        for frame in cine_slice.labelled_frames:
            expected = heart.labels(true_points, cine_slice.image.phases[frame])
            assert np.array_equal(cine_slice.labels.array[frame, 0], expected)
            checked += 1
        # the header geometry is the nominal one, and the misalignment is real
        assert np.allclose(cine_slice.image.ijk_to_ras, truth.nominal_ijk_to_ras)
        assert np.linalg.norm(true_points - nominal_points, axis=-1).mean() > 0.05
    assert checked > 8


def test_sax_stack_geometry(heart, tiny_cine):
    sax = tiny_cine.study.sax
    assert 8 <= len(sax) <= 13
    normals = np.array([s.normal for s in sax])
    assert np.allclose(np.abs(normals @ heart.long_axis_ras), 1.0)
    centres = np.array([s.image.ijk_to_ras[:3, 3] for s in sax])
    steps = np.diff(centres @ heart.long_axis_ras)
    assert np.allclose(steps, 10.0)  # base -> apex, 10 mm apart
    assert all(s.image.spacing[2] == pytest.approx(8.0) for s in sax)
    lax = tiny_cine.study.lax
    assert sorted(s.view for s in lax) == ["2CH", "3CH", "4CH"]
    assert all(len(s.labelled_frames) == 2 for s in lax)


def test_misalignment_and_scaling_within_protocol(tiny_cine):
    config = CMRConfig.tiny()
    for truth in tiny_cine.truth:
        rotation = truth.misalignment[:3, :3]
        angle = np.degrees(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
        assert angle <= 2.5 * config.misalignment_deg + 1e-6
        assert config.intensity_scale_range[0] <= truth.intensity_scale <= config.intensity_scale_range[1]


def test_bssfp_contrast_and_scaling(tiny_cine):
    """Blood is brighter than myocardium in every slice, and the per-slice scale is visible."""
    ratios = []
    for cine_slice, truth in zip(tiny_cine.study.sax, tiny_cine.truth):
        labels = cine_slice.labels.array[0, 0]
        image = cine_slice.image.array[0, 0]
        if (labels == 1).sum() < 5 or (labels == 2).sum() < 5:
            continue
        blood, myo = image[labels == 1].mean(), image[labels == 2].mean()
        assert blood > 2 * myo
        ratios.append(blood / truth.intensity_scale)
    assert np.std(ratios) / np.mean(ratios) < 0.1  # dividing by the true scale makes slices agree


def test_simulation_is_deterministic(heart):
    from CardiacMotionAtlasLib.phantom.cmr import simulate_cine

    a = simulate_cine(heart, CMRConfig.tiny(), seed=3)
    b = simulate_cine(heart, CMRConfig.tiny(), seed=3)
    assert np.array_equal(a.study.slices[2].image.array, b.study.slices[2].image.array)


def test_ct_values_and_flow(heart):
    ct = simulate_ct(heart, [heart.es_phase, 0.0], CTConfig.tiny())
    es_labels = ct.labels.array[0]
    hu = ct.image.array[0]
    assert hu[es_labels == 1].mean() == pytest.approx(heart.params.blood_hu, abs=60)
    assert 40 < hu[es_labels == 2].mean() < 200
    assert hu.min() < -700  # lung / air present
    flow = ct.flow(heart.es_phase, 0.0)
    magnitude = np.linalg.norm(flow.vectors, axis=0)
    assert magnitude[es_labels == 2].mean() > 2.0
    assert magnitude[es_labels == 0].mean() < magnitude[es_labels == 2].mean()
    # the flow carries the ES labels onto the ED labels
    points = ct.image.voxel_centres_ras()
    moved = points + np.moveaxis(flow.vectors, 0, -1)
    lv = es_labels > 0
    assert np.mean(heart.labels(moved[lv], 0.0) == es_labels[lv]) > 0.999


def test_planned_slices_cover_the_lv(heart):
    slices = planned_slices(heart, CMRConfig())
    sax = [s for s in slices if s[1] == "SAX"]
    positions = np.array([heart.to_local(m[:3, 3] + 0)[2] for _, _, m in sax])
    # the plane centre is offset in-plane, so compare along the axis only
    along = np.array([(m[:3, 3] - heart.to_ras(np.zeros(3))) @ heart.long_axis_ras for _, _, m in sax])
    assert along.min() < heart.shape.z_base and along.max() > heart.shape.c_endo - 10
    assert len(positions) == len(sax)
