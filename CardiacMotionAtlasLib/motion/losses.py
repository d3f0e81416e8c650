"""CardioMorphNet's training objective: negative ELBO + bending energy.

- shape (supervised): cross-entropy + soft Dice between given masks and masks warped by the sampled
  DVFs, both ways between ED and every other labelled frame (ES): ``warp(M_t, u_{0->t})`` vs ``M_0`` and
  ``warp(M_0, u_{t->0})`` vs ``M_t``;
- semi-supervised: ``KL(P_t || warp(P_{t-1}, u_{t->t-1}))`` between SegNet's pseudo-labels at the
  unlabelled frames and the previous frame's masks (given at ED) warped onto them, plus (``anchor_weight``)
  ``KL(P_t || warp(M_0, u_{t->0}))`` of the ED labels carried by the whole chain, which anchors every
  intermediate (diastolic) frame;
- latent KL of the recurrent VAE and the reconstruction (MSE) of ``I_t``;
- bending energy (rho) of the posterior-mean step velocities, and the KL of the DVF posterior to a
  zero-mean isotropic Gaussian prior (its mean term left to the bending energy);
- with ``config.cyclic`` the sequence is closed (ED appended after the last frame, with the ED labels),
  so the shape loss also asks the chained fields to come back to the identity, and every labelled
  frame is also reached by the backward chain from the closing ED (diastolic steps get supervised);
- intensity NCC (off by default: the ablation / intensity-supervised baseline).
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from ..geometry.warp import warp
from .config import MotionConfig
from .data import N_CLASSES
from .fields import bending_energy, local_ncc
from .gaussian import voxel_entropy
from .model import CardioMorphNet

EPS = 1e-6


def one_hot(labels: torch.Tensor) -> torch.Tensor:
    """``(N, z, y, x)`` integer labels -> ``(N, 4, z, y, x)`` float one-hot."""
    return F.one_hot(labels.long(), N_CLASSES).permute(0, 4, 1, 2, 3).float()


def soft_masks(labels: torch.Tensor, blur: int) -> torch.Tensor:
    """One-hot masks averaged over ``(2 blur + 1)^2`` in-plane pixels (``blur=0``: one-hot): warped masks
    with soft edges give the shape loss gradients further than one voxel from the boundaries."""
    hot = one_hot(labels)
    if blur <= 0:
        return hot
    size = 2 * blur + 1
    return F.avg_pool3d(hot, (1, size, size), stride=1, padding=(0, blur, blur), count_include_pad=False)


def shape_loss(probabilities: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0) -> torch.Tensor:
    """Cross-entropy (nats/voxel) + ``dice_weight`` x (1 - mean foreground soft Dice) of warped class
    probabilities ``(N, 4, ...)`` against integer labels ``(N, ...)``."""
    log_p = torch.log(probabilities.clamp_min(EPS))
    ce = F.nll_loss(log_p, target.long())
    if dice_weight <= 0:
        return ce
    hot = one_hot(target)
    dims = (0, 2, 3, 4)
    inter = (probabilities * hot).sum(dims)[1:]
    total = (probabilities.sum(dims) + hot.sum(dims))[1:]
    dice = (2 * inter + 1.0) / (total + 1.0)
    return ce + dice_weight * (1.0 - dice.mean())


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SegNet's loss: cross-entropy + soft Dice of softmax(logits) against integer labels."""
    return shape_loss(F.softmax(logits, 1), target, 1.0)


def posterior_kl(low_rank: torch.Tensor, log_variance: torch.Tensor, prior_std: float) -> torch.Tensor:
    """Per-voxel ``KL(N(m, Sigma) || N(m, prior_std^2 I))`` (nats) ``(N, z, y, x)``:
    ``0.5 (tr Sigma / s^2 - log det Sigma + 3 log s^2 - 3)``, ``log det`` via :func:`voxel_entropy`."""
    variance = prior_std ** 2
    trace = log_variance.exp().sum(1) + (low_rank ** 2).sum(1)
    logdet = 2.0 * voxel_entropy(low_rank, log_variance) - 3.0 * math.log(2.0 * math.pi * math.e)
    return 0.5 * (trace / variance - logdet + 3.0 * math.log(variance) - 3.0)


