"""CardioMorphNet: FeatNet + recurrent VAE (ConvLSTM RecNet) + SegNet + DeformNet.

One pass over a sequence ``(T, 1, z, y, x)`` (ED first) gives, for every step ``t-1 -> t``, a Gaussian
posterior over the stationary velocity of the frame-to-frame DVF (mean, low-rank factor ``V_t``,
per-voxel ``sigma^2_t``; covariance ``V V^T + diag(sigma^2)``) on the half in-plane resolution grid.
A velocity (mean or posterior sample) is integrated by scaling and squaring (so each step and its
inverse, from ``-v``, are diffeomorphic), upsampled to the image grid, and chained into ED -> t and
t -> ED fields. SegNet (a 3D U-Net, frozen after its own training stage) gives pseudo-labels per frame.
:class:`TrainedMotion` (model + config + calibration + preprocessing record) and the ED-first frame order
live here too, below ``train``/``estimate``/``intervals``, so those import them without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..geometry.warp import integrate_velocity
from ..training.loop import TrainingResult
from .config import MotionConfig
from .data import N_CLASSES, MotionSequence
from .fields import chain_fields, closed_chain_fields, upsample_in_plane
from .gaussian import sample_field
from .networks import ConvLSTMCell, FeatNet, GaussianHead, ImageDecoder, UNet3D


@dataclass
class SequencePosterior:
    """DeformNet's output for the steps ``t-1 -> t`` (``T-1`` rows), half in-plane resolution, voxels of
    that grid: ``mean``/``log_variance`` ``(T-1, 3, z, y/2, x/2)``, ``low_rank`` ``(T-1, 3 rank, ...)``;
    plus the recurrent VAE's terms (``latent_kl`` scalar, ``reconstruction`` ``(T, 1, z, y, x)``)."""

    mean: torch.Tensor
    low_rank: torch.Tensor
    log_variance: torch.Tensor
    latent_kl: torch.Tensor
    reconstruction: torch.Tensor


