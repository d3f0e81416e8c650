"""The systole-conditioned CVAE: a 3D flow field generator conditioned at every scale on the frozen
PWC pyramid's features of the ES frame (Zuler et al.).

Encoder: ``[flow / flow_scale_vox, frame]`` -> stride-2 convolutions; after each, the matching pyramid
level is concatenated; a linear layer gives the posterior ``N(mu, diag(exp(logvar)))`` of the latent.
Decoder (mirror): latent -> coarsest grid, concatenate the pyramid level, transposed convolution up one
level, ... and at full size the frame itself; a final convolution gives the flow (working voxels).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .config import SynthConfig
from .pyramid import FeaturePyramid


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` averaged over latent dimensions and batch (nats per
    dimension); exactly 0 when ``mu = 0`` and ``logvar = 0``."""
    return (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).mean()


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1)


class ConditionalFlowVAE(nn.Module):
    """CVAE over working-grid voxel flows, conditioned by pyramid features (``pyramid_channels``)."""

    def __init__(self, config: SynthConfig) -> None:
        super().__init__()
        config.validate()
        self.flow_scale = float(config.flow_scale_vox)
        self.latent_dim = int(config.latent_dim)
        pyr, ch = tuple(config.pyramid_channels), tuple(config.cvae_channels)
        self.coarse = config.working_size // 2 ** config.levels
        self.encoder = nn.ModuleList()
        c_in = 4
        for level, c in enumerate(ch):
            extra = pyr[level - 1] if level > 0 else 0
            self.encoder.append(nn.Sequential(nn.Conv3d(c_in + extra, c, 3, stride=2, padding=1), _act(),
                                              nn.Conv3d(c, c, 3, padding=1), _act()))
            c_in = c
        flat = (ch[-1] + pyr[-1]) * self.coarse ** 3
        self.posterior = nn.Linear(flat, 2 * self.latent_dim)
        self.from_latent = nn.Linear(self.latent_dim, ch[-1] * self.coarse ** 3)
        self.decoder = nn.ModuleList()
        for level in reversed(range(len(ch))):  # level L-1 (coarsest) .. 0
            c_out = ch[level - 1] if level > 0 else ch[0]
            self.decoder.append(nn.Sequential(nn.ConvTranspose3d(ch[level] + pyr[level], c_out, 4, stride=2, padding=1),
                                              _act(), nn.Conv3d(c_out, c_out, 3, padding=1), _act()))
        self.head = nn.Sequential(nn.Conv3d(ch[0] + 1, ch[0], 3, padding=1), _act(), nn.Conv3d(ch[0], 3, 3, padding=1))
        self._channels = ch

    def encode(self, flow_vox: torch.Tensor, frame: torch.Tensor, features: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mu, logvar)``, each ``(N, latent_dim)``."""
        x = torch.cat([flow_vox / self.flow_scale, frame], 1)
        for level, block in enumerate(self.encoder):
            if level > 0:
                x = torch.cat([x, features[level - 1]], 1)
            x = block(x)
        x = torch.cat([x, features[-1]], 1).flatten(1)
        mu, logvar = self.posterior(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, latent: torch.Tensor, frame: torch.Tensor, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Flow ``(N, 3, n, n, n)`` (working voxels) for latents ``(N, latent_dim)`` and conditions."""
        if latent.dim() != 2 or latent.shape[1] != self.latent_dim:
            raise ValueError(f"latents must be (N, {self.latent_dim}), got {tuple(latent.shape)}")
        n = latent.shape[0]
        if frame.shape[0] != n:  # one condition for many latents
            frame = frame.expand(n, *frame.shape[1:])
            features = [f.expand(n, *f.shape[1:]) for f in features]
        x = self.from_latent(latent).view(n, self._channels[-1], self.coarse, self.coarse, self.coarse)
        for index, block in enumerate(self.decoder):
            level = len(self.decoder) - 1 - index
            x = block(torch.cat([x, features[level]], 1))
        return self.head(torch.cat([x, frame], 1)) * self.flow_scale

    def forward(self, flow_vox: torch.Tensor, frame: torch.Tensor, features: Sequence[torch.Tensor],
                generator: Optional[torch.Generator] = None):
        """Reparameterised reconstruction: ``(flow, mu, logvar)``."""
        mu, logvar = self.encode(flow_vox, frame, features)
        if generator is None:
            noise = torch.randn_like(mu)
        else:
            noise = torch.randn(mu.shape, generator=generator, device=generator.device).to(mu.device, mu.dtype)
        return self.decode(mu + noise * (0.5 * logvar).exp(), frame, features), mu, logvar


def cvae_loss(predicted: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              config: SynthConfig, kl_scale: float = 1.0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, mse, kl)``: ``recon_weight * MSE + kl_scale * kl_weight * KL``. ``MSE`` is the mean over
    voxels of the squared endpoint error ``|w - w_true|^2`` (working voxels^2, i.e. summed over the three
    components); ``kl_scale`` in [0, 1] is the KL annealing factor."""
    mse = (predicted - target).pow(2).sum(1).mean()
    kl = kl_divergence(mu, logvar)
    penalty = kl
    if config.kl_free_nats > 0:  # free bits: per-dimension batch-mean KL floored at kl_free_nats
        per_dim = (0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)).mean(0)
        penalty = torch.clamp(per_dim, min=config.kl_free_nats).mean()
    return config.recon_weight * mse + kl_scale * config.kl_weight * penalty, mse, kl


class SynthesisModel(nn.Module):
    """The frozen flow estimator (whose pyramid conditions) and the CVAE, saved together."""

    def __init__(self, config: SynthConfig) -> None:
        super().__init__()
        from .pyramid import FlowEstimator

        self.estimator = FlowEstimator(config.pyramid_channels, config.search_radius, config.estimator_hidden)
        self.cvae = ConditionalFlowVAE(config)

    @property
    def pyramid(self) -> FeaturePyramid:
        return self.estimator.pyramid

    def condition(self, frame: torch.Tensor) -> List[torch.Tensor]:
        """Pyramid features of a normalised frame, without gradients (the pyramid is frozen)."""
        with torch.no_grad():
            return [f.detach() for f in self.pyramid(frame)]


__all__ = ["ConditionalFlowVAE", "SynthesisModel", "cvae_loss", "kl_divergence"]
