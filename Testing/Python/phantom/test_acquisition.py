"""Randomised acquisitions: heart pose, CMR and CT protocols drawn per subject, simulated and on disk."""

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from CardiacMotionAtlasLib.cli.main import build_parser
from CardiacMotionAtlasLib.cli.phantom_cmd import cohort_config_from
from CardiacMotionAtlasLib.geometry.affine import apply_affine
from CardiacMotionAtlasLib.io.layout_ukbb import read_ukbb_study
from CardiacMotionAtlasLib.io.nifti import read_nifti
from CardiacMotionAtlasLib.phantom.acquisition import (
    AcquisitionRanges,
    axis_angles_deg,
    draw_cmr_protocol,
    draw_ct_protocol,
    draw_heart_pose,
    randomise_subject,
    subject_rng,
)
from CardiacMotionAtlasLib.phantom.cmr import BIAS_TERMS, CMRConfig, bias_field, planned_frame, simulate_cine
from CardiacMotionAtlasLib.phantom.cohort import SIDECAR, CohortConfig, cohort_hearts, write_cohort
from CardiacMotionAtlasLib.phantom.ct import CTConfig, simulate_ct
from CardiacMotionAtlasLib.phantom.heart import PhantomHeart
from CardiacMotionAtlasLib.phantom.tissues import N_TISSUES, Tissue


def _angle_deg(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.degrees(np.arccos(np.clip(abs(a @ b) / np.linalg.norm(a) / np.linalg.norm(b), 0.0, 1.0))))


def test_pose_long_axis_angles_and_octants():
    rng = np.random.default_rng(5)
    centre = np.array([-12.0, 20.0, 7.0])
    octants, rv_azimuths = set(), []
    for _ in range(400):
        pose = draw_heart_pose(rng, centre)
        rotation = pose[:3, :3]
        assert np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-9) and np.linalg.det(rotation) > 0
        assert np.allclose(pose[:3, 3], centre) and np.allclose(pose[3], [0, 0, 0, 1])
        assert np.allclose(rotation[:, 1], np.cross(rotation[:, 2], rotation[:, 0]))
        angles = axis_angles_deg(rotation[:, 2])
        assert all(20.0 - 1e-9 <= a <= 70.0 + 1e-9 for a in angles.values()), angles
        octants.add(tuple(np.sign(rotation[:, 2]).astype(int)))
        # RV direction around the axis, measured from the axis' projection of R (never parallel to it)
        ref = np.array([1.0, 0.0, 0.0]) - rotation[0, 2] * rotation[:, 2]
        ref /= np.linalg.norm(ref)
        rv_azimuths.append(np.arctan2(np.cross(ref, rotation[:, 0]) @ rotation[:, 2], ref @ rotation[:, 0]))
    assert len(octants) == 8
    counts, _ = np.histogram(rv_azimuths, bins=4, range=(-np.pi, np.pi))
    assert counts.min() > 60  # uniform around the axis: ~100 per quarter


def test_protocol_draws_stay_in_their_ranges():
    rng = np.random.default_rng(11)
    ranges = AcquisitionRanges()
    for _ in range(150):
        cmr = draw_cmr_protocol(rng, CMRConfig(), ranges, centre_ras=(-15.0, 15.0, 10.0))
        assert 6.0 <= cmr.slice_thickness_mm <= 10.0
        assert 0.0 <= cmr.slice_spacing_mm - cmr.slice_thickness_mm <= 4.0
        assert 1.2 <= cmr.pixel_mm <= 2.4 and 20 <= cmr.n_frames <= 50
        assert cmr.matrix <= 256 and cmr.rows <= cmr.matrix
        assert 260.0 - cmr.pixel_mm <= cmr.matrix * cmr.pixel_mm <= 400.0 + cmr.pixel_mm
        assert (cmr.min_sax, cmr.max_sax) == (7, 15)
        assert 0.015 <= cmr.noise_sigma <= 0.06 and 0.5 <= cmr.misalignment_mm <= 3.0
        assert 0.5 <= cmr.misalignment_deg <= 2.0 and 0.0 <= cmr.prescription_tilt_deg <= 10.0
        assert 0.05 <= 1.0 - cmr.intensity_scale_range[0] <= 0.25
        multipliers = np.asarray(cmr.signal_multipliers)
        assert multipliers.shape == (N_TISSUES,) and np.all(np.abs(multipliers - 1.0) <= 0.15 * 1.03 + 0.03 + 1e-9)
        # the coil bias stays in 0.7-1.3 over the whole FOV of the stack
        half = 0.5 * np.hypot(cmr.matrix, cmr.rows) * cmr.pixel_mm
        cube = np.random.default_rng(0).uniform(-1, 1, (2000, 3)) * [half, half, 110.0] + [-15.0, 15.0, 10.0]
        bias = bias_field(cmr, cube)
        assert bias.min() >= 0.7 and bias.max() <= 1.3
        ct = draw_ct_protocol(rng, CTConfig(), ranges)
        assert np.prod(ct.shape_zyx) <= ranges.ct_max_voxels
        assert 0.5 <= ct.voxel_mm <= 1.5 + 1e-6 and 0.5 <= ct.slice_mm <= 1.5 + 1e-6
        assert 250.0 <= ct.blood_hu <= 550.0 and 0.6 <= ct.rv_enhancement <= 1.0
        assert 10.0 <= ct.noise_hu <= 40.0 and 0.8 <= ct.psf_fwhm_mm <= 1.6
        if ct.direction:
            direction = np.reshape(ct.direction, (3, 3))
            assert _angle_deg(direction[:, 2], [0, 0, 1]) <= 8.0 + 1e-6