def sequence_loss(model: CardioMorphNet, images: torch.Tensor, labels: Dict[int, torch.Tensor],
                  config: MotionConfig, generator: Optional[torch.Generator] = None,
                  pseudo: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Negative ELBO + bending energy of one sequence ``(T, 1, z, y, x)`` (ED first) with integer
    ``labels[t]`` ``(1, z, y, x)`` (ED = 0 required when any shape term is on). ``pseudo``: SegNet's
    class probabilities ``(T, 4, ...)`` (computed by the caller with SegNet frozen), or None."""
    if config.cyclic:
        images = torch.cat([images, images[:1]])
        if 0 in labels:
            labels = {**labels, images.shape[0] - 1: labels[0]}
        if pseudo is not None:
            pseudo = torch.cat([pseudo, pseudo[:1]])
    posterior = model.posterior_over_steps(images, generator)
    velocities = model.step_velocities(posterior, sample=True, generator=generator)
    two_sided = config.cyclic and config.two_sided
    fields = model.fields(velocities, images.shape[2:], closed=two_sided)
    zero = images.new_zeros(())
    parts: Dict[str, torch.Tensor] = {}
    shape = zero
    if config.shape_weight > 0 and labels:
        if 0 not in labels:
            raise ValueError("the shape loss needs labels at ED (frame 0 of the sequence)")
        ed = soft_masks(labels[0], config.label_blur)
        terms = []
        # the forward chains from ED (with ``cyclic``, to the closing ED too), and with ``two_sided`` also the
        # backward chains from the closing ED to every labelled frame in between: each step is then
        # supervised through a chain that reaches a labelled frame in either direction (diastole too)
        chains = [("ed_to_t_forward", "t_to_ed_forward"), ("ed_to_t_backward", "t_to_ed_backward")] \
            if two_sided else [("ed_to_t", "t_to_ed")]
        last = images.shape[0] - 1
        for t, mask in labels.items():
            if t == 0:
                continue
            for to_t, to_ed in chains:
                if to_t == "ed_to_t_backward" and t == last:
                    continue  # the identity
                terms.append(shape_loss(warp(soft_masks(mask, config.label_blur), fields[to_t][t: t + 1]),
                                        labels[0], config.dice_weight))
                terms.append(shape_loss(warp(ed, fields[to_ed][t: t + 1]), mask, config.dice_weight))
        if terms:
            shape = torch.stack(terms).mean()
    parts["shape"] = shape
    semi = zero
    if pseudo is not None and config.semi_weight > 0 and config.guidance == "segnet":
        terms = []
        previous = one_hot(labels[0]) if 0 in labels else pseudo[:1]
        ed_hot = previous
        for t in range(1, images.shape[0]):
            current = one_hot(labels[t]) if t in labels else pseudo[t: t + 1]
            if t not in labels:
                warped = warp(previous, fields["backward"][t - 1: t])
                terms.append((current * (torch.log(current.clamp_min(EPS)) - torch.log(warped.clamp_min(EPS))))
                             .sum(1).mean())
                if config.anchor_weight > 0 and 0 in labels:
                    # anchored: the ED labels carried by the whole chain ED -> t against P_t, so the
                    # chain cannot drift away from SegNet's shape at t (frame-to-frame terms only see
                    # one step at a time)
                    anchored = warp(ed_hot, fields["t_to_ed"][t: t + 1])
                    terms.append(config.anchor_weight * (current * (torch.log(current.clamp_min(EPS))
                                                                    - torch.log(anchored.clamp_min(EPS)))).sum(1).mean())
            previous = current
        if terms:
            semi = torch.stack(terms).mean()
    parts["semi"] = semi
    parts["latent_kl"] = posterior.latent_kl
    parts["reconstruction"] = F.mse_loss(posterior.reconstruction, images)
    parts["bending"] = bending_energy(posterior.mean)
    parts["posterior_kl"] = posterior_kl(posterior.low_rank, posterior.log_variance, config.prior_std).mean()
    intensity = zero
    if config.intensity_weight > 0:
        warped = warp(images[1:], fields["forward"])
        intensity = -local_ncc(warped, images[:-1])
    parts["ncc"] = -intensity
    loss = (config.shape_weight * shape + config.semi_weight * semi + config.latent_kl_weight * parts["latent_kl"]
            + config.reconstruction_weight * parts["reconstruction"] + config.bending_weight * parts["bending"]
            + config.posterior_kl_weight * parts["posterior_kl"] + config.intensity_weight * intensity)
    return loss, parts


__all__ = ["one_hot", "posterior_kl", "segmentation_loss", "sequence_loss", "shape_loss"]
