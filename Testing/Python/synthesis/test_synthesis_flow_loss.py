"""The CVAE's reconstruction error (balanced over moving / static voxels, the local-volume det J term) and its tiled latent."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.synthesis import SynthConfig
from CardiacMotionAtlasLib.synthesis.cvae import cvae_loss
from CardiacMotionAtlasLib.synthesis.flow_loss import flow_error, motion_mask, reconstruction_loss

N = 12


def _points() -> torch.Tensor:
    """Voxel coordinates ``(1, 3, n, n, n)`` as (i, j, k) = (x, y, z), centred on the cube."""
    k, j, i = torch.meshgrid(*(torch.arange(N, dtype=torch.float64),) * 3, indexing="ij")
    return (torch.stack([i, j, k])[None] - (N - 1) / 2)


def _ball_flow(radius: float, amplitude: float) -> torch.Tensor:
    """A flow of ``amplitude`` voxels along i inside a ball, zero elsewhere."""
    inside = (_points().pow(2).sum(1, keepdim=True) <= radius ** 2).double()
    return torch.cat([amplitude * inside, 0 * inside, 0 * inside], 1)


def test_the_motion_mask_is_the_moving_ball_dilated_by_one_voxel():
    target = _ball_flow(2.5, 1.0)
    mask = motion_mask(target, 0.25)[0, 0].numpy()
    ball = target[0, 0].numpy() > 0
    from scipy.ndimage import binary_dilation

    expected = binary_dilation(ball, structure=np.ones((3, 3, 3), bool))
    assert np.array_equal(mask, expected)
    assert not motion_mask(torch.zeros_like(target), 0.25).any()


def test_a_heart_sized_error_weighs_as_much_as_the_static_cube():
    """Missing the motion of a small moving region: the plain cube mean hardly sees it, the balanced
    error is half the mean over the moving voxels."""
    target = _ball_flow(2.0, 2.0)
    predicted = torch.zeros_like(target)
    plain = replace(SynthConfig.tiny(), motion_balanced=False, jacobian_weight=0.0)
    balanced = replace(plain, motion_balanced=True)
    plain_error, _ = flow_error(predicted, target, plain)
    balanced_error, _ = flow_error(predicted, target, balanced)
    squared = (target - predicted).pow(2).sum(1)[0]
    moving = motion_mask(target, balanced.motion_threshold_vox)[0, 0]
    assert plain_error.item() == pytest.approx(squared.mean().item())
    assert balanced_error.item() == pytest.approx(0.5 * squared[moving].mean().item())
    assert balanced_error.item() > 5 * plain_error.item()


def test_the_jacobian_term_sees_volume_change_and_not_volume_preserving_motion():
    config = replace(SynthConfig.tiny(), jacobian_weight=2.0, motion_threshold_vox=0.0)
    a = 0.2
    contraction = -a * _points()  # p -> (1 - a) p: det J = (1 - a)^3 everywhere
    zero = torch.zeros_like(contraction)
    endpoint, jacobian = flow_error(zero, contraction, config)
    assert jacobian.item() == pytest.approx((1 - (1 - a) ** 3) ** 2, rel=1e-6)
    total, endpoint_again = reconstruction_loss(zero, contraction, config)
    assert endpoint_again.item() == pytest.approx(endpoint.item())
    assert total.item() == pytest.approx(endpoint.item() + 2.0 * jacobian.item())
    shear = torch.zeros_like(contraction)
    shear[:, 0] = 0.3 * _points()[:, 1]  # di = 0.3 j: det J = 1, a large endpoint error
    endpoint_shear, jacobian_shear = flow_error(zero, shear, config)
    assert jacobian_shear.item() == pytest.approx(0.0, abs=1e-12)
    assert endpoint_shear.item() > 0.5


def test_the_jacobian_term_pulls_a_flow_towards_the_true_volume_change():
    """Minimising the det J term alone from a zero flow contracts it towards the target's volume ratio."""
    config = replace(SynthConfig.tiny(), jacobian_weight=1.0, motion_balanced=False, motion_threshold_vox=0.0)
    target = -0.2 * _points().float()
    predicted = torch.zeros_like(target, requires_grad=True)
    optimizer = torch.optim.Adam([predicted], lr=0.05)
    start = flow_error(predicted, target, config)[1].item()
    for _ in range(60):
        optimizer.zero_grad()
        flow_error(predicted, target, config)[1].backward()
        optimizer.step()
    from CardiacMotionAtlasLib.geometry.warp import jacobian_determinant_voxels

    with torch.no_grad():
        assert flow_error(predicted, target, config)[1].item() < 0.1 * start
        assert float(jacobian_determinant_voxels(predicted).mean()) < 0.75  # truth 0.512, start 1


def test_cvae_loss_uses_the_balanced_error():
    config = replace(SynthConfig.tiny(), kl_free_nats=0.0, jacobian_weight=0.0, motion_balanced=True)
    target = _ball_flow(2.0, 2.0).float()
    predicted = torch.zeros_like(target)
    mu, logvar = torch.zeros(1, config.latent_dim), torch.zeros(1, config.latent_dim)
    total, mse, _ = cvae_loss(predicted, target, mu, logvar, config)
    expected, _ = flow_error(predicted, target, config)
    assert mse.item() == pytest.approx(expected.item())
    assert total.item() == pytest.approx(config.recon_weight * expected.item())


def test_the_tiled_latent_is_one_global_code_and_both_layouts_reload(synth_pairs, tmp_path):
    """Tiled: the latent enters the decoder as one value per channel (no per-position weights); the layout
    travels in the checkpoint and both layouts reload to the same samples."""
    from CardiacMotionAtlasLib.synthesis import load_synthesis
    from CardiacMotionAtlasLib.synthesis.sample import sample_flows
    from CardiacMotionAtlasLib.synthesis.train import train_cvae, train_flow_estimator

    base = replace(SynthConfig.tiny(), cvae_steps=2, checkpoint_every=0)
    estimator = train_flow_estimator(synth_pairs, base, steps=2, device="cpu")
    latents = torch.randn(2, base.latent_dim, generator=torch.Generator().manual_seed(0))
    es = torch.as_tensor(synth_pairs[0].es)
    coarse = base.working_size // 2 ** base.levels
    for tiled in (True, False):
        config = replace(base, tiled_latent=tiled)
        trained = train_cvae(synth_pairs, estimator, config, checkpoint_path=tmp_path / f"{tiled}.pt", device="cpu")
        weight = trained.model.cvae.from_latent.weight
        assert weight.shape == (config.cvae_channels[-1] * (1 if tiled else coarse ** 3), config.latent_dim)
        loaded = load_synthesis(tmp_path / f"{tiled}.pt", device="cpu")
        assert loaded.config.tiled_latent is tiled
        assert torch.equal(sample_flows(loaded, es, latents), sample_flows(trained, es, latents))
