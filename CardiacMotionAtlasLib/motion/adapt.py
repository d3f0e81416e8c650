"""Test-time adaptation of CardioMorphNet to one subject from the labels the subject itself gives.

A study that comes with SAX labels at ED and ES (UK Biobank-style) gives, at inference, exactly the
supervision the network was trained with. Two uses, both legitimate because those labels are inputs:

- **targets** (:func:`refinement_targets`): the per-subject refinement (:mod:`.refine`) is driven by
  class probabilities per frame; at the labelled frames the subject's own labels replace SegNet's
  prediction (SegNet, trained on a few hearts of another family at coarse pixels, leaves the ES cavity
  too big, and the refined chain followed it: the systolic overestimation of LVESV);
- **SegNet** (:func:`adapt_segnet`): a copy of SegNet is fine-tuned for a few steps on the subject's
  labelled frames (its training loss, cross-entropy + soft Dice, with in-plane flips), so its labels of
  the unlabelled frames come from a segmenter adapted to this heart's anatomy, contrast and acquisition.

and one finding about the refinement itself: its fold penalty (a squared hinge on Jacobian determinants
of the ED -> t fields below 0.2, weight 0.1) held the ES cavity open. Systole compresses the cavity and
base descent through 10 mm slices empties basal voxels, so determinants well below 0.2 are physical
there: on a cross-family heart (lofted005, quick model) the chain ended 9.3 ml above the truth with the
given ES labels as targets (given weight 1 or 4, 150 or 400 steps: 9.2-10.1 ml), -2.3 ml without the
penalty (33 folded voxels), 0.0 ml with margin 0.05 and weight 0.01 (0 folded voxels): the new defaults
:data:`FOLD_MARGIN`, :data:`FOLD_WEIGHT` (penalty still on, only where the fields approach folding).

The trained model is never changed (the copy is discarded). Frames are positions in the ED-first order
of :func:`~.train.sequence_tensors`; tensors are on the padded grid.
"""

from __future__ import annotations

import copy
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from ..training import make_generator
from .losses import one_hot, segmentation_loss
from .model import CardioMorphNet

# fine-tuning steps of the SegNet copy: off (30 steps measured worse in benchmarks.motion_adapt: cross-family
# LVEF RMSE 1.91 -> 2.51 points, all-frame EPE 5.32 -> 5.67 mm)
ADAPT_STEPS = 0
ADAPT_LR = 1e-3  # Adam learning rate of the fine-tuning
FOLD_MARGIN = 0.05  # the refinement's fold penalty starts below this Jacobian determinant (was 0.2: see .refine)
FOLD_WEIGHT = 0.01  # weight of that penalty (was config.refine_fold_weight = 0.1; None: the config's)
GIVEN_WEIGHT = 1.0  # weight of the given frames' anchored refinement term relative to SegNet's frames


def adapt_segnet(model: CardioMorphNet, images: torch.Tensor, labels: Dict[int, torch.Tensor],
                 steps: int = ADAPT_STEPS, lr: float = ADAPT_LR, seed: int = 0) -> torch.Tensor:
    """SegNet class probabilities ``(T, 4, z, y, x)`` of ``images`` ``(T, 1, z, y, x)`` from a copy of
    ``model.segnet`` fine-tuned for ``steps`` Adam steps on the labelled positions ``labels``
    (``{position: (1, z, y, x)}`` integer labels), one random labelled frame and in-plane flip per step.
    Without labels or steps: the trained SegNet's probabilities. ``model`` is not modified."""
    if steps <= 0 or not labels:
        with torch.no_grad():
            return F.softmax(model.segment(images), 1)
    segnet = copy.deepcopy(model.segnet).train().requires_grad_(True)
    optimizer = torch.optim.Adam(segnet.parameters(), lr=lr)
    positions = sorted(labels)
    generator = make_generator(seed, stream=7)
    with torch.enable_grad():
        for _ in range(int(steps)):
            position = positions[int(torch.randint(len(positions), (1,), generator=generator))]
            image, label = images[position: position + 1], labels[position]
            dims = [d for d in (-1, -2) if torch.rand((), generator=generator).item() < 0.5]
            if dims:
                image, label = image.flip(dims), label.flip(dims)
            loss = segmentation_loss(segnet(image), label)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    segnet.eval().requires_grad_(False)
    with torch.no_grad():
        return F.softmax(segnet(images), 1)


def refinement_targets(probabilities: torch.Tensor, labels: Dict[int, torch.Tensor],
                       ed_label: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Per-frame class probabilities ``(T, 4, ...)`` for the refinement: ``probabilities`` (SegNet's)
    with the given labels (one-hot) at the labelled positions, and ``ed_label`` ``(1, z, y, x)`` (the ED
    labels the estimate carries) at position 0 when given."""
    targets = probabilities.clone()
    for position, label in labels.items():
        targets[position: position + 1] = one_hot(label).to(targets.dtype)
    if ed_label is not None:
        targets[:1] = one_hot(ed_label).to(targets.dtype)
    return targets


__all__ = ["ADAPT_LR", "ADAPT_STEPS", "FOLD_MARGIN", "FOLD_WEIGHT", "GIVEN_WEIGHT", "adapt_segnet", "refinement_targets"]
