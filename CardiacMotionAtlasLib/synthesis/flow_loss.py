"""Reconstruction error of generated flows that sees the heart and its volume changes.

The CVAE's old loss was the squared endpoint error averaged over the whole working cube:

* nothing told the decoder how volume changes locally: the blood pool shrinks (how much is the ejection
  fraction) while the myocardium keeps its volume (det J = 1). A small endpoint error spread over the wall
  still adds or removes muscle (+8 % myocardial volume). The Jacobian term compares the local volume
  ratio ``det(I + grad w)`` of the generated flow with the training flow's in the moving region;
* the heart is a few percent of the cube, so a flow that barely moves the heart scores almost as well as
  the true one. ``motion_balanced`` averages the error over *moving* voxels and over *static* voxels
  separately and weights the two equally (the split comes from the training flow itself: no labels).
  Off by default: on the phantom the prior then stopped telling subjects apart.

* the implied indices themselves: the benchmark (and a user) reads a sample's LV ejection fraction and
  myocardial volume change from the ES labels pulled by the flow, and a small endpoint error that is
  biased (every flow a little too short) shifts them systematically. ``index_weight`` adds the squared
  relative error of the pulled ES masks' volumes (LV blood pool: the generated ED volume, hence the
  implied EF; LV myocardium: its volume change) against the same masks pulled by the training flow
  (:func:`index_error`; needs the training pairs' ES labels, skipped without them).

Flows are working-grid voxel pull flows ``(N, 3, z, y, x)`` (``ED(p) = ES(p + w(p))``), so
``det(I + grad w)`` at an ED voxel is the ES/ED volume ratio of the material there.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ..geometry.warp import jacobian_determinant_voxels, warp
from .config import SynthConfig


def motion_mask(target_vox: torch.Tensor, threshold_vox: float) -> torch.Tensor:
    """``(N, 1, z, y, x)`` boolean mask of voxels where the training flow moves more than ``threshold_vox``
    working voxels, dilated by one voxel (the moving heart and its border)."""
    moving = (target_vox.pow(2).sum(1, keepdim=True) > threshold_vox ** 2).float()
    return F.max_pool3d(moving, 3, stride=1, padding=1) > 0.5


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``mask`` per sample, then over the batch (0 for an empty mask)."""
    mask = mask.to(values.dtype)
    per_sample = (values * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1.0)
    return per_sample.mean()


def flow_error(predicted: torch.Tensor, target: torch.Tensor, config: SynthConfig) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(endpoint, jacobian)`` errors of predicted voxel flows against training flows (both
    ``(N, 3, z, y, x)``, working voxels).

    ``endpoint``: the squared endpoint error ``|w - w_true|^2`` (voxels^2); with
    ``config.motion_balanced`` the mean of its averages over moving and over static voxels
    (:func:`motion_mask` at ``config.motion_threshold_vox``), else its plain mean over the cube.
    ``jacobian``: the mean over moving voxels of ``(det(I + grad w) - det(I + grad w_true))^2``
    (dimensionless; 0 when ``config.jacobian_weight`` is 0, then not computed)."""
    squared = (predicted - target).pow(2).sum(1, keepdim=True)
    zero = predicted.new_zeros(())
    if not config.motion_balanced and config.jacobian_weight <= 0:
        return squared.mean(), zero
    moving = motion_mask(target, config.motion_threshold_vox)
    endpoint = (0.5 * (_masked_mean(squared, moving) + _masked_mean(squared, ~moving))
                if config.motion_balanced else squared.mean())
    if config.jacobian_weight <= 0:
        return endpoint, zero
    det_error = (jacobian_determinant_voxels(predicted) - jacobian_determinant_voxels(target)).pow(2)
    return endpoint, _masked_mean(det_error[:, None], moving)


def index_error(predicted: torch.Tensor, target: torch.Tensor, masks_es: torch.Tensor, log_ratio: bool = False) -> torch.Tensor:
    """Mean over batch and mask channels of the squared relative volume error
    ``((V(predicted) - V(target)) / V(target))^2`` (dimensionless), ``V(w)`` the volume (voxels) of the ES
    masks ``(N, C, z, y, x)`` (e.g. LV blood pool, LV myocardium; :func:`.data.lv_masks`) pulled by the
    voxel flow ``w`` (trilinear): the generated ED volumes, which set the implied LVEF and the myocardial
    volume change. Channels empty under the target flow count 0.

    ``log_ratio``: ``(log V(predicted) - log V(target))^2`` instead (equal to first order). When one
    prediction must serve several targets (the motion-scale augmentation: one ES frame, contractions
    scaled by +-40 %), the relative error's minimiser is ``E[1/V] / E[1/V^2]``, below the mean volume
    (implied LVEF 1.5-3 points low for hearts of 45-70 %); the log ratio's is the geometric mean (0.5
    point)."""
    masks_es = masks_es.to(predicted.dtype)
    volume = warp(masks_es, predicted).flatten(2).sum(2)
    with torch.no_grad():
        reference = warp(masks_es, target).flatten(2).sum(2)
    valid = (reference > 0.5).to(predicted.dtype)
    if log_ratio:
        relative = torch.log(volume.clamp_min(0.5)) - torch.log(reference.clamp_min(0.5))
    else:
        relative = (volume - reference) / reference.clamp_min(1.0)
    return (relative.pow(2) * valid).sum() / valid.sum().clamp_min(1.0)


def reconstruction_loss(predicted: torch.Tensor, target: torch.Tensor, config: SynthConfig,
                        masks_es: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(endpoint + jacobian_weight * jacobian [+ index_weight * index], endpoint)`` of :func:`flow_error`
    and :func:`index_error` (the latter only with ``masks_es`` and ``config.index_weight`` > 0): the term
    the CVAE minimises for its posterior and for its prior draws, and the endpoint part alone for logging."""
    endpoint, jacobian = flow_error(predicted, target, config)
    total = endpoint + config.jacobian_weight * jacobian
    weight = float(config.index_weight)
    if masks_es is not None and weight > 0:
        total = total + weight * index_error(predicted, target, masks_es,
                                             log_ratio=bool(config.index_log_ratio))
    return total, endpoint


__all__ = ["flow_error", "index_error", "motion_mask", "reconstruction_loss"]