def _record(seed, index):
    heart = PhantomHeart.from_seed(0, 0, kind="normal")
    return randomise_subject(heart, subject_rng(seed, index), CMRConfig.tiny(), CTConfig.tiny(),
                             AcquisitionRanges.tiny())[2]


def test_draws_are_deterministic_per_subject_and_differ_across_subjects():
    a, b = _record(0, 3), _record(0, 3)
    assert json.dumps(a) == json.dumps(b)
    for other in (_record(0, 4), _record(1, 3)):
        assert other["pose"]["local_to_ras"] != a["pose"]["local_to_ras"]
        assert other["cmr"]["slice_thickness_mm"] != a["cmr"]["slice_thickness_mm"]
        assert other["ct"]["blood_hu"] != a["ct"]["blood_hu"]
    # the CMR draw does not depend on whether CT is simulated
    heart = PhantomHeart.from_seed(0, 0, kind="normal")
    cmr, ct, record = randomise_subject(heart, subject_rng(0, 3), CMRConfig.tiny(), None, AcquisitionRanges.tiny())
    assert ct is None and record["ct"] is None and record["cmr"] == a["cmr"]


def test_neutral_fields_reproduce_the_default_simulation(heart):
    """Explicitly neutral prescription/contrast/bias fields (taking the new code paths) give the arrays of
    the default protocol bit for bit, and the default planned frame is the true LV frame."""
    base = CMRConfig.tiny()
    neutral = replace(base, matrix_rows=base.matrix, signal_multipliers=(1.0,) * N_TISSUES,
                      bias_coefficients=(0.0,) * len(BIAS_TERMS), prescription_azimuth_deg=30.0)
    assert planned_frame(heart, base) is heart.local_to_ras
    a, b = simulate_cine(heart, base, seed=2), simulate_cine(heart, neutral, seed=2)
    for x, y in zip(a.study.slices, b.study.slices):
        assert np.array_equal(x.image.array, y.image.array) and np.array_equal(x.labels.array, y.labels.array)
        assert np.array_equal(x.image.ijk_to_ras, y.image.ijk_to_ras)
    ct_a = simulate_ct(heart, [0.0], CTConfig.tiny())
    ct_b = simulate_ct(heart, [0.0], replace(CTConfig.tiny(), slice_mm=4.0, fov_z_mm=160.0,
                                             direction=tuple(np.eye(3).ravel())))
    assert np.array_equal(ct_a.image.ijk_to_ras, ct_b.image.ijk_to_ras)
    assert np.array_equal(ct_a.image.array, ct_b.image.array)


