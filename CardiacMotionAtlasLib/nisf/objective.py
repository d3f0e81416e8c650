"""Voxel batches and the NISF++ loss (shared by cohort training and fitting a new subject).

A batch draws ``slices_per_step`` slices, then ``points_per_slice`` (frame, pixel) pairs inside the
modelled box of each: many points per slice keep the gradients of each slice's offsets informative
(about 100 points per slice make them mostly noise).

Loss = ``intensity_weight`` x MSE(PSF-integrated prediction, ``(1 + d) I``) + ``dice_weight`` x soft
Dice (LV BP, LV myo, RV BP) + ``cross_entropy_weight`` x CE on points with labels (labels are the
slice-centre labels, so they are predicted at the voxel centre, without PSF) + the L2 regularisers
+ ``label_consistency`` x the label-intensity consistency of unlabelled points (:mod:`.consistency`; fits
without labels, off in training).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .config import NISFConfig
from .consistency import label_intensity_consistency
from .data import N_CLASSES, SubjectData
from .network import NISFNetwork
from .psf import psf_offsets
from .slices import SliceTable, SubjectParameters


@dataclass
class Batch:
    """``N`` sampled pixels: slice ids ``(N,)``, pixel indices ``ijk`` ``(N, 3)`` (k = 0), phases ``(N,)``,
    normalised intensities ``(N,)`` and labels ``(N,)`` (``-1``: none)."""

    slice_ids: torch.Tensor
    ijk: torch.Tensor
    phases: torch.Tensor
    intensity: torch.Tensor
    labels: torch.Tensor


class SliceBatchSampler:
    """Holds the prepared pixels of every slice of ``subjects`` on ``device`` and draws batches."""

    def __init__(self, subjects: Sequence[SubjectData], device: torch.device, use_labels: bool = True) -> None:
        self.device = device
        self.intensities, self.labels, self.roi_ij, self.phases = [], [], [], []
        for subject in subjects:
            for slice_ in subject.slices:
                self.intensities.append(torch.as_tensor(slice_.intensities, device=device))
                labels = slice_.labels if use_labels else None
                self.labels.append(None if labels is None else torch.as_tensor(labels, device=device).long())
                self.roi_ij.append(torch.as_tensor(slice_.roi_ij, dtype=torch.float32, device=device))
                self.phases.append(torch.as_tensor(slice_.phases, dtype=torch.float32, device=device))
        self.n_slices = len(self.intensities)
        self._labelled_cache: Dict[int, Optional[torch.Tensor]] = {}

    def _labelled_frames(self, slice_id: int) -> Optional[torch.Tensor]:
        """Frames of ``slice_id`` with labels when only some have them (else None); found once per slice."""
        if slice_id not in self._labelled_cache:
            self._labelled_cache[slice_id] = self._find_labelled_frames(slice_id)
        return self._labelled_cache[slice_id]

    def _find_labelled_frames(self, slice_id: int) -> Optional[torch.Tensor]:
        label = self.labels[slice_id]
        if label is None:
            return None
        has = (label >= 0).any(1).cpu()
        if bool(has.all()) or not bool(has.any()):
            return None
        return torch.nonzero(has)[:, 0]

    def sample(self, generator: torch.Generator, slices_per_step: int, points_per_slice: int,
               slice_choices: Optional[torch.Tensor] = None, labelled_fraction: float = 0.0) -> Batch:
        """A batch drawn with ``generator`` (a CPU generator; draws depend on it only). Frames are drawn
        uniformly; with ``labelled_fraction > 0``, that fraction of the points of a slice whose labels
        cover only some frames (ED/ES) come from its labelled frames (0: uniform, the previous draw)."""
        pool = slice_choices if slice_choices is not None else torch.arange(self.n_slices)
        picks = pool[torch.randint(len(pool), (slices_per_step,), generator=generator)]
        ids, ijk, phases, intensity, labels = [], [], [], [], []
        for slice_id in picks.tolist():
            values = self.intensities[slice_id]
            n_frames, n_pixels = values.shape
            frames = torch.randint(n_frames, (points_per_slice,), generator=generator)
            labelled = self._labelled_frames(slice_id) if labelled_fraction > 0 else None
            if labelled is not None:
                n_labelled = int(round(labelled_fraction * points_per_slice))
                frames[:n_labelled] = labelled[torch.randint(len(labelled), (n_labelled,), generator=generator)]
            frames = frames.to(self.device)
            pixels = torch.randint(n_pixels, (points_per_slice,), generator=generator).to(self.device)
            ids.append(torch.full((points_per_slice,), slice_id, dtype=torch.long, device=self.device))
            ij = self.roi_ij[slice_id][pixels]
            ijk.append(torch.cat([ij, torch.zeros_like(ij[:, :1])], dim=1))
            phases.append(self.phases[slice_id][frames])
            intensity.append(values[frames, pixels])
            label = self.labels[slice_id]
            labels.append(label[frames, pixels] if label is not None
                          else torch.full((points_per_slice,), -1, dtype=torch.long, device=self.device))
        return Batch(torch.cat(ids), torch.cat(ijk), torch.cat(phases), torch.cat(intensity), torch.cat(labels))


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, classes=(1, 2, 3), smooth: float = 1.0) -> torch.Tensor:
    """``1 - mean_c Dice_c`` of softmax probabilities against integer labels (points ``(N,)``)."""
    probabilities = torch.softmax(logits, dim=1)
    one_hot = F.one_hot(labels, N_CLASSES).to(probabilities.dtype)
    index = list(classes)
    intersection = (probabilities[:, index] * one_hot[:, index]).sum(0)
    total = probabilities[:, index].sum(0) + one_hot[:, index].sum(0)
    return 1.0 - ((2.0 * intersection + smooth) / (total + smooth)).mean()


def batch_loss(network: NISFNetwork, params: SubjectParameters, table: SliceTable, batch: Batch,
               config: NISFConfig, generator: torch.Generator, *, use_labels: bool = True,
               motion_correction: Optional[bool] = None, intensity_scaling: Optional[bool] = None,
               psf_enabled: Optional[bool] = None, label_consistency: float = 0.0,
               regularise_network: bool = True) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """The loss of one batch and its parts (see the module docstring)."""
    motion = config.motion_correction if motion_correction is None else motion_correction
    scaling = config.intensity_scaling if intensity_scaling is None else intensity_scaling
    psf = config.psf.enabled if psf_enabled is None else psf_enabled
    reg = config.regularisation
    n = batch.slice_ids.shape[0]
    subjects = table.subject[batch.slice_ids]
    latents = params.latents[subjects]
    labelled = batch.labels >= 0 if use_labels else torch.zeros_like(batch.labels, dtype=torch.bool)
    centre_points = params.slice_points(table, batch.slice_ids, batch.ijk, motion_correction=motion)
    if psf:
        k = config.psf.samples
        offsets = psf_offsets(table.sigmas_mm[batch.slice_ids].cpu(), k, antithetic=config.psf.antithetic,
                              generator=generator).to(centre_points.device)
        repeat = lambda tensor: tensor.repeat_interleave(k, dim=0)  # noqa: E731
        points = params.slice_points(table, repeat(batch.slice_ids), repeat(batch.ijk), offsets.reshape(-1, 3),
                                     motion_correction=motion)
        if label_consistency > 0:  # labels too: their PSF average is the class fraction of each voxel
            values, sample_logits = network(points, repeat(batch.phases), repeat(latents))
            predicted = values.reshape(n, k).mean(1)
            fractions = torch.softmax(sample_logits, dim=1).reshape(n, k, -1).mean(1)
        else:
            predicted = network.intensity(points, repeat(batch.phases), repeat(latents)).reshape(n, k).mean(1)
        logits = None
        if bool(labelled.any()):
            logits = network(centre_points[labelled], batch.phases[labelled], latents[labelled])[1]
    else:
        predicted, all_logits = network(centre_points, batch.phases, latents)
        logits = all_logits[labelled] if bool(labelled.any()) else None
        fractions = torch.softmax(all_logits, dim=1) if label_consistency > 0 else None
    target = batch.intensity
    if scaling:
        target = (1.0 + params.slice_intensity[batch.slice_ids]) * target
    parts: Dict[str, torch.Tensor] = {"mse": F.mse_loss(predicted, target)}
    loss = config.intensity_weight * parts["mse"]
    if label_consistency > 0 and bool((~labelled).any()):
        free = ~labelled
        parts["consistency"] = label_intensity_consistency(fractions[free], target[free])
        loss = loss + label_consistency * parts["consistency"]
    if logits is not None:
        targets = batch.labels[labelled]
        parts["dice"] = soft_dice_loss(logits, targets)
        loss = loss + config.dice_weight * parts["dice"]
        if config.cross_entropy_weight:
            parts["ce"] = F.cross_entropy(logits, targets)
            loss = loss + config.cross_entropy_weight * parts["ce"]
    regulariser = reg.latent * (latents * latents).sum(1).mean()
    if motion:
        regulariser = regulariser + reg.rotation * (params.slice_rotation_deg[batch.slice_ids] ** 2).sum(1).mean()
        regulariser = regulariser + reg.translation * (params.slice_translation_mm[batch.slice_ids] ** 2).sum(1).mean()
        regulariser = regulariser + reg.through_plane * (params.slice_through_plane_mm[batch.slice_ids] ** 2).mean()
    if scaling:
        regulariser = regulariser + reg.intensity * (params.slice_intensity[batch.slice_ids] ** 2).mean()
    if regularise_network and reg.weights:
        regulariser = regulariser + reg.weights * network.weight_norm_squared()
    parts["reg"] = regulariser
    return loss + regulariser, parts


__all__ = ["Batch", "SliceBatchSampler", "soft_dice_loss", "batch_loss"]
