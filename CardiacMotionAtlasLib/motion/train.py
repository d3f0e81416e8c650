"""Training CardioMorphNet on a cohort of SAX sequences, and loading a trained model.

Two stages in one resumable run (:func:`~CardiacMotionAtlasLib.training.run_training`, checkpoint kind
``"cardiomorphnet"``): ``seg_steps`` steps train SegNet on the ED/ES labels (skipped when
``guidance="none"``), then SegNet is frozen and ``steps`` steps train FeatNet, the recurrent VAE and
DeformNet on whole sequences (one subject per step; with ``config.train_frames`` a random subset of its
frames that keeps ED and ES, :func:`training_frames`) with :func:`~.losses.sequence_loss`. Step ``s``
draws its randomness from ``make_generator(seed, stream=s)``, so a resumed run equals an uninterrupted one.

After training (``calibrate=True``) the per-index calibration scales of the 95 % intervals are fitted on
the training sequences (:mod:`.intervals`). The finished checkpoint carries, under ``extra``, that
calibration and the ``preprocessing`` the model must be applied with (grid reduction, frames, intensity
normalisation; :mod:`.preprocessing`), both read back by :func:`load_motion`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from ..errors import CheckpointError
from ..training import (
    make_generator,
    make_state_fns,
    rebuild_model,
    run_training,
    select_device,
)
from ..training.schedules import cosine_factor
from .calibration import calibrate_motion
from .config import MotionConfig
from .data import MotionSequence
from .errors import MotionInputError
from .losses import segmentation_loss, sequence_loss
from .model import CardioMorphNet, TrainedMotion, frame_order, sequence_tensors  # the last three re-exported
from .preprocessing import preprocessing_record, stored_reduction

CHECKPOINT_KIND = "cardiomorphnet"


def _flip(images: torch.Tensor, labels: Dict[int, torch.Tensor], generator: torch.Generator):
    dims = [d for d in (-1, -2) if torch.rand((), generator=generator).item() < 0.5]
    if not dims:
        return images, labels
    return images.flip(dims), {k: v.flip(dims) for k, v in labels.items()}


def training_frames(n_frames: int, labelled, count: int, generator: torch.Generator) -> list:
    """Positions (ED-first order, sorted) of one motion-training step: every labelled position plus
    randomly chosen others up to ``count`` frames (``count`` 0 or >= ``n_frames``: all frames)."""
    if count <= 0 or count >= n_frames:
        return list(range(n_frames))
    kept = {0, *(int(k) for k in labelled if 0 <= int(k) < n_frames)}
    others = [k for k in range(n_frames) if k not in kept]
    extra = max(count - len(kept), 0)
    if extra and others:
        picks = torch.randperm(len(others), generator=generator)[:extra].tolist()
        kept |= {others[i] for i in picks}
    return sorted(kept)


def train_motion(sequences: Sequence[MotionSequence], config: Optional[MotionConfig] = None, *,
                 checkpoint_path: Optional[Union[str, Path]] = None, resume: bool = False,
                 device: Union[str, torch.device, None] = "auto", progress=None, cancel=None,
                 calibrate: bool = True, preprocessing: Optional[Dict[str, Any]] = None) -> TrainedMotion:
    """Train CardioMorphNet on SAX sequences (labels at ED and ES needed unless the shape loss is off).

    ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda[:N]"``. ``resume=True`` continues
    from ``checkpoint_path`` (same config). ``calibrate``: fit the intervals' per-index scales on the
    training sequences (one estimate each). ``preprocessing``: what was done to the inputs (grid
    reduction etc., :func:`.preprocessing.preprocessing_record`; default: the intensity normalisation and
    the sequences' grid); both are stored in the checkpoint. Returns the model in eval mode, frozen.
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
    seg_lambda = lambda s: cosine_factor(s, seg_steps, config.final_lr_fraction) if s < seg_steps else 0.0  # noqa: E731
    motion_lambda = lambda s: 0.0 if s < seg_steps else cosine_factor(s - seg_steps, config.steps,  # noqa: E731
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
        if 0 < config.train_frames < images.shape[0]:  # a subset of the frames, labelled ones kept
            kept = training_frames(images.shape[0], labels, config.train_frames, generator)
            images = images[kept]
            labels = {kept.index(k): v for k, v in labels.items() if k in kept}
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

    path = None if checkpoint_path is None else Path(checkpoint_path)
    record = dict(preprocessing) if preprocessing is not None else preprocessing_record(sequences, config)
    trained = TrainedMotion(config, model, device, path, preprocessing=record)

    def finalise() -> Dict[str, Any]:
        """Interval calibration and the preprocessing record, stored with the final checkpoint."""
        model.eval().requires_grad_(False)
        labelled = [s for s in sequences if s.ed_frame in s.labels and s.es_frame in s.labels]
        if calibrate and labelled:
            trained.calibration = calibrate_motion(trained, labelled)
        return {"calibration": trained.calibration, "preprocessing": record, "reduction": stored_reduction(record)}

    model.train()
    trained.result = run_training(step_fn, total_steps=total, checkpoint_path=checkpoint_path,
                                  checkpoint_every=config.checkpoint_every, state_dict_fn=state_dict_fn,
                                  load_state_fn=load_state_fn, config=config, kind=CHECKPOINT_KIND, resume=resume,
                                  progress=progress, cancel=cancel, description="train CardioMorphNet",
                                  finalise=finalise)
    return trained


def load_motion(path: Union[str, Path], device: Union[str, torch.device, None] = "auto", *,
                allow_incomplete: Optional[bool] = None) -> TrainedMotion:
    """Load a checkpoint written by :func:`train_motion` (``weights_only=True``) onto ``device``;
    ``allow_incomplete`` as in :func:`~CardiacMotionAtlasLib.training.checkpoint.rebuild_model`."""
    rebuilt = rebuild_model(path, kind=CHECKPOINT_KIND, config_cls=MotionConfig,
                            build=lambda config, _checkpoint: CardioMorphNet(config), device=device,
                            allow_incomplete=allow_incomplete)
    extra = rebuilt.checkpoint.extra or {}
    calibration = extra.get("calibration")
    if calibration is not None and not (isinstance(calibration, dict) and all(
            isinstance(v, (int, float)) and v >= 1.0 for v in calibration.values())):
        raise CheckpointError(path, f"calibration is not a dict of scales >= 1: {calibration!r}")
    return TrainedMotion(rebuilt.config, rebuilt.module, rebuilt.device, Path(path), calibration=calibration,
                         preprocessing=extra.get("preprocessing"))

__all__ = ["CHECKPOINT_KIND", "TrainedMotion", "frame_order", "load_motion", "sequence_tensors", "train_motion",
           "training_frames"]
