"""Semi-amortised inference: per-subject refinement of DeformNet's posterior mean.

DeformNet amortises the DVF posterior over a cohort; trained on a few subjects with labels at ED and ES
only, its steps barely depend on the images (a short training learns one "contraction" step that keeps
contracting after ES, so the cycle never refills). At inference the subject's own evidence is available:
its ED labels (given, or SegNet's) and SegNet's labels ``S_t`` at every frame. Refinement (as in
semi-amortised variational inference, Kim et al. 2018) starts from the network's posterior mean and
descends, with the networks frozen, the shape terms of the ELBO on that subject only. Every term is the
training's shape loss (cross-entropy + soft Dice of warped soft masks against labels):

- anchored: the ED labels carried by the whole chain to every frame against ``S_t``, and ``S_t`` pulled
  back to ED against the ED labels (both directions, as the supervised shape loss);
- frame to frame (``refine_step_weight``): ``S_{t-1}`` (the ED labels at t = 1) warped by each step
  against ``S_t``;
- closure (cyclic models): the chain comes back to the ED labels after the last frame;
- bending energy of the step velocities (rho, as in training), and an L2 penalty
  (``refine_size_weight``) on the correction, which keeps it at zero where no shape gives evidence.

Design choices (documented because the paper has no refinement): SegNet's *hard* labels are the targets
(its soft probabilities spread mass over every class, and a KL against a near one-hot warped mask is
dominated by that spread); the correction lives on a control grid ``refine_coarsening`` times coarser than
DeformNet's (trilinear), so it is smooth by construction; the descent is normalised by the largest
gradient component (with momentum 0.8), so the largest control point moves ``refine_lr`` voxels per step
and the others in proportion to their evidence (Adam's per-element normalisation moved evidence-free
background points just as far, and folded the fields). No intensity term: the refinement stays
shape-guided. The posterior's low-rank factor and variances are kept from the network (only the mean
moves). Velocities are in voxels of DeformNet's half in-plane resolution grid, like the network's outputs.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import torch
import torch.nn.functional as F

from ..geometry.warp import jacobian_determinant_voxels, warp
from .config import MotionConfig
from .fields import bending_energy
from .losses import shape_loss, soft_masks
from .model import CardioMorphNet

FOLD_MARGIN = 0.2  # Jacobian determinants below this are penalised (the fields fold at 0): the previous default
# (it held the ES cavity ~9 ml open on a lofted heart: systole compresses the cavity, and base descent through
# 10 mm slices empties basal voxels, so det J < 0.2 is physical there; estimate_motion passes a lower margin)


def refinement_loss(model: CardioMorphNet, velocities: torch.Tensor, ed_labels: torch.Tensor,
                    pseudo_labels: torch.Tensor, shape_zyx, config: MotionConfig,
                    closed: bool, given_positions: Sequence[int] = (),
                    given_weight: float = 1.0, fold_margin: float = FOLD_MARGIN) -> Dict[str, torch.Tensor]:
    """Terms of the refinement objective for step velocities ``(S, 3, ...)`` of a sequence whose
    positions ``0..S`` are ED first (``closed``: position ``S`` is ED again). ``ed_labels``
    ``(1, z, y, x)`` the ED labels; ``pseudo_labels`` ``(n, z, y, x)`` SegNet's labels of the ``n``
    observed frames (ED first; position 0 is not used). Every term is the training's shape loss
    (cross-entropy + soft Dice of warped soft masks against labels). ``given_positions``: positions whose
    targets are the study's own labels (not SegNet's); with ``given_weight`` != 1 their anchored term is
    a separate term of that weight (the reliable labels count more than the pseudo-labels).
    ``fold_margin``: Jacobian determinants of the ED -> t fields below it are penalised (squared hinge)."""
    # the forward chains only (for a closed cycle they run on to the closing ED): the chains from the closing
    # ED that ``closed=True`` adds are not refined, and computing them every step would double the cost
    fields = model.fields(velocities, shape_zyx, closed=False)
    ed_to_t, t_to_ed = fields["ed_to_t"], fields["t_to_ed"]
    n = pseudo_labels.shape[0]
    blur, dice = config.label_blur, config.dice_weight
    ed_soft = soft_masks(ed_labels, blur)
    frames = pseudo_labels[1:]
    carried = warp(ed_soft.expand(n - 1, -1, -1, -1, -1), t_to_ed[1:n])
    pulled_back = warp(soft_masks(frames, blur), ed_to_t[1:n])
    ed_targets = ed_labels.expand(n - 1, -1, -1, -1)
    given = sorted(p - 1 for p in given_positions if 0 < p < n)
    if given and given_weight != 1.0:
        other = [p for p in range(n - 1) if p not in given]
        anchored = given_weight * (shape_loss(carried[given], frames[given], dice)
                                   + shape_loss(pulled_back[given], ed_targets[given], dice))
        if other:
            anchored = anchored + shape_loss(carried[other], frames[other], dice) \
                + shape_loss(pulled_back[other], ed_targets[other], dice)
    else:
        anchored = shape_loss(carried, frames, dice) + shape_loss(pulled_back, ed_targets, dice)
    previous = torch.cat([ed_labels, pseudo_labels[1: n - 1]])
    step = shape_loss(warp(soft_masks(previous, blur), fields["backward"][: n - 1]), frames, dice)
    terms = {"anchored": anchored, "step": step, "bending": bending_energy(velocities)}
    if closed:
        terms["closure"] = shape_loss(warp(ed_soft, t_to_ed[-1:]), ed_labels, dice)
    # folding: squared hinge on Jacobian determinants below FOLD_MARGIN of the ED -> t fields (the fields the
    # estimate reports), summed over voxels and averaged over frames
    determinant = jacobian_determinant_voxels(ed_to_t[1:n])
    terms["folding"] = F.relu(fold_margin - determinant).pow(2).sum() / max(n - 1, 1)
    return terms


def refine_velocities(model: CardioMorphNet, initial: torch.Tensor, ed_labels: torch.Tensor,
                      pseudo: torch.Tensor, shape_zyx, config: MotionConfig, closed: bool,
                      steps: Optional[int] = None, lr: Optional[float] = None,
                      callback: Optional[Callable[[int, float], None]] = None,
                      given_positions: Sequence[int] = (), given_weight: float = 1.0,
                      fold_margin: float = FOLD_MARGIN, fold_weight: Optional[float] = None) -> torch.Tensor:
    """Refine the posterior-mean step velocities ``initial`` ``(S, 3, ...)`` (see the module docstring)
    for ``steps`` descent steps of at most ``lr`` voxels (defaults ``config.refine_steps`` /
    ``config.refine_lr``; 0 steps returns ``initial``). ``ed_labels`` ``(1, z, y, x)`` integer ED labels;
    ``pseudo`` SegNet's probabilities ``(n, 4, z, y, x)``, ED first (their argmax are the targets).
    ``callback(step, loss)`` after every step. ``given_positions`` / ``given_weight`` / ``fold_margin``: see
    :func:`refinement_loss`; ``fold_weight``: weight of its folding term (default
    ``config.refine_fold_weight``). Returns the refined velocities (detached); the networks
    are not changed."""
    steps = config.refine_steps if steps is None else int(steps)
    if steps <= 0:
        return initial
    lr = config.refine_lr if lr is None else float(lr)
    pseudo_labels = pseudo.detach().argmax(1)
    initial = initial.detach()
    factor = max(int(config.refine_coarsening), 1)
    coarse = tuple(max(-(-int(s) // factor), 2) if s > 1 else 1 for s in initial.shape[2:])
    correction = initial.new_zeros((initial.shape[0], 3, *coarse)).requires_grad_(True)
    momentum = torch.zeros_like(correction)
    weights = {"anchored": 1.0, "step": config.refine_step_weight, "closure": 1.0,
               "bending": config.bending_weight, "size": config.refine_size_weight,
               "folding": config.refine_fold_weight if fold_weight is None else float(fold_weight)}

    def velocities_of(control: torch.Tensor) -> torch.Tensor:
        return initial + F.interpolate(control, size=tuple(initial.shape[2:]), mode="trilinear", align_corners=True)

    with torch.enable_grad():
        for index in range(steps):
            velocities = velocities_of(correction)
            terms = refinement_loss(model, velocities, ed_labels, pseudo_labels, shape_zyx, config, closed,
                                    given_positions, given_weight, fold_margin)
            terms["size"] = (correction ** 2).mean()
            loss = sum(weights[name] * value for name, value in terms.items())
            gradient, = torch.autograd.grad(loss, correction)
            with torch.no_grad():  # normalised by the largest component: moves where the evidence is
                momentum.mul_(0.8).add_(gradient / gradient.abs().amax().clamp_min(1e-12))
                correction.sub_(lr * momentum)
            if callback is not None:
                callback(index + 1, float(loss.detach()))
    return velocities_of(correction).detach()


__all__ = ["refine_velocities", "refinement_loss"]