def test_bias_field_multiplies_the_images_smoothly(heart):
    cmr = draw_cmr_protocol(np.random.default_rng(3), CMRConfig.tiny(), AcquisitionRanges.tiny(),
                            centre_ras=heart.centre_ras)
    cmr = replace(cmr, noise_sigma=0.0, prescription_tilt_deg=0.0, bias_coefficients=tuple(
        0.3 * np.array([1.0, -1.0, 0.5, 0.5, -0.5, 0.0, 0.5, 0.0, 0.0]) / 4.0))
    with_bias = simulate_cine(heart, cmr, seed=4)
    without = simulate_cine(heart, replace(cmr, bias_coefficients=()), seed=4)
    spread = []
    for a, b in zip(with_bias.study.slices, without.study.slices):
        rows, cols = a.image.array.shape[-2:]
        jj, ii = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = apply_affine(a.image.ijk_to_ras, np.stack([ii, jj, np.zeros_like(ii)], -1).astype(float))
        expected = bias_field(cmr, centres)
        bright = b.image.array[0, 0] > 300
        ratio = a.image.array[0, 0][bright] / b.image.array[0, 0][bright]
        assert np.abs(ratio - expected[bright]).max() < 0.01
        assert np.abs(np.diff(expected, axis=1)).max() < 0.01  # smooth: < 1 % per pixel
        spread.append(np.ptp(expected))
    assert max(spread) > 0.05


def test_contrast_multipliers_change_blood_and_myocardium(heart):
    base = replace(CMRConfig.tiny(), noise_sigma=0.0)
    multipliers = np.ones(N_TISSUES)
    multipliers[Tissue.LV_BLOOD], multipliers[Tissue.LV_MYOCARDIUM] = 0.9, 1.12
    a = simulate_cine(heart, replace(base, signal_multipliers=tuple(multipliers)), seed=1)
    b = simulate_cine(heart, base, seed=1)
    mid = len(a.study.sax) // 2
    labels = a.study.sax[mid].labels.array[0, 0]
    for label, factor in ((1, 0.9), (2, 1.12)):
        inside = binary_erosion(labels == label)
        ratio = a.study.sax[mid].image.array[0, 0][inside] / b.study.sax[mid].image.array[0, 0][inside]
        assert np.median(ratio) == pytest.approx(factor, abs=0.01)


@pytest.fixture(scope="module")
def randomised_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("randomised")
    config = CohortConfig.tiny(2, acquisition="randomised")
    folders = write_cohort(out, config)
    return config, folders, cohort_hearts(config)


def test_written_cmr_follows_the_drawn_protocol(randomised_cohort):
    config, folders, hearts = randomised_cohort
    thicknesses = set()
    for folder, heart in zip(folders, hearts):
        sidecar = json.loads((folder / SIDECAR).read_text())
        drawn = sidecar["acquisition"]["cmr"]
        study = read_ukbb_study(folder)
        sax = study.sax
        assert 7 <= len(sax) <= 15 and study.n_frames == drawn["n_frames"] and 6 <= study.n_frames <= 10
        thickness = sax[0].image.spacing[2]
        assert 6.0 <= thickness <= 10.0 and thickness == pytest.approx(drawn["slice_thickness_mm"], abs=1e-4)
        centres = np.array([s.image.ijk_to_ras[:3, 3] for s in sax])
        normal = sax[0].normal
        gap = np.abs(np.diff(centres @ normal)) - thickness
        assert np.allclose(gap, drawn["slice_gap_mm"], atol=1e-3) and 0.0 <= gap.min() and gap.max() <= 4.0
        pixel = sax[0].image.spacing[:2]
        assert np.allclose(pixel, drawn["pixel_mm"], atol=1e-4) and 3.0 <= pixel[0] <= 4.0
        assert sax[0].image.array.shape[-2:] == (drawn["matrix_rows"], drawn["matrix"])
        # the SAX normal is off the true long axis by exactly the prescription error (<= 10 deg)
        tilt = _angle_deg(normal, heart.long_axis_ras)
        assert tilt == pytest.approx(drawn["prescription"]["tilt_deg"], abs=1e-3) and tilt <= 10.0
        assert _angle_deg(normal, drawn["prescription"]["planned_long_axis_ras"]) < 1e-3
        for lax in study.lax:  # LAX planes contain the planned axis
            assert abs(lax.normal @ np.asarray(drawn["prescription"]["planned_long_axis_ras"])) < 1e-4
        thicknesses.add(round(thickness, 3))
    assert len(thicknesses) == 2


