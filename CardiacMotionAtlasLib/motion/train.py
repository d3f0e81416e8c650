"""Training CardioMorphNet on a cohort of SAX sequences, and loading a trained model.

Two stages in one resumable run (:func:`~CardiacMotionAtlasLib.training.run_training`, checkpoint kind
``"cardiomorphnet"``): ``seg_steps`` steps train SegNet on the ED/ES labels (skipped when
``guidance="none"``), then SegNet is frozen and ``steps`` steps train FeatNet, the recurrent VAE and
DeformNet on whole sequences (one subject per step) with :func:`~.losses.sequence_loss`. Step ``s``
draws its randomness from ``make_generator(seed, stream=s)``, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from ..training import (
    TrainingResult,
    config_from_dict,
    load_checkpoint,
    make_generator,
    make_state_fns,
    run_training,
    select_device,
)
from .config import MotionConfig
from .data import MotionSequence
from .errors import MotionInputError
from .losses import segmentation_loss, sequence_loss
from .model import CardioMorphNet

CHECKPOINT_KIND = "cardiomorphnet"


@dataclass
class TrainedMotion:
    """A trained (or loaded) CardioMorphNet: config, networks (eval mode, frozen), device, checkpoint."""

    config: MotionConfig
    model: CardioMorphNet
    device: torch.device
    checkpoint_path: Optional[Path] = None
    result: Optional[TrainingResult] = None


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


def _cosine(step: int, total: int, final_fraction: float) -> float:
    progress = min(max(step, 0) / max(total, 1), 1.0)
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _flip(images: torch.Tensor, labels: Dict[int, torch.Tensor], generator: torch.Generator):
    dims = [d for d in (-1, -2) if torch.rand((), generator=generator).item() < 0.5]
    if not dims:
        return images, labels
    return images.flip(dims), {k: v.flip(dims) for k, v in labels.items()}


def train_motion(sequences: Sequence[MotionSequence], config: Optional[MotionConfig] = None, *,
                 checkpoint_path: Optional[Union[str, Path]] = None, resume: bool = False,
                 device: Union[str, torch.device, None] = "auto", progress=None, cancel=None) -> TrainedMotion:
    """Train CardioMorphNet on SAX sequences (labels at ED and ES needed unless the shape loss is off).

    ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda[:N]"``. ``resume=True`` continues
    from ``checkpoint_path`` (same config). Returns the model in eval mode with frozen weights.
    """
    config = (config or MotionConfig()).validate()
    device = select_device(device)
    if not sequences:
        raise MotionInputError(None, "train_motion needs at least one sequence")
    needs_labels = config.shape_weight > 0 or config.uses_segnet
    if needs_labels:
        for sequence in sequences:
            sequence.require_training_labels()
    torch.manual_seed(config.seed)
    model = CardioMorphNet(config).to(device)
    data = [sequence_tensors(s, config, device) for s in sequences]
    seg_pairs = [(i, k) for i, (_, labels) in enumerate(data) for k in labels]
    seg_steps = config.seg_steps if config.uses_segnet else 0
    total = seg_steps + config.steps
    seg_params = list(model.segnet.parameters())
    other = [p for name, p in model.named_parameters() if not name.startswith("segnet.")]
    optimizer = torch.optim.Adam([{"params": seg_params, "lr": config.seg_lr}, {"params": other, "lr": config.lr}])
    seg_lambda = lambda s: _cosine(s, seg_steps, config.final_lr_fraction) if s < seg_steps else 0.0  # noqa: E731
    motion_lambda = lambda s: 0.0 if s < seg_steps else _cosine(s - seg_steps, config.steps,  # noqa: E731
                                                                  config.final_lr_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [seg_lambda, motion_lambda])
    state_dict_fn, load_state_fn = make_state_fns(model, optimizer, scheduler)

    def seg_step(generator: torch.Generator):
        picks = torch.randint(len(seg_pairs), (config.seg_batch,), generator=generator).tolist()
        loss = 0.0
        for pick in picks:
            index, frame = seg_pairs[pick]
            images, labels = data[index]
            image, label = images[frame: frame + 1], labels[frame]
            if config.augment:
                image, flipped = _flip(image, {0: label}, generator)
                label = flipped[0]
            loss = loss + segmentation_loss(model.segment(image), label) / len(picks)
        return loss, {"seg": loss.detach()}

    def motion_step(generator: torch.Generator, sample_generator: torch.Generator):
        index = int(torch.randint(len(data), (1,), generator=generator))
        images, labels = data[index]
        if config.augment:
            images, labels = _flip(images, labels, generator)
        pseudo = None
        if config.uses_segnet:
            with torch.no_grad():
                pseudo = F.softmax(model.segment(images), 1)
        loss, parts = sequence_loss(model, images, labels, config, sample_generator, pseudo)
        return loss, {k: v.detach() for k, v in parts.items()}

    def step_fn(step: int):
        generator = make_generator(config.seed, stream=step)
        if device.type == "cuda":  # CUDA sampling needs a CUDA generator, seeded from the CPU one
            cuda_generator = torch.Generator(device=device)
            cuda_generator.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            sample_generator = cuda_generator
        else:
            sample_generator = generator
        stage_seg = step < seg_steps
        model.segnet.requires_grad_(stage_seg)
        if stage_seg:
            loss, metrics = seg_step(generator)
        else:
            loss, metrics = motion_step(generator, sample_generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        return {"loss": loss.detach(), **metrics}

    model.train()
    result = run_training(step_fn, total_steps=total, checkpoint_path=checkpoint_path,
                          checkpoint_every=config.checkpoint_every, state_dict_fn=state_dict_fn,
                          load_state_fn=load_state_fn, config=config, kind=CHECKPOINT_KIND, resume=resume,
                          progress=progress, cancel=cancel, description="train CardioMorphNet")
    model.eval().requires_grad_(False)
    path = None if checkpoint_path is None else Path(checkpoint_path)
    return TrainedMotion(config, model, device, path, result)


def load_motion(path: Union[str, Path], device: Union[str, torch.device, None] = "auto") -> TrainedMotion:
    """Load a checkpoint written by :func:`train_motion` (``weights_only=True``)."""
    device = select_device(device)
    checkpoint = load_checkpoint(path, expected_kind=CHECKPOINT_KIND, map_location="cpu")
    config = config_from_dict(MotionConfig, checkpoint.config, source=path)
    model = CardioMorphNet(config)
    try:
        model.load_state_dict(checkpoint.model_state)
    except (RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(path, f"model state does not fit its config: {error}") from error
    model.to(device).eval().requires_grad_(False)
    return TrainedMotion(config, model, device, Path(path))


__all__ = ["CHECKPOINT_KIND", "TrainedMotion", "frame_order", "load_motion", "sequence_tensors", "train_motion"]
