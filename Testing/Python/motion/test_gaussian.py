"""The DVF posterior: low-rank + diagonal Gaussian entropy and sampling against closed forms."""

from __future__ import annotations

import math

import torch
from torch.distributions import LowRankMultivariateNormal, MultivariateNormal

from CardiacMotionAtlasLib.motion.gaussian import sample_field, voxel_covariance, voxel_entropy


def _params(rank: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    low_rank = torch.randn(2, 3 * rank, 2, 3, 4, generator=generator, dtype=torch.float64)
    log_variance = torch.randn(2, 3, 2, 3, 4, generator=generator, dtype=torch.float64) - 1.0
    return low_rank, log_variance


def test_entropy_matches_the_closed_form():
    low_rank, log_variance = _params(rank=2)
    entropy = voxel_entropy(low_rank, log_variance)
    factor = low_rank.reshape(2, 2, 3, 2, 3, 4).permute(0, 3, 4, 5, 2, 1)  # (N, z, y, x, 3, r)
    reference = LowRankMultivariateNormal(torch.zeros(2, 2, 3, 4, 3, dtype=torch.float64), factor,
                                          log_variance.exp().permute(0, 2, 3, 4, 1)).entropy()
    assert torch.allclose(entropy, reference, atol=1e-10)
    covariance = voxel_covariance(low_rank, log_variance)
    explicit = 0.5 * torch.logdet(2 * math.pi * math.e * covariance)
    assert torch.allclose(entropy, explicit, atol=1e-9)
    wider = voxel_entropy(low_rank * 2.0, log_variance)
    assert torch.all(wider > entropy)


def test_entropy_without_low_rank_is_diagonal():
    _, log_variance = _params(rank=1)
    empty = torch.zeros(2, 0, 2, 3, 4, dtype=torch.float64)
    diagonal = MultivariateNormal(torch.zeros(3, dtype=torch.float64),
                                  torch.diag_embed(log_variance.exp().permute(0, 2, 3, 4, 1))).entropy()
    assert torch.allclose(voxel_entropy(empty, log_variance), diagonal, atol=1e-10)


def test_samples_have_the_posterior_covariance():
    low_rank, log_variance = _params(rank=1, seed=1)
    low_rank, log_variance = low_rank[:1, :, :1, :1, :1], log_variance[:1, :, :1, :1, :1]
    mean = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64).view(1, 3, 1, 1, 1)
    generator = torch.Generator().manual_seed(5)
    samples = torch.stack([sample_field(mean, low_rank, log_variance, generator)[0, :, 0, 0, 0]
                           for _ in range(20000)])
    expected = voxel_covariance(low_rank, log_variance)[0, 0, 0, 0]
    assert torch.allclose(samples.mean(0), mean.view(3), atol=0.05)
    assert torch.allclose(torch.cov(samples.T), expected, atol=0.05 * float(expected.abs().max()) + 0.01)


def test_chain_drift_variance_is_a_brownian_bridge():
    """Forward and backward chains that differ by d everywhere: variance |d|^2 / (3 n) t (n - t) / n per
    component (mm^2), zero at ED, largest mid-cycle; chains that agree give no drift variance."""
    import numpy as np

    from CardiacMotionAtlasLib.motion.estimate import chain_drift_variance

    n, shape = 6, (2, 5, 5)
    ijk_to_ras = np.diag([2.0, 2.0, 8.0, 1.0])
    forward = torch.zeros(n, 3, *shape)
    forward[:, 0] = 1.5  # voxels along i = 3 mm
    fields = {"ed_to_t_forward": forward, "ed_to_t_backward": torch.zeros_like(forward)}
    variance = chain_drift_variance(fields, n, shape, ijk_to_ras)
    t = np.arange(n)
    expected = 9.0 / (3 * n) * t * (n - t) / n
    assert variance.shape == (n, *shape)
    assert np.allclose(variance[:, 1, 2, 2], expected, rtol=1e-5)
    assert variance[0].max() == 0 and np.argmax(variance[:, 0, 0, 0]) == n // 2
    same = chain_drift_variance({"ed_to_t_forward": forward, "ed_to_t_backward": forward}, n, shape, ijk_to_ras)
    assert np.count_nonzero(same) == 0