def test_written_ct_follows_the_drawn_protocol(randomised_cohort):
    config, folders, hearts = randomised_cohort
    for folder, heart in zip(folders, hearts):
        drawn = json.loads((folder / SIDECAR).read_text())["acquisition"]["ct"]
        ct = read_nifti(folder / "ct_ED.nii.gz")
        labels = read_nifti(folder / "seg_ct_ED.nii.gz", labels=True)
        spacing = np.linalg.norm(ct.ijk_to_ras[:3, :3], axis=0)
        assert np.allclose(spacing, [drawn["voxel_mm"], drawn["voxel_mm"], drawn["slice_mm"]], atol=1e-4)
        direction = ct.ijk_to_ras[:3, :3] / spacing
        expected = np.reshape(drawn["direction"], (3, 3)) if drawn["direction"] else np.eye(3)
        assert np.allclose(direction, expected, atol=1e-5)
        assert tuple(ct.shape_zyx) == tuple(drawn["shape_zyx"])
        assert np.allclose(apply_affine(ct.ijk_to_ras, (np.array(ct.shape_zyx[::-1]) - 1) / 2.0),
                           heart.centre_ras, atol=1e-3)
        hu, label = ct.array[0], labels.array[0]
        for value, key in ((1, "lv_blood_hu"), (3, "rv_blood_hu")):
            inside = binary_erosion(label == value)
            if inside.sum() >= 5:
                assert np.median(hu[inside]) == pytest.approx(drawn[key], abs=8.0)  # interior: no partial volume
        assert drawn["lv_blood_hu"] == pytest.approx(drawn["blood_hu"])


def test_sidecar_records_the_pose_and_every_drawn_value(randomised_cohort):
    config, folders, hearts = randomised_cohort
    for index, (folder, heart) in enumerate(zip(folders, hearts)):
        sidecar = json.loads((folder / SIDECAR).read_text())
        record = sidecar["acquisition"]
        assert record["mode"] == "randomised"
        assert np.allclose(record["pose"]["local_to_ras"], sidecar["local_to_ras"])
        assert np.allclose(heart.local_to_ras, sidecar["local_to_ras"])  # cohort_hearts poses as written
        assert all(20 <= a <= 70 for a in record["pose"]["long_axis_angle_to_axes_deg"].values())
        assert len(record["cmr"]["bias"]["coefficients"]) == len(BIAS_TERMS)
        assert len(record["cmr"]["contrast"]["multipliers"]) == N_TISSUES
        assert record["cmr"]["contrast"]["blood_myocardium_ratio"] > 1.5
        assert {"tilt_deg", "azimuth_deg", "offset_mm_lv_frame"} <= set(record["cmr"]["prescription"])
        assert {"voxel_mm", "slice_mm", "direction", "blood_hu", "rv_enhancement", "noise_hu", "psf_fwhm_mm",
                "orientation"} <= set(record["ct"])
        heart_copy = PhantomHeart.from_seed(config.seed, index)
        again = randomise_subject(heart_copy, subject_rng(config.seed, index), config.cmr, config.ct,
                                  config.acquisition_ranges)[2]
        assert json.loads(json.dumps(again)) == record


def test_fixed_cohort_keeps_the_family_pose():
    config = CohortConfig.tiny(1)
    assert config.acquisition == "fixed"
    hearts = cohort_hearts(config)
    assert np.allclose(hearts[0].local_to_ras, PhantomHeart.from_seed(0, 0).local_to_ras)


def test_cli_family_acquisition_and_frames():
    parser = build_parser()
    args = parser.parse_args(["phantom", "--out", "x", "--frames", "25", "--family", "mixed"])
    config = cohort_config_from(args)
    assert config.acquisition == "randomised" and config.family == "mixed"
    assert config.acquisition_ranges.n_frames == (25, 25) and config.cmr.n_frames == 25
    heart = PhantomHeart.from_seed(0, 1)
    cmr, _, _ = randomise_subject(heart, subject_rng(0, 1), config.cmr, None, config.acquisition_ranges)
    assert cmr.n_frames == 25 and cmr.pixel_mm != CMRConfig().pixel_mm
    demo = cohort_config_from(parser.parse_args(["demo", "--out", "x", "--tiny"]))
    assert demo.acquisition == "randomised" and demo.family == "ellipsoidal"  # the main job trains on randomised data
    assert cohort_config_from(parser.parse_args(["phantom", "--out", "x", "--acquisition", "fixed"])).acquisition == "fixed"
