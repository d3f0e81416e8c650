"""Full-cycle trajectory as one stationary velocity scaled per frame (motion.trajectory)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.geometry.warp import jacobian_determinant_voxels, warp
from CardiacMotionAtlasLib.metrics.overlap import dice
from CardiacMotionAtlasLib.motion import MotionConfig, estimate_motion
from CardiacMotionAtlasLib.motion.errors import MotionInputError
from CardiacMotionAtlasLib.motion.losses import one_hot
from CardiacMotionAtlasLib.motion.trajectory import (FIT_REFERENCE_PIXEL_MM, fit_amplitudes, fit_cycle_velocity, fit_weights,
                                                    svf_fields, svf_trajectory)
from CardiacMotionAtlasLib.motion.train import sequence_tensors

SHIFT_PX = 2  # ES = the ED labels moved this many pixels along +x (i)


def _labels(small_sequence, config):
    _, labels = sequence_tensors(small_sequence, config, "cpu")
    ed = labels[0]
    return ed, torch.roll(ed, shifts=SHIFT_PX, dims=-1)


def test_fitted_velocity_carries_ed_onto_es_without_folding(small_sequence):
    config = MotionConfig.tiny()
    ed, es = _labels(small_sequence, config)
    shape = ed.shape[1:]
    initial = torch.zeros(1, 3, shape[0], shape[1] // 2, shape[2] // 2)
    velocity = fit_cycle_velocity(initial, ed, es, shape, config, steps=80)
    fields = svf_fields(velocity, torch.tensor([1.0]), shape, config.integration_steps)
    carried = warp(one_hot(ed), fields["t_to_ed"]).argmax(1)[0]
    before = dice((ed[0] == 1).numpy(), (es[0] == 1).numpy())
    after = dice((carried == 1).numpy(), (es[0] == 1).numpy())
    assert after > 0.9 and after > before + 0.05, (before, after)
    # t -> ED on the ES grid: an ES point came from SHIFT_PX pixels to the left
    assert float(fields["t_to_ed"][0, 0][es[0] == 1].median()) == pytest.approx(-SHIFT_PX, abs=0.4)
    assert float(jacobian_determinant_voxels(fields["ed_to_t"]).min()) > 0


def test_light_regularisation_is_a_different_fit_of_the_given_labels(small_sequence):
    config = MotionConfig.tiny()
    ed, es = _labels(small_sequence, config)
    shape = ed.shape[1:]
    initial = torch.zeros(1, 3, shape[0], shape[1] // 2, shape[2] // 2)
    scores, velocities = {}, {}
    for regularisation in ("network", "light"):
        velocity = fit_cycle_velocity(initial, ed, es, shape, config, steps=60, regularisation=regularisation)
        velocities[regularisation] = velocity
        carried = warp(one_hot(ed), svf_fields(velocity, torch.tensor([1.0]), shape, 3)["t_to_ed"]).argmax(1)[0]
        scores[regularisation] = np.mean([dice((carried == k).numpy(), (es[0] == k).numpy()) for k in (1, 2, 3)])
    assert min(scores.values()) > 0.85, scores  # both carry ED onto the shifted ES labels
    assert (velocities["light"] - velocities["network"]).abs().max() > 0.1  # the option changes the fit
    with pytest.raises(ValueError, match="regularisation"):
        fit_cycle_velocity(initial, ed, es, shape, config, steps=1, regularisation="none")


def test_amplitudes_recover_the_fraction_of_the_es_motion_per_frame(small_sequence):
    config = MotionConfig.tiny()
    ed, _ = _labels(small_sequence, config)
    shape = ed.shape[1:]
    velocity = torch.zeros(1, 3, shape[0], shape[1] // 2, shape[2] // 2)
    velocity[:, 0] = 2.0 / 2  # +2 image pixels along i = +1 pixel of the half-resolution grid
    truth = torch.tensor([0.0, 0.5, 1.0, 0.5])
    moved = svf_fields(velocity, truth, shape, config.integration_steps)["t_to_ed"]
    frames = warp(one_hot(ed).expand(4, -1, -1, -1, -1), moved).argmax(1)
    amplitudes = fit_amplitudes(velocity, ed, shape, config, es_position=2, source="labels", pseudo_labels=frames)
    assert amplitudes[0] == 0 and amplitudes[2] == 1
    assert torch.allclose(amplitudes, truth, atol=0.11), amplitudes
    images = (frames == 1).float()[:, None] + 0.5 * (frames == 2).float()[:, None]
    by_intensity = fit_amplitudes(velocity, ed, shape, config, es_position=2, source="intensity", images=images)
    assert torch.allclose(by_intensity, truth, atol=0.11), by_intensity


def test_svf_trajectory_is_identity_at_ed_and_matches_es(small_sequence):
    config = MotionConfig.tiny()
    ed, es = _labels(small_sequence, config)
    shape = ed.shape[1:]
    steps = torch.zeros(3, 3, shape[0], shape[1] // 2, shape[2] // 2)
    pseudo = torch.cat([ed, torch.roll(ed, 1, -1), es, torch.roll(ed, 1, -1)])
    out = svf_trajectory(steps, ed, es, 2, shape, config, 4, pseudo_labels=pseudo, fit_steps=60)
    assert out["ed_to_t"].shape == (4, 3, *shape)
    assert float(out["ed_to_t"][0].abs().max()) == 0.0
    assert 0.2 < float(out["amplitudes"][1]) < 0.8 and 0.2 < float(out["amplitudes"][3]) < 0.8
    assert int((jacobian_determinant_voxels(out["ed_to_t"]) <= 0).sum()) == 0


def test_estimate_with_svf_trajectory(small_sequence, tiny_trained):
    chain = estimate_motion(tiny_trained, small_sequence, samples=2, trajectory="chain")
    svf = estimate_motion(tiny_trained, small_sequence, samples=2)  # the default, the study gives ED and ES labels
    assert svf.metadata["refine_steps"] == 0 and chain.metadata["refine_steps"] == tiny_trained.config.refine_steps
    assert chain.metadata["trajectory"] == "chain" and svf.metadata["trajectory"] == "svf"
    amplitudes = svf.metadata["amplitudes"]
    assert amplitudes[0] == 0.0 and len(amplitudes) == small_sequence.n_frames
    assert np.abs(svf.ed_to_t[svf.ed_frame]).max() == 0.0
    assert not np.allclose(svf.ed_to_t, chain.ed_to_t)
    for name, (lower, upper) in svf.index_bounds.items():
        assert lower <= svf.indices[name] <= upper or not np.isfinite(svf.indices[name])
    with pytest.raises(MotionInputError, match="trajectory"):
        estimate_motion(tiny_trained, small_sequence, samples=2, trajectory="spline")


def test_svf_falls_back_to_the_chain_without_given_es_labels(small_sequence, tiny_trained):
    ed_only = replace(small_sequence, labels={small_sequence.ed_frame: small_sequence.labels[small_sequence.ed_frame]})
    estimate = estimate_motion(tiny_trained, ed_only, samples=2)
    assert estimate.metadata["trajectory"] == "chain" and estimate.metadata["amplitudes"] is None


def test_volume_mismatch_weighs_each_structure_by_its_own_size():
    from CardiacMotionAtlasLib.motion.trajectory import volume_mismatch

    target = torch.zeros(1, 4, 2, 10, 10)
    target[:, 1, :, :8, :] = 1.0  # a large LV (160 voxels)
    target[:, 3, :, 8:, :2] = 1.0  # a small RV (8 voxels)
    target[:, 0] = 1.0 - target[:, 1:].sum(1)
    assert float(volume_mismatch(target, target)) == 0.0
    shrunk = target.clone()
    shrunk[:, 3, :, 8:, 1] = 0.0  # the RV loses half its volume (4 voxels)
    lv_shrunk = target.clone()
    lv_shrunk[:, 1, :, :2, :] = 0.0  # the LV loses 40 voxels (a quarter)
    # the myocardium is absent: the mean is over the LV and the RV
    assert float(volume_mismatch(shrunk, target)) == pytest.approx(0.5 ** 2 / 2)
    assert float(volume_mismatch(lv_shrunk, target)) == pytest.approx(0.25 ** 2 / 2)


def test_volume_term_brings_the_fitted_rv_to_the_given_es_volume(small_sequence):
    from scipy.ndimage import binary_erosion

    config = MotionConfig.tiny()
    ed, _ = _labels(small_sequence, config)
    shape = ed.shape[1:]
    es = ed.clone()
    rv = (ed[0] == 3).numpy()
    eroded = np.stack([binary_erosion(s) for s in rv])
    es[0][torch.as_tensor(rv & ~eroded)] = 0  # ES: the RV cavity shrunk by one pixel all round
    target = float((es == 3).sum())
    initial = torch.zeros(1, 3, shape[0], shape[1] // 2, shape[2] // 2)
    errors = {}
    for weight in (0.0, 20.0):
        velocity = fit_cycle_velocity(initial, ed, es, shape, config, steps=60, volume_weight=weight)
        carried = warp(one_hot(ed), svf_fields(velocity, torch.tensor([1.0]), shape, 3)["t_to_ed"])
        errors[weight] = abs(float(carried[:, 3].sum()) - target) / target
    assert errors[20.0] < errors[0.0], errors


def test_physical_fit_weights_keep_their_millimetre_meaning_at_another_pixel_size(small_sequence):
    config = MotionConfig.tiny()
    network = fit_weights(config, "network", 2.5)
    assert network == (config.bending_weight, config.refine_size_weight)
    assert fit_weights(config, "physical", FIT_REFERENCE_PIXEL_MM) == pytest.approx(network)  # same at 4 mm
    assert fit_weights(config, "physical", None) == pytest.approx(network)
    bending, size = fit_weights(config, "physical", 2.5)  # a 5 mm control grid instead of 8 mm
    assert bending == pytest.approx(config.bending_weight * (8 / 5) ** 2)
    assert size == pytest.approx(config.refine_size_weight * (5 / 8) ** 2)
    with pytest.raises(ValueError, match="regularisation"):
        fit_weights(config, "mm")
    # the fit itself follows: at 4 mm "physical" is the network's fit, at 1 mm a different (stiffer) one
    ed, es = _labels(small_sequence, config)
    shape = ed.shape[1:]
    initial = torch.zeros(1, 3, shape[0], shape[1] // 2, shape[2] // 2)
    fit = lambda regularisation, mm: fit_cycle_velocity(initial, ed, es, shape, config, steps=20,  # noqa: E731
                                                        regularisation=regularisation, pixel_mm=mm)
    assert torch.allclose(fit("physical", FIT_REFERENCE_PIXEL_MM), fit("network", 1.0))
    assert (fit("physical", 1.0) - fit("network", 1.0)).abs().max() > 1e-3
