"""The DVF posterior: a Gaussian over a field of 3-vectors with covariance ``V V^T + diag(sigma^2)``.

Per voxel ``p`` the factor ``V_t`` has ``rank`` columns of 3-vectors (stored as ``(N, 3 * rank, z, y, x)``,
column ``r`` in channels ``3r .. 3r + 2``) and ``sigma^2`` is per voxel and component ``(N, 3, z, y, x)``.
The low-rank part is local to each voxel, so voxels are independent and the field's entropy is the sum
of the per-voxel ones. Differential entropies are in nats for the units the field is given in (voxels).
"""

from __future__ import annotations

import math
from typing import Optional

import torch


def _factor(low_rank: torch.Tensor) -> torch.Tensor:
    """``(N, 3*r, z, y, x)`` -> ``(N, z, y, x, 3, r)``."""
    n, c = low_rank.shape[:2]
    if c % 3:
        raise ValueError(f"low-rank factor must have 3*rank channels, got {c}")
    return low_rank.reshape(n, c // 3, 3, *low_rank.shape[2:]).permute(0, 3, 4, 5, 2, 1)


def voxel_covariance(low_rank: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """Per-voxel 3x3 covariance ``V_p V_p^T + diag(sigma_p^2)``, shape ``(N, z, y, x, 3, 3)``."""
    variance = log_variance.exp().permute(0, 2, 3, 4, 1)
    cov = torch.diag_embed(variance)
    if low_rank.shape[1]:
        v = _factor(low_rank)
        cov = cov + v @ v.transpose(-1, -2)
    return cov


def voxel_entropy(low_rank: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """Differential entropy (nats) of each voxel's 3D Gaussian, ``(N, z, y, x)``:
    ``0.5 log det(2 pi e Sigma_p)``, with ``log det`` from the matrix determinant lemma
    ``log det(D + V V^T) = log det D + log det(I_r + V^T D^-1 V)``."""
    logdet = log_variance.sum(1)
    if low_rank.shape[1]:
        v = _factor(low_rank)
        inv_var = (-log_variance).exp().permute(0, 2, 3, 4, 1)[..., None]  # (N, z, y, x, 3, 1)
        capacitance = v.transpose(-1, -2) @ (inv_var * v)
        eye = torch.eye(capacitance.shape[-1], device=v.device, dtype=v.dtype)
        logdet = logdet + torch.linalg.slogdet(eye + capacitance)[1]
    return 0.5 * (3 * math.log(2 * math.pi * math.e) + logdet)


def sample_field(mean: torch.Tensor, low_rank: torch.Tensor, log_variance: torch.Tensor,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One reparameterised sample ``mean + V eps_r + sigma * eps_3`` ``(N, 3, z, y, x)``."""
    noise = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
    sample = mean + (0.5 * log_variance).exp() * noise
    rank = low_rank.shape[1] // 3
    if rank:
        eps = torch.randn((mean.shape[0], rank, 1, *mean.shape[2:]), device=mean.device, dtype=mean.dtype,
                          generator=generator)
        columns = low_rank.reshape(mean.shape[0], rank, 3, *mean.shape[2:])
        sample = sample + (columns * eps).sum(1)
    return sample


def gaussian_kl(mean_q: torch.Tensor, log_var_q: torch.Tensor, mean_p: torch.Tensor,
                log_var_p: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean_q, var_q) || N(mean_p, var_p)) (nats)."""
    return 0.5 * (log_var_p - log_var_q + (log_var_q.exp() + (mean_q - mean_p) ** 2) / log_var_p.exp() - 1.0)


__all__ = ["gaussian_kl", "sample_field", "voxel_covariance", "voxel_entropy"]
