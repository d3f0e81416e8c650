"""Issue 18, third pass: the amplitude coordinate (``SynthConfig.amplitude_latent``).

Latent dimension 0 is the motion-scale augmentation's known factor (standardised): the decoder is given it
in training, the posterior's mean regresses onto it, it leaves the KL, and its prior is N(0, 1) for every
frame; ``concat_pairs`` warns when it drops ES masks.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.synthesis import SynthConfig
from CardiacMotionAtlasLib.synthesis.cvae import (ConditionalFlowVAE, amplitude_coordinate, cvae_loss,
                                                   kl_divergence, with_amplitude)
from CardiacMotionAtlasLib.synthesis.data import PairTensors, concat_pairs


def test_amplitude_coordinate_is_standardised_and_zero_at_the_frames_own_motion():
    scale = 1.0 + 0.4 * (2 * torch.rand(200000, generator=torch.Generator().manual_seed(0)) - 1)
    a = amplitude_coordinate(scale, 0.4)
    assert float(a.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(a.std()) == pytest.approx(1.0, abs=0.01)
    assert float(amplitude_coordinate(torch.tensor([1.0]), 0.4)) == 0.0
    assert float(amplitude_coordinate(torch.tensor([1.4]), 0.4)) == pytest.approx(3 ** 0.5, rel=1e-5)
    assert torch.equal(amplitude_coordinate(torch.tensor([1.3]), 0.0), torch.zeros(1))


def test_prior_of_the_amplitude_coordinate_is_standard_normal_for_every_frame():
    config = replace(SynthConfig.tiny(), amplitude_latent=True, amplitude_lvef=False)
    cvae = ConditionalFlowVAE(config)
    with torch.no_grad():  # a trained-looking prior head (non-zero last layer)
        cvae.prior_head[-1].weight.normal_(0, 0.5)
        cvae.prior_head[-1].bias.normal_(0, 0.5)
    n, pyr = config.working_size, config.pyramid_channels
    frames = torch.randn(2, 1, n, n, n)
    features = [torch.randn(2, c, n // 2 ** (l + 1), n // 2 ** (l + 1), n // 2 ** (l + 1)) for l, c in enumerate(pyr)]
    mu, logvar = cvae.prior(frames, features)
    assert torch.equal(mu[:, 0], torch.zeros(2)) and torch.equal(logvar[:, 0], torch.zeros(2))
    assert mu[:, 1:].abs().sum() > 0  # the other dimensions stay conditional
    free = ConditionalFlowVAE(replace(config, amplitude_latent=False))
    free.load_state_dict(cvae.state_dict())
    assert free.prior(frames, features)[0][:, 0].abs().sum() > 0  # off: dimension 0 is learned as before


def test_amplitude_leaves_the_kl_and_is_regressed():
    config = replace(SynthConfig.tiny(), amplitude_latent=True, amplitude_lvef=False, kl_free_nats=0.0, amplitude_weight=2.0)
    target = torch.zeros(2, 3, 4, 4, 4)
    mu, logvar = torch.zeros(2, 4), torch.zeros(2, 4)
    amplitude = torch.tensor([0.5, -1.0])
    base, _, kl = cvae_loss(target, target, mu, logvar, config, amplitude=amplitude)
    assert float(kl) == 0.0
    assert float(base) == pytest.approx(2.0 * float((amplitude ** 2).mean()), rel=1e-5)
    moved = mu.clone()
    moved[:, 0] = amplitude  # the posterior's dimension 0 at the known amplitude: no penalty, no KL
    total, _, kl = cvae_loss(target, target, moved, logvar, config, amplitude=amplitude)
    assert float(total) == pytest.approx(0.0, abs=1e-6) and float(kl) == 0.0
    # without the option the same mean enters the KL (dimension 0 is a free latent)
    off, _, kl_off = cvae_loss(target, target, moved, logvar, replace(config, amplitude_latent=False), amplitude=amplitude)
    assert float(kl_off) == pytest.approx(float(kl_divergence(moved, logvar)), rel=1e-6) and float(kl_off) > 0
    latent = with_amplitude(torch.ones(2, 4), amplitude)
    assert torch.equal(latent[:, 0], amplitude) and torch.equal(latent[:, 1:], torch.ones(2, 3))


def test_moving_along_the_amplitude_coordinate_scales_the_contraction(synth_pairs, synth_config):
    """Trained briefly on three tiny phantom pairs: the flow decoded at z_0 = +sqrt(3) (1.4x contraction)
    moves the heart clearly more than at -sqrt(3) (0.6x), with the other coordinates at the prior mean;
    the posterior mean of a flow scaled up lies above that of the same flow scaled down."""
    from CardiacMotionAtlasLib.synthesis.grid import normalise_hu
    from CardiacMotionAtlasLib.synthesis.sample import sample_flows
    from CardiacMotionAtlasLib.synthesis.train import train_cvae, train_flow_estimator

    config = replace(synth_config, amplitude_latent=True, amplitude_lvef=False, cvae_steps=60, index_weight=0.0,
                     augment=replace(synth_config.augment, motion_scale=0.4))
    estimator = train_flow_estimator(synth_pairs, config, steps=2, device="cpu")
    trained = train_cvae(synth_pairs, estimator, config, device="cpu")
    pair = synth_pairs[0]
    heart = torch.as_tensor(pair.labels_ed > 0)
    latents = torch.zeros(2, config.latent_dim)
    latents[:, 0] = torch.tensor([-3 ** 0.5, 3 ** 0.5])
    flows = sample_flows(trained, torch.as_tensor(pair.es), latents)
    weak, strong = (float(f.norm(dim=0)[heart].mean()) for f in flows)
    assert strong > 1.3 * weak
    frame = normalise_hu(torch.as_tensor(pair.es)[None, None].float(), config)
    features = trained.model.condition(frame)
    flow = torch.as_tensor(pair.flow_vox)[None].float()
    with torch.no_grad():
        low = trained.model.cvae.encode(0.6 * flow, frame, features)[0][0, 0]
        high = trained.model.cvae.encode(1.4 * flow, frame, features)[0][0, 0]
    assert float(high) > float(low)


def test_line_mode_runs_along_the_amplitude_coordinate(synth_pairs, synth_config, es_frame):
    from CardiacMotionAtlasLib.synthesis.sample import generate
    from CardiacMotionAtlasLib.synthesis.train import train_cvae, train_flow_estimator

    config = replace(synth_config, amplitude_latent=True, cvae_steps=2)
    estimator = train_flow_estimator(synth_pairs, config, steps=1, device="cpu")
    trained = train_cvae(synth_pairs, estimator, config, device="cpu")
    samples = generate(trained, es_frame.image.array[0], es_frame.image.ijk_to_ras, n=3, mode="line")
    latents = np.stack([s.latent for s in samples])
    assert np.allclose(latents[:, 1:], 0.0) and np.allclose(latents[:, 0], [-2.0, 0.0, 2.0])


def test_concat_pairs_warns_when_it_drops_masks():
    n = 4
    with_masks = PairTensors(torch.zeros(1, 1, n, n, n), torch.zeros(1, 1, n, n, n), torch.zeros(1, 3, n, n, n),
                             torch.zeros(1, 2, n, n, n))
    without = PairTensors(torch.zeros(2, 1, n, n, n), torch.zeros(2, 1, n, n, n), torch.zeros(2, 3, n, n, n))
    with pytest.warns(UserWarning, match=r"parts \[1\] of 2 have no ES labels"):
        assert concat_pairs(with_masks, without).masks_es is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert concat_pairs(with_masks, without, masks_optional=True).masks_es is None
        assert concat_pairs(with_masks, with_masks).masks_es.shape[0] == 2
        assert concat_pairs(without, without).masks_es is None


def test_a_checkpoint_written_before_the_amplitude_option_loads_with_it_off(loads_as_before_options, synth_config):
    assert not SynthConfig().amplitude_latent and not SynthConfig().amplitude_lvef  # opt-in
    loads_as_before_options(replace(synth_config, amplitude_latent=False, amplitude_lvef=False),
                            ["amplitude_latent", "amplitude_lvef"])


def test_lvef_coordinate_is_the_implied_ejection_fraction_standardised(ball_points, ball_lv_masks):
    from CardiacMotionAtlasLib.geometry.warp import warp
    from CardiacMotionAtlasLib.synthesis.cvae import LVEF_CENTRE, LVEF_SPREAD, lvef_coordinate

    zero = torch.zeros_like(ball_points)
    assert float(lvef_coordinate(ball_lv_masks, zero)) == pytest.approx(-LVEF_CENTRE / LVEF_SPREAD, abs=1e-4)
    flow = -0.15 * ball_points  # pulls from nearer the centre: the pulled (ED) blood pool is larger
    es, ed = float(ball_lv_masks[:, 0].sum()), float(warp(ball_lv_masks[:, :1], flow).sum())
    expected = (100 * (1 - es / ed) - LVEF_CENTRE) / LVEF_SPREAD
    assert float(lvef_coordinate(ball_lv_masks, flow)) == pytest.approx(expected, rel=1e-5)
    assert float(lvef_coordinate(ball_lv_masks, 1.5 * flow)) > float(lvef_coordinate(ball_lv_masks, flow))


def test_lvef_mode_learns_the_prior_of_the_coordinate_by_its_likelihood():
    config = replace(SynthConfig.tiny(), amplitude_latent=True, amplitude_lvef=True, kl_free_nats=0.0)
    target = torch.zeros(2, 3, 4, 4, 4)
    mu, logvar = torch.zeros(2, 4), torch.zeros(2, 4)
    amplitude = torch.tensor([0.5, -1.0])
    prior_mu, prior_logvar = torch.zeros(2, 4), torch.zeros(2, 4)
    base, _, _ = cvae_loss(target, target, mu, logvar, config, prior_mu=prior_mu, prior_logvar=prior_logvar,
                           amplitude=amplitude)
    # regression of mu_0 (weight 1) + Gaussian NLL of the coordinate under N(0, 1): 0.5 * a^2 each
    assert float(base) == pytest.approx(1.5 * float((amplitude ** 2).mean()), rel=1e-5)
    prior_mu = prior_mu.clone()
    prior_mu[:, 0] = amplitude
    at, _, _ = cvae_loss(target, target, mu, logvar, config, prior_mu=prior_mu, prior_logvar=prior_logvar, amplitude=amplitude)
    assert float(at) == pytest.approx(float((amplitude ** 2).mean()), rel=1e-5)  # the prior predicts it: no NLL beyond log sd
    cvae = ConditionalFlowVAE(config)
    with torch.no_grad():
        cvae.prior_head[-1].bias.normal_(0, 0.5)
    n, pyr = config.working_size, config.pyramid_channels
    frames = torch.randn(1, 1, n, n, n)
    features = [torch.randn(1, c, n // 2 ** (l + 1), n // 2 ** (l + 1), n // 2 ** (l + 1)) for l, c in enumerate(pyr)]
    assert float(cvae.prior(frames, features)[0][0, 0].detach()) != 0.0  # learned, not the fixed N(0, 1)
