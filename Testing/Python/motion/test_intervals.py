"""95 % intervals of the indices: the partial-volume model against sampled shapes, intervals that contain the
estimate and are never zero-width, and the per-index calibration fitted on training subjects and stored in
the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacMotionAtlasLib.motion.intervals import (
    INDEX_KEYS,
    physical_range,
    Z95,
    fit_calibration,
    label_volume_sd_ml,
    reference_indices,
)


def test_partial_volume_sd_is_calibrated_on_sampled_cylinders():
    """Cylinders of random radius, length and sub-voxel position sampled at voxel centres (4 x 4 mm pixels,
    10 mm slices): the voxel-count volume's error against the exact volume has about the predicted sd."""
    rng = np.random.default_rng(0)
    spacing = np.array([4.0, 4.0, 10.0])
    shape = (12, 24, 24)
    matrix = np.diag([*spacing, 1.0])
    k, j, i = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    points = np.stack([i, j, k], -1) * spacing
    errors, sds = [], []
    for _ in range(200):
        centre = np.array([48.0, 48.0, 55.0]) + rng.uniform(-0.5, 0.5, 3) * spacing
        radius, length = rng.uniform(15, 22), rng.uniform(50, 80)
        d = points - centre
        mask = (d[..., 0] ** 2 + d[..., 1] ** 2 <= radius ** 2) & (np.abs(d[..., 2]) <= length / 2)
        errors.append(mask.sum() * 0.16 - np.pi * radius ** 2 * length / 1000)
        sds.append(label_volume_sd_ml(mask.astype(np.uint8) * 3, 3, matrix))
    z = np.asarray(errors) / np.asarray(sds)
    assert 0.7 < np.sqrt(np.mean(z ** 2)) < 1.4
    assert 0.85 <= np.mean(np.abs(z) <= Z95) <= 0.995
    assert label_volume_sd_ml(np.zeros(shape, np.uint8), 1, matrix) == 0.0


def test_fit_calibration_scales_up_only():
    sds = [{k: 2.0 for k in INDEX_KEYS}] * 3
    wide = fit_calibration([{k: 6.0 * s for k in INDEX_KEYS} for s in (1, -1, 1)], sds)
    narrow = fit_calibration([{k: 0.5 for k in INDEX_KEYS}] * 3, sds)
    assert all(v == pytest.approx(3.0) for v in wide.values())
    assert all(v == 1.0 for v in narrow.values())


def test_reference_indices_of_labels():
    labels = {0: np.zeros((2, 4, 4), np.uint8), 1: np.zeros((2, 4, 4), np.uint8)}
    labels[0][:, :2] = 1
    labels[1][:, :1] = 1
    ref = reference_indices(labels, 0, 1, np.diag([10.0, 10.0, 10.0, 1.0]))
    assert ref["LVEDV"] == pytest.approx(16.0) and ref["LVESV"] == pytest.approx(8.0)
    assert ref["LVEF"] == pytest.approx(50.0)


def test_intervals_contain_the_estimate_and_have_width(tiny_trained, small_sequence):
    from CardiacMotionAtlasLib.motion import estimate_motion

    estimate = estimate_motion(tiny_trained, small_sequence, samples=3)
    for name, value in estimate.indices.items():
        lower, upper = estimate.index_bounds[name]
        if not np.isfinite(value):
            continue
        assert lower < value < upper, (name, lower, value, upper)  # never zero-width, ED indices included
    for name, volumes in estimate.volumes_ml.items():
        bounds = estimate.volume_bounds_ml[name]
        assert np.all(bounds[0] < volumes) and np.all(volumes < bounds[1]), name
    for name, strain in estimate.strain.items():
        bounds = estimate.strain_bounds[name]
        assert np.all(bounds[0] <= strain + 1e-9) and np.all(strain <= bounds[1] + 1e-9), name


def test_calibration_is_fitted_stored_and_applied(tiny_trained, small_sequence):
    from CardiacMotionAtlasLib.motion import estimate_motion, load_motion

    calibration = tiny_trained.calibration
    assert set(calibration) == set(INDEX_KEYS) and all(v >= 1.0 for v in calibration.values())
    loaded = load_motion(tiny_trained.checkpoint_path, device="cpu")
    assert loaded.calibration == pytest.approx(calibration)
    assert loaded.preprocessing["intensity_percentile"] == tiny_trained.config.intensity_percentile
    calibrated = estimate_motion(loaded, small_sequence, samples=3)
    raw = estimate_motion(loaded, small_sequence, samples=3, calibrated=False)
    for name in INDEX_KEYS:
        if not np.isfinite(raw.indices[name]):
            continue
        value = raw.indices[name]
        (raw_low, raw_high), (low, high) = raw.index_bounds[name], calibrated.index_bounds[name]
        # half-widths of the side not cut to the physical range (EF in [0, 100], volumes >= 0)
        lowest, highest = physical_range(name)
        if high < highest:
            assert high - value == pytest.approx(calibration[name] * (raw_high - value), rel=1e-6)
        elif low > lowest:
            assert value - low == pytest.approx(calibration[name] * (value - raw_low), rel=1e-6)
        else:  # the tiny model's spread covers the whole range: cut on both sides
            assert (low, high) == (lowest, highest) and raw_low >= lowest


def test_intervals_stay_in_the_physical_range_and_contain_the_estimate():
    from CardiacMotionAtlasLib.motion.intervals import intervals

    bounds = intervals({"LVEF": 14.2, "LVESV": 20.0, "RVEF": 97.0, "LVEDV": 150.0},
                       {"LVEF": 9.3, "LVESV": 30.0, "RVEF": 5.0, "LVEDV": 1.0})
    assert bounds["LVEF"] == pytest.approx((0.0, 14.2 + 1.96 * 9.3), abs=0.01)  # not -4.0 % (the main job's report)
    assert bounds["LVESV"][0] == 0.0 and bounds["RVEF"][1] == 100.0
    assert bounds["LVEDV"] == pytest.approx((150.0 - 1.96, 150.0 + 1.96), abs=0.01)  # untouched inside the range
    # an estimate outside the range (ESV > EDV: negative EF) is still inside its own interval
    low, high = intervals({"LVEF": -3.0}, {"LVEF": 2.0})["LVEF"]
    assert low < -3.0 < high <= 100.0


def test_misfit_sd_widens_the_svf_intervals_by_the_fit_residual(tiny_trained, small_sequence):
    from CardiacMotionAtlasLib.motion import estimate_motion
    from CardiacMotionAtlasLib.motion.intervals import misfit_sds

    assert misfit_sds({"LVEF": 50.0, "LVESV": float("nan")}, {"LVEF": 47.0, "LVESV": 10.0})["LVEF"] == 3.0
    assert misfit_sds({"LVEF": 50.0, "LVESV": float("nan")}, {"LVEF": 47.0, "LVESV": 10.0})["LVESV"] == 0.0
    plain = estimate_motion(tiny_trained, small_sequence, samples=2, calibrated=False, misfit_sd=False)
    widened = estimate_motion(tiny_trained, small_sequence, samples=2, calibrated=False, misfit_sd=True)
    sequence = small_sequence
    reference = reference_indices(sequence.labels, sequence.ed_frame, sequence.es_frame, sequence.ijk_to_ras)
    assert widened.indices == plain.indices  # same estimate, wider intervals
    for k in ("LVESV", "LVEF", "RVESV"):
        assert widened.metadata["index_sd"][k] >= plain.metadata["index_sd"][k]
        assert widened.metadata["index_sd"][k] >= abs(widened.indices[k] - reference[k]) - 1e-9
