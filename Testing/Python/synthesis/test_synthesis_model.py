"""CVAE, pyramid and estimator: KL, frozen pyramid, cost volume, multi-scale flows, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.errors import CheckpointError
from CardiacMotionAtlasLib.synthesis import SynthConfig, load_synthesis
from CardiacMotionAtlasLib.synthesis.cvae import kl_divergence
from CardiacMotionAtlasLib.synthesis.pyramid import correlation
from CardiacMotionAtlasLib.synthesis.train import model_fingerprint, train_cvae, train_flow_estimator
from CardiacMotionAtlasLib.synthesis.pyramid import downsample_flow, upsample_flow


def test_kl_is_zero_when_the_posterior_equals_the_prior_and_matches_torch_otherwise():
    mu, logvar = torch.zeros(3, 5), torch.zeros(3, 5)
    assert kl_divergence(mu, logvar).item() == 0.0
    generator = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(3, 5, generator=generator), torch.randn(3, 5, generator=generator)
    posterior = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(posterior, prior).mean()
    assert kl_divergence(mu, logvar).item() == pytest.approx(expected.item(), rel=1e-5)
    assert kl_divergence(mu, logvar).item() > 0.1


def test_cvae_loss_weights_and_free_bits():
    from dataclasses import replace

    from CardiacMotionAtlasLib.synthesis.cvae import cvae_loss

    config = replace(SynthConfig.tiny(), kl_free_nats=0.0, motion_balanced=False, jacobian_weight=0.0)
    target = torch.zeros(2, 3, 4, 4, 4)
    predicted = torch.full_like(target, 0.5)  # squared EPE = 3 * 0.25 per voxel
    mu, logvar = torch.zeros(2, 4), torch.zeros(2, 4)
    total, mse, kl = cvae_loss(predicted, target, mu, logvar, config)
    assert mse.item() == pytest.approx(0.75) and kl.item() == 0.0
    assert total.item() == pytest.approx(config.recon_weight * 0.75)
    free = replace(config, kl_free_nats=0.2)
    total_free, _, kl_free = cvae_loss(predicted, target, mu, logvar, free)
    assert kl_free.item() == 0.0  # the reported KL is the true one ...
    assert total_free.item() == pytest.approx(config.recon_weight * 0.75 + config.kl_weight * 0.2)  # ... the penalty is floored


def test_pyramid_weights_do_not_change_during_cvae_training(synth_pairs, synth_config):
    estimator = train_flow_estimator(synth_pairs, synth_config, steps=2, device="cpu")
    before = {k: v.clone() for k, v in estimator.state_dict().items()}
    trained = train_cvae(synth_pairs, estimator, synth_config, device="cpu")
    after = trained.model.estimator.state_dict()
    assert set(before) == set(after)
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]), name
    assert all(not p.requires_grad for p in trained.model.estimator.parameters())
    # ... while the CVAE itself did learn (so the comparison above could have failed)
    torch.manual_seed(synth_config.seed + 1)
    from CardiacMotionAtlasLib.synthesis.cvae import SynthesisModel

    fresh = SynthesisModel(synth_config).cvae.state_dict()
    changed = [k for k, v in trained.model.cvae.state_dict().items() if not torch.equal(v, fresh[k])]
    assert len(changed) > len(fresh) // 2


def test_correlation_peaks_at_the_true_shift():
    generator = torch.Generator().manual_seed(1)
    fixed = torch.randn(1, 6, 8, 8, 8, generator=generator)
    moving = torch.roll(fixed, shifts=(1, -1), dims=(4, 3))  # moving(p + d) = fixed(p) for d = (+1, -1, 0) in (x, y, z)
    cost = correlation(fixed, moving, radius=1)[0, :, 2:6, 2:6, 2:6].mean((1, 2, 3))
    best = int(cost.argmax())
    dz, dy, dx = best // 9 - 1, (best // 3) % 3 - 1, best % 3 - 1
    assert (dx, dy, dz) == (1, -1, 0)


def test_down_and_up_sampling_of_an_affine_flow_is_exact():
    from CardiacMotionAtlasLib.geometry.warp import identity_grid

    points = identity_grid((8, 8, 8))
    matrix = torch.tensor([[0.1, 0.0, 0.05], [0.0, -0.2, 0.0], [0.03, 0.0, 0.1]])
    flow = torch.einsum("ab,nbzyx->nazyx", matrix, points) + torch.tensor([1.0, -2.0, 0.5]).view(1, 3, 1, 1, 1)
    coarse = downsample_flow(flow, 2)
    back = upsample_flow(coarse)
    # fine voxels up to 2 * (4 - 1) = 6 lie inside the coarse grid: exact there (trilinear of affine)
    assert torch.allclose(back[..., :7, :7, :7], flow[..., :7, :7, :7], atol=1e-5)


def test_checkpoint_round_trip_and_resume(trained_synth, synth_pairs, synth_config, tmp_path):
    loaded = load_synthesis(trained_synth.checkpoint_path, device="cpu")
    assert loaded.model_version == trained_synth.model_version
    latents = torch.randn(2, synth_config.latent_dim, generator=torch.Generator().manual_seed(0))
    es = torch.as_tensor(synth_pairs[0].es)
    from CardiacMotionAtlasLib.synthesis.sample import sample_flows

    assert torch.equal(sample_flows(loaded, es, latents), sample_flows(trained_synth, es, latents))
    # an interrupted estimator run resumed from its checkpoint equals an uninterrupted one
    path = tmp_path / "estimator.pt"
    whole = train_flow_estimator(synth_pairs, synth_config, device="cpu")
    from dataclasses import replace

    half = replace(synth_config, checkpoint_every=synth_config.estimator_steps // 2)
    from CardiacMotionAtlasLib.training import CancelToken, TrainingCancelled

    token = CancelToken()

    class StopHalfway:
        def start(self, total, description="", *, initial=0):
            pass

        def update(self, step, **metrics):
            if step == half.estimator_steps // 2:
                token.cancel("test")

        def close(self):
            pass

    with pytest.raises(TrainingCancelled):
        train_flow_estimator(synth_pairs, half, checkpoint_path=path, device="cpu", progress=StopHalfway(), cancel=token)
    resumed = train_flow_estimator(synth_pairs, half, checkpoint_path=path, resume=True, device="cpu")
    for name, tensor in whole.state_dict().items():
        assert torch.allclose(tensor, resumed.state_dict()[name], atol=1e-6), name
    assert model_fingerprint(resumed) == model_fingerprint(whole)
    with pytest.raises(CheckpointError, match="another config"):
        train_flow_estimator(synth_pairs, replace(half, latent_dim=7), checkpoint_path=path, resume=True, device="cpu")
    with pytest.raises(CheckpointError, match="kind"):
        load_synthesis(path)