class CardioMorphNet(nn.Module):
    """The four networks of CardioMorphNet (see the module docstring)."""

    def __init__(self, config: MotionConfig) -> None:
        super().__init__()
        c = config.validate()
        self.config = c
        self.segnet = UNet3D(1, N_CLASSES, c.seg_channels)
        self.featnet = FeatNet(c.feat_channels)
        self.prior = GaussianHead(c.hidden_channels, c.latent_channels)
        self.posterior = GaussianHead(c.feat_channels + c.hidden_channels, c.latent_channels)
        self.decoder = ImageDecoder(c.latent_channels + c.hidden_channels, c.feat_channels)
        self.recnet = ConvLSTMCell(c.feat_channels + c.latent_channels, c.hidden_channels)
        deform_in = 2 + 2 * c.feat_channels + c.latent_channels + c.hidden_channels
        self.shape_inputs = bool(c.shape_inputs and c.uses_segnet)
        if self.shape_inputs:
            deform_in += 2 * N_CLASSES
        self.out_channels = 3 + 3 * c.rank + 3
        self.deformnet = UNet3D(deform_in, self.out_channels, c.deform_channels)
        head = self.deformnet.head
        nn.init.normal_(head.weight, std=1e-4)  # start from (almost) the identity, small variances
        nn.init.zeros_(head.bias)
        with torch.no_grad():
            head.bias[3 + 3 * c.rank:] = -3.0
            head.bias[3: 3 + 3 * c.rank] = 0.02

    # ------------------------------------------------------------------ SegNet
    def segment(self, images: torch.Tensor) -> torch.Tensor:
        """SegNet logits ``(T, 4, z, y, x)`` of ``(T, 1, z, y, x)`` volumes."""
        return self.segnet(images)

    # ------------------------------------------------------------------ FeatNet + RecNet + DeformNet
    def posterior_over_steps(self, images: torch.Tensor, generator: Optional[torch.Generator] = None,
                             sample_latent: bool = True) -> SequencePosterior:
        """Run FeatNet, the recurrent VAE and DeformNet over a sequence ``(T, 1, z, y, x)``, ED first."""
        if images.shape[0] < 2:
            raise ValueError(f"CardioMorphNet needs >= 2 frames, got {images.shape[0]}")
        features = self.featnet(images)  # (T, F, z, y/2, x/2)
        h, c = self.recnet.initial_state(features[:1])
        contexts: List[torch.Tensor] = []
        kls, recons = [], []
        for t in range(images.shape[0]):
            feat = features[t: t + 1]
            mean_p, log_var_p = self.prior(h)
            mean_q, log_var_q = self.posterior(torch.cat([feat, h], 1))
            if sample_latent:
                noise = torch.randn(mean_q.shape, device=mean_q.device, dtype=mean_q.dtype, generator=generator)
                z = mean_q + (0.5 * log_var_q).exp() * noise
            else:
                z = mean_q
            kls.append(0.5 * (log_var_p - log_var_q + (log_var_q.exp() + (mean_q - mean_p) ** 2)
                              / log_var_p.exp() - 1.0).sum(1).mean())
            recons.append(self.decoder(torch.cat([z, h], 1), images.shape[2:]))
            contexts.append(torch.cat([z, h], 1))
            h, c = self.recnet(torch.cat([feat, z], 1), (h, c))
        small = F.interpolate(images, size=features.shape[2:], mode="trilinear", align_corners=False)
        context = torch.cat(contexts[1:], 0)
        parts = [small[:-1], small[1:], features[:-1], features[1:], context]
        if self.shape_inputs:  # SegNet is frozen while DeformNet trains: no gradient into it
            with torch.no_grad():
                probs = F.softmax(self.segment(images), 1)
            probs = F.adaptive_avg_pool3d(probs, features.shape[2:])
            parts += [probs[:-1], probs[1:]]
        inputs = torch.cat(parts, 1)
        out = self.deformnet(inputs)
        rank = self.config.rank
        bound = self.config.max_velocity
        mean = bound * torch.tanh(out[:, :3] / bound)
        low_rank = out[:, 3: 3 + 3 * rank]
        log_variance = out[:, 3 + 3 * rank:].clamp(min=self.config.min_log_variance, max=4.0)
        return SequencePosterior(mean, low_rank, log_variance, torch.stack(kls).mean(), torch.cat(recons))

    def step_velocities(self, posterior: SequencePosterior, sample: bool,
                        generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Velocities ``(T-1, 3, z, y/2, x/2)``: the posterior mean or one reparameterised sample."""
        if not sample:
            return posterior.mean
        return sample_field(posterior.mean, posterior.low_rank, posterior.log_variance, generator)

    def fields(self, velocities: torch.Tensor, shape_zyx, closed: bool = False) -> Dict[str, torch.Tensor]:
        """Full-resolution voxel fields from step velocities: ``forward`` ``u_{t-1->t}`` and ``backward``
        ``u_{t->t-1}`` ``(T-1, 3, ...)``, ``ed_to_t`` ``u_{0->t}`` and ``t_to_ed`` ``u_{t->0}`` ``(T, 3, ...)``.
        ``closed``: the last position is ED again (a cyclic sequence with ED appended); ``ed_to_t`` /
        ``t_to_ed`` then combine the chains from both EDs and the forward / backward chains are returned
        too (:func:`~.fields.closed_chain_fields`)."""
        steps = self.config.integration_steps
        forward = upsample_in_plane(integrate_velocity(velocities, steps), shape_zyx)
        backward = upsample_in_plane(integrate_velocity(-velocities, steps), shape_zyx)
        if closed:
            return {"forward": forward, "backward": backward, **closed_chain_fields(forward, backward)}
        ed_to_t, t_to_ed = chain_fields(forward, backward)
        return {"forward": forward, "backward": backward, "ed_to_t": ed_to_t, "t_to_ed": t_to_ed}



@dataclass
class TrainedMotion:
    """A trained (or loaded) CardioMorphNet: config, networks (eval mode, frozen), device, checkpoint."""

    config: MotionConfig
    model: CardioMorphNet
    device: torch.device
    checkpoint_path: Optional[Path] = None
    result: Optional[TrainingResult] = None
    calibration: Optional[Dict[str, float]] = None  # per-index scale of the interval sds (>= 1)
    preprocessing: Optional[Dict[str, Any]] = None  # how inputs must be prepared (see .preprocessing)


def frame_order(sequence: MotionSequence) -> List[int]:
    """Frame indices starting at ED and following the cycle."""
    n = sequence.n_frames
    return [(sequence.ed_frame + k) % n for k in range(n)]


def sequence_tensors(sequence: MotionSequence, config: MotionConfig, device):
    """``(images (T, 1, z, Y, X), {position in ED-first order: labels (1, z, Y, X)})`` padded, ED first."""
    order = frame_order(sequence)
    images = sequence.image_tensor(config.levels, device)[order]
    labels = {k: sequence.label_tensor(f, config.levels, device) for k, f in enumerate(order) if f in sequence.labels}
    return images, labels

__all__ = ["CardioMorphNet", "SequencePosterior", "TrainedMotion", "frame_order", "sequence_tensors"]
