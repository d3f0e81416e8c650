"""The systole-conditioned CVAE: a 3D flow field generator conditioned at every scale on the frozen
PWC pyramid's features of the ES frame (Zuler et al.).

Encoder: ``[flow / flow_scale_vox, frame]`` -> stride-2 convolutions; after each, the matching pyramid
level is concatenated; a linear layer gives the posterior ``N(mu, diag(exp(logvar)))`` of the latent.
Conditional prior (``SynthConfig.conditional_prior``): the same convolution stack on the frame alone,
global averages of every level's channels (volume-like cues: how much blood, how much muscle), the
coarsest level in place, and a small MLP give ``p(z | frame) = N(mu_p, diag(exp(logvar_p)))``; the KL is taken to it (not to ``N(0, I)``), so the
latent is free to carry what the frame does not tell (e.g. how strongly this heart contracts), and
sampling maps standard-normal draws ``e`` to ``z = mu_p + exp(logvar_p / 2) * e``. Its last layer starts
at zero, so an untrained prior is exactly ``N(0, I)``.
Decoder (mirror): latent -> coarsest grid, concatenate the pyramid level, transposed convolution up one
level (its channels scaled and shifted by the latent, FiLM), ... and at full size the frame itself; a
final convolution gives the flow (working voxels). By default (``decoder_frame_skips``) every decoder level
also sees a trainable encoder of the frame (a conditional U-Net: the frozen pyramid alone left the decoder
unable to fit the training hearts' motion), and (``coarse_to_fine_flow``) every level below full size
predicts a flow that the next level refines (the full-size flow = upsampled coarse flows + corrections).
Amplitude coordinate (``SynthConfig.amplitude_latent``): latent dimension 0 is the motion-scale
augmentation's known factor, standardised (:func:`amplitude_coordinate`); in training the decoder receives
it in place of the posterior draw, the posterior's ``mu[:, 0]`` is regressed onto it (its estimate for a
given flow) and it leaves the KL; its prior is the augmentation's standardised law ``N(0, 1)`` whatever
the frame, so ``z_0 = 0`` decodes the frame's own (unscaled) motion and moving along ``z_0`` scales the
contraction by ``1 + z_0 * motion_scale / sqrt(3)``. With ``amplitude_lvef`` the coordinate is instead
the LVEF implied by the (scaled) training flow, standardised (:func:`lvef_coordinate`), and its prior
``N(mu_p0(frame), sd_p0(frame)^2)`` is learned (Gaussian likelihood of the known coordinate): the
conditional prior, with its global (volume-like) features of the frame, predicts how strongly this heart
contracts, and sampling spreads around it by the learned uncertainty.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .config import SynthConfig
from .flow_loss import reconstruction_loss
from .pyramid import FeaturePyramid, upsample_flow


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor, prior_mu: Optional[torch.Tensor] = None,
                     prior_logvar: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Elementwise ``KL(N(mu, exp(logvar)) || N(prior_mu, exp(prior_logvar)))`` (nats), ``(N, latent_dim)``;
    the prior is ``N(0, I)`` when not given."""
    if prior_mu is None:
        prior_mu = torch.zeros_like(mu)
    if prior_logvar is None:
        prior_logvar = torch.zeros_like(logvar)
    return 0.5 * (prior_logvar - logvar + (logvar.exp() + (mu - prior_mu).pow(2)) / prior_logvar.exp() - 1.0)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor, prior_mu: Optional[torch.Tensor] = None,
                  prior_logvar: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``KL(posterior || prior)`` averaged over latent dimensions and batch (nats per dimension); the prior
    is ``N(0, I)`` when not given; exactly 0 when the two are equal."""
    return kl_per_dimension(mu, logvar, prior_mu, prior_logvar).mean()


def amplitude_coordinate(scale: torch.Tensor, motion_scale: float) -> torch.Tensor:
    """The standardised amplitude coordinate ``(s - 1) / (motion_scale / sqrt(3))`` of motion-scale factors
    ``s`` (uniform in ``[1 - motion_scale, 1 + motion_scale]``: unit variance); 0 where ``motion_scale`` is 0."""
    if motion_scale <= 0:
        return torch.zeros_like(scale)
    return (scale - 1.0) * (3.0 ** 0.5 / motion_scale)


LVEF_CENTRE, LVEF_SPREAD = 50.0, 15.0
"""Standardisation of the LVEF coordinate (%): ``(LVEF - 50) / 15``."""


def lvef_coordinate(masks_es: torch.Tensor, flow_vox: torch.Tensor) -> torch.Tensor:
    """``(N,)`` standardised LVEF ``(EF - 50) / 15`` implied by voxel pull flows ``(N, 3, ...)`` for the ES
    LV masks ``(N, C, ...)`` (channel 0 the blood pool): ``EF = 1 - V_ES / V_ED``, ``V_ED`` the blood pool
    pulled by the flow (trilinear), without gradients."""
    from ..geometry.warp import warp

    with torch.no_grad():
        blood = masks_es[:, :1].to(flow_vox.dtype)
        es = blood.flatten(1).sum(1)
        ed = warp(blood, flow_vox).flatten(1).sum(1).clamp_min(1.0)
        ef = 100.0 * (1.0 - es / ed)
    return (ef - LVEF_CENTRE) / LVEF_SPREAD


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1)


def _strided_encoder(in_channels: int, channels: Tuple[int, ...], pyramid: Tuple[int, ...]) -> nn.ModuleList:
    """One stride-2 block per level (halving the grid); from level 1 on, the feature pyramid's previous
    level is concatenated to the input."""
    blocks, c_in = nn.ModuleList(), in_channels
    for level, c in enumerate(channels):
        extra = pyramid[level - 1] if level > 0 else 0
        blocks.append(nn.Sequential(nn.Conv3d(c_in + extra, c, 3, stride=2, padding=1), _act(),
                                    nn.Conv3d(c, c, 3, padding=1), _act()))
        c_in = c
    return blocks


class ConditionalFlowVAE(nn.Module):
    """CVAE over working-grid voxel flows, conditioned by pyramid features (``pyramid_channels``)."""

    def __init__(self, config: SynthConfig) -> None:
        super().__init__()
        config.validate()
        self.flow_scale = float(config.flow_scale_vox)
        self.latent_dim = int(config.latent_dim)
        pyr, ch = tuple(config.pyramid_channels), tuple(config.cvae_channels)
        self.coarse = config.working_size // 2 ** config.levels
        self.encoder = _strided_encoder(4, ch, pyr)
        flat = (ch[-1] + pyr[-1]) * self.coarse ** 3
        self.posterior = nn.Linear(flat, 2 * self.latent_dim)
        self.conditional_prior = bool(config.conditional_prior)
        self.amplitude_latent = bool(config.amplitude_latent)
        self.amplitude_lvef = self.amplitude_latent and bool(config.amplitude_lvef)
        if self.conditional_prior:
            self.prior_encoder = _strided_encoder(1, ch, pyr)
            pooled = sum(ch) + sum(pyr)  # one global average per channel of every level (volume-like cues)
            hidden = max(2 * self.latent_dim, 16)
            # ``prior_pooled_only``: the global averages alone, without the coarsest level in place (whose
            # thousands of position-specific inputs let the head tell the few training hearts apart by pose)
            self.prior_pooled_only = bool(config.prior_pooled_only)
            inputs = pooled + (0 if self.prior_pooled_only else flat)
            self.prior_head = nn.Sequential(nn.Linear(inputs, hidden), _act(), nn.Linear(hidden, 2 * self.latent_dim))
            nn.init.zeros_(self.prior_head[-1].weight)
            nn.init.zeros_(self.prior_head[-1].bias)
        # tiled (default): the latent is one global code broadcast over the coarsest grid, so where the flow
        # moves comes from the frame's features (translation-equivariant convolutions) and not from a
        # position-specific template that cannot follow a heart of another shape or pose
        self.tiled_latent = bool(config.tiled_latent)
        self.from_latent = nn.Linear(self.latent_dim, ch[-1] * (1 if self.tiled_latent else self.coarse ** 3))
        # frame skips (``decoder_frame_skips``): a trainable encoder of the frame whose every level enters the
        # matching decoder level beside the frozen pyramid's (a conditional U-Net); without it the decoder's
        # only view of the anatomy above full size is the frozen pyramid of the flow estimator
        self.frame_skips = bool(config.decoder_frame_skips)
        if self.frame_skips:
            self.frame_encoder = _strided_encoder(1, ch, pyr)
        self.decoder = nn.ModuleList()
        for level in reversed(range(len(ch))):  # level L-1 (coarsest) .. 0
            c_out = ch[level - 1] if level > 0 else ch[0]
            c_in = ch[level] + pyr[level] + (ch[level] if self.frame_skips else 0)
            self.decoder.append(nn.Sequential(nn.ConvTranspose3d(c_in, c_out, 4, stride=2, padding=1),
                                              _act(), nn.Conv3d(c_out, c_out, 3, padding=1), _act()))
        # FiLM: the latent also scales and shifts every decoder level's channels (zero-initialised: identity),
        # a short multiplicative path that lets it set how strongly the frame's motion pattern is applied
        self.film = nn.ModuleList(nn.Linear(self.latent_dim, 2 * (ch[level - 1] if level > 0 else ch[0]))
                                  for level in reversed(range(len(ch))))
        for layer in self.film:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.head = nn.Sequential(nn.Conv3d(ch[0] + 1, ch[0], 3, padding=1), _act(), nn.Conv3d(ch[0], 3, 3, padding=1))
        # coarse to fine (``coarse_to_fine_flow``): every decoder level below full size predicts a flow, the next level
        # adds its correction to it upsampled, so the large displacement (heart translation, wall excursion of up
        # to ~8 voxels) is a fraction of a voxel at the coarse levels, where it is cheap to learn
        self.coarse_to_fine = bool(config.coarse_to_fine_flow)
        if self.coarse_to_fine:
            self.level_heads = nn.ModuleList(nn.Conv3d(ch[level - 1], 3, 3, padding=1)
                                             for level in reversed(range(1, len(ch))))
            for layer in self.level_heads:
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
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

    def prior(self, frame: torch.Tensor, features: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Prior ``(mu_p, logvar_p)``, each ``(N, latent_dim)``, of the latent given the frame: learned when
        ``conditional_prior``, else ``N(0, I)``."""
        if not self.conditional_prior:
            zeros = frame.new_zeros((frame.shape[0], self.latent_dim))
            return zeros, zeros
        mu, logvar = self._learned_prior(frame, features)
        if self.amplitude_latent and not self.amplitude_lvef:  # the amplitude coordinate's law is the augmentation's, N(0, 1) for every frame
            zero = mu.new_zeros(mu.shape[0])
            mu, logvar = with_amplitude(mu, zero), with_amplitude(logvar, zero)
        return mu, logvar

    def _learned_prior(self, frame: torch.Tensor, features: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        x, pooled = frame, []
        for level, block in enumerate(self.prior_encoder):
            if level > 0:
                x = torch.cat([x, features[level - 1]], 1)
            x = block(x)
            pooled.append(x.mean((2, 3, 4)))
        pooled.extend(f.mean((2, 3, 4)) for f in features)
        if not self.prior_pooled_only:
            pooled.append(torch.cat([x, features[-1]], 1).flatten(1))  # and the coarsest level in place
        mu, logvar = self.prior_head(torch.cat(pooled, 1)).chunk(2, dim=1)
        return mu, logvar.clamp(-8.0, 4.0)

    def latent_from_noise(self, noise: torch.Tensor, frame: torch.Tensor,
                          features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Latents ``z = mu_p + exp(logvar_p / 2) * noise`` of the frame's prior for standard-normal
        coordinates ``noise`` ``(N, latent_dim)`` (one frame for all, or one per row)."""
        if noise.dim() != 2 or noise.shape[1] != self.latent_dim:
            raise ValueError(f"latents must be (N, {self.latent_dim}), got {tuple(noise.shape)}")
        if frame.shape[0] not in (1, noise.shape[0]):
            raise ValueError(f"{frame.shape[0]} frames for {noise.shape[0]} latents")
        mu, logvar = self.prior(frame, features)
        return mu + (0.5 * logvar).exp() * noise

    def frame_features(self, frame: torch.Tensor, features: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """The trainable frame encoder's levels (finest first, ``cvae_channels[l]`` channels at ``n / 2^(l+1)``),
        each level after the first also seeing the frozen pyramid's previous level."""
        x, out = frame, []
        for level, block in enumerate(self.frame_encoder):
            if level > 0:
                x = torch.cat([x, features[level - 1]], 1)
            x = block(x)
            out.append(x)
        return out

    def decode(self, latent: torch.Tensor, frame: torch.Tensor, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Flow ``(N, 3, n, n, n)`` (working voxels) for latents ``(N, latent_dim)`` and conditions."""
        if latent.dim() != 2 or latent.shape[1] != self.latent_dim:
            raise ValueError(f"latents must be (N, {self.latent_dim}), got {tuple(latent.shape)}")
        n = latent.shape[0]
        skips = self.frame_features(frame, features) if self.frame_skips else None
        if frame.shape[0] != n:  # one condition for many latents
            frame = frame.expand(n, *frame.shape[1:])
            features = [f.expand(n, *f.shape[1:]) for f in features]
            skips = None if skips is None else [s.expand(n, *s.shape[1:]) for s in skips]
        if self.tiled_latent:
            x = self.from_latent(latent)[..., None, None, None].expand(-1, -1, *(self.coarse,) * 3)
        else:
            x = self.from_latent(latent).view(n, self._channels[-1], self.coarse, self.coarse, self.coarse)
        flow = None  # coarse to fine: the flow so far, in full-size voxels / flow_scale, on the current level's grid
        for index, (block, film) in enumerate(zip(self.decoder, self.film)):
            level = len(self.decoder) - 1 - index
            x = block(torch.cat([x, features[level]] + ([] if skips is None else [skips[level]]), 1))
            scale, shift = film(latent).chunk(2, dim=1)
            x = x * (1.0 + scale[..., None, None, None]) + shift[..., None, None, None]
            if self.coarse_to_fine and level > 0:
                flow = (0.0 if flow is None else upsample_flow(flow) / 2.0) + self.level_heads[index](x)
        out = self.head(torch.cat([x, frame], 1))
        if flow is not None:
            out = out + upsample_flow(flow) / 2.0
        return out * self.flow_scale

    def forward(self, flow_vox: torch.Tensor, frame: torch.Tensor, features: Sequence[torch.Tensor],
                generator: Optional[torch.Generator] = None, amplitude: Optional[torch.Tensor] = None):
        """Reparameterised reconstruction: ``(flow, mu, logvar)``. ``amplitude`` ``(N,)`` (with
        ``amplitude_latent``): the known amplitude coordinate, decoded in place of the draw of dimension 0."""
        mu, logvar = self.encode(flow_vox, frame, features)
        if generator is None:
            noise = torch.randn_like(mu)
        else:
            noise = torch.randn(mu.shape, generator=generator, device=generator.device).to(mu.device, mu.dtype)
        latent = mu + noise * (0.5 * logvar).exp()
        if self.amplitude_latent and amplitude is not None:
            latent = with_amplitude(latent, amplitude)
        return self.decode(latent, frame, features), mu, logvar


def with_amplitude(latent: torch.Tensor, amplitude: torch.Tensor) -> torch.Tensor:
    """``latent`` ``(N, D)`` with dimension 0 replaced by ``amplitude`` ``(N,)`` (differentiable in the rest)."""
    keep = torch.ones_like(latent)
    keep[:, 0] = 0.0
    put = torch.zeros_like(latent)
    put[:, 0] = amplitude.to(latent)
    return latent * keep + put


def cvae_loss(predicted: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
              config: SynthConfig, kl_scale: float = 1.0, prior_mu: Optional[torch.Tensor] = None,
              prior_logvar: Optional[torch.Tensor] = None,
              masks_es: Optional[torch.Tensor] = None,
              amplitude: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, mse, kl)``: ``recon_weight * R + kl_scale * kl_weight * KL``. ``R`` is
    :func:`.flow_loss.reconstruction_loss` (squared endpoint error ``|w - w_true|^2`` in working voxels^2,
    balanced between moving and static voxels, plus the weighted local-volume (det J) error); ``mse`` the
    endpoint part alone; the KL is to the prior ``(prior_mu, prior_logvar)`` (``N(0, I)`` when not given);
    ``kl_scale`` in [0, 1] is the KL annealing factor; ``masks_es`` (ES LV masks) enable the implied-volume
    term (``config.index_weight``). ``amplitude`` ``(N,)`` with ``config.amplitude_latent``: latent
    dimension 0 leaves the KL and ``amplitude_weight * (mu_0 - amplitude)^2`` (batch mean) is added."""
    recon, mse = reconstruction_loss(predicted, target, config, masks_es)
    extra = torch.zeros((), device=mu.device, dtype=mu.dtype)
    if config.amplitude_latent and amplitude is not None:
        extra = float(config.amplitude_weight) * (mu[:, 0] - amplitude.to(mu)).pow(2).mean()
        if config.amplitude_lvef and prior_mu is not None:  # the prior predicts it from the frame
            nll = 0.5 * ((amplitude.to(mu) - prior_mu[:, 0]).pow(2) / prior_logvar[:, 0].exp() + prior_logvar[:, 0])
            extra = extra + float(config.amplitude_weight) * nll.mean()
        if mu.shape[1] == 1:  # the whole latent is the supervised amplitude: no KL
            return config.recon_weight * recon + extra, mse, torch.zeros((), device=mu.device, dtype=mu.dtype)
        mu, logvar = mu[:, 1:], logvar[:, 1:]
        prior_mu = None if prior_mu is None else prior_mu[:, 1:]
        prior_logvar = None if prior_logvar is None else prior_logvar[:, 1:]
    kl = kl_divergence(mu, logvar, prior_mu, prior_logvar)
    if prior_mu is None and prior_logvar is None:
        fit_prior = torch.zeros((), device=mu.device, dtype=mu.dtype)
        to_posterior = kl_per_dimension(mu, logvar)
    else:  # the posterior is pulled towards the (fixed) prior, the prior towards the (fixed) posterior:
        # together the gradients of KL(q || p); the free bits below apply to the posterior's pull only
        fit_prior = kl_divergence(mu.detach(), logvar.detach(), prior_mu, prior_logvar)
        to_posterior = kl_per_dimension(mu, logvar, None if prior_mu is None else prior_mu.detach(),
                                        None if prior_logvar is None else prior_logvar.detach())
    penalty = to_posterior.mean()
    if config.kl_free_nats > 0:  # free bits: per-dimension batch-mean KL floored at kl_free_nats
        penalty = torch.clamp(to_posterior.mean(0), min=config.kl_free_nats).mean()
    penalty = penalty + fit_prior
    return config.recon_weight * recon + kl_scale * config.kl_weight * penalty + extra, mse, kl


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


__all__ = ["ConditionalFlowVAE", "SynthesisModel", "amplitude_coordinate", "lvef_coordinate", "cvae_loss", "kl_divergence",
           "kl_per_dimension", "with_amplitude"]
