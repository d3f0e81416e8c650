"""Cohort training of NISF++ (network, latents, slice offsets and intensity scales) and loading.

Training runs through :func:`~CardiacMotionAtlasLib.training.run_training`: atomic ``weights_only``
checkpoints (kind ``"nisf"``) carrying the config and the subjects' geometry, ``resume=True``
continuing from the last one (same config and same subjects, else :class:`CheckpointError`), progress
and cancellation. Each step's randomness comes from ``make_generator(seed, stream=step)``, so a resumed
run equals an uninterrupted one.

Schedules: every learning rate decays by a cosine to ``final_lr_fraction``; slice offsets and
intensity scales stay frozen for the first ``offset_warmup_fraction`` of the steps (they would chase
the noise of a network that has not yet learnt the anatomy). The training subjects' global pose stays
the identity (it is the frame's gauge; only a new subject fits one).

Multi-process (``torchrun --nproc_per_node N``, or a process group the caller initialised): the network
and the cohort's learnables are wrapped in DistributedDataParallel (gloo on CPU, nccl on CUDA); each rank
draws its own ``ceil(slices_per_step / N)`` slices per step from ``make_generator(seed, rank, step)`` (rank
0 of 1 draws exactly the single-process batch), gradients are averaged over ranks, the reported metrics
are averaged too, and rank 0 alone writes checkpoints (with every rank's RNG state). The loss (soft Dice
over the batch, Monte-Carlo PSF draws) does not split into per-point terms, so a multi-rank step is the
average of per-rank sub-batch losses, not the loss of one concatenated batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Union

import torch

from ..data.cine_study import CineStudy
from ..errors import CheckpointError
from ..training import ddp
from ..training.distributed import barrier
from ..training.schedules import cosine_factor
from ..training import (
    TrainingResult,
    make_generator,
    make_state_fns,
    rebuild_model,
    run_training,
    select_device,
)
from .config import NISFConfig
from .data import SubjectData, prepare_subject
from .model import NISFModel, SubjectFit, subject_from_meta, subject_meta
from .objective import SliceBatchSampler, batch_loss
from .slices import SliceTable, SubjectParameters

CHECKPOINT_KIND = "nisf"


@dataclass
class TrainedNISF:
    """A trained (or loaded) NISF++ model: config, network + cohort learnables, the training subjects
    (with pixels when trained in this process, geometry only when loaded) and the checkpoint path."""

    config: NISFConfig
    model: NISFModel
    subjects: List[SubjectData]
    device: torch.device
    checkpoint_path: Optional[Path] = None
    result: Optional[TrainingResult] = None

    @property
    def network(self):
        return self.model.network

    def subject_index(self, subject_id: str) -> int:
        for index, subject in enumerate(self.subjects):
            if subject.subject_id == subject_id:
                return index
        raise KeyError(f"{subject_id!r} is not a training subject of this model")

    def subject_fit(self, index: int) -> SubjectFit:
        """Training subject ``index`` as a :class:`SubjectFit` (a copy of its learnables)."""
        subject = self.subjects[index]
        counts = [len(s.slices) for s in self.subjects]
        start = sum(counts[:index])
        cohort = self.model.params
        params = SubjectParameters(1, counts[index], self.config.network.latent_dim).to(self.device)
        with torch.no_grad():
            params.latents.copy_(cohort.latents[index: index + 1])
            params.global_rotation_deg.copy_(cohort.global_rotation_deg[index: index + 1])
            params.global_translation_mm.copy_(cohort.global_translation_mm[index: index + 1])
            for name in ("slice_rotation_deg", "slice_translation_mm", "slice_through_plane_mm", "slice_intensity"):
                getattr(params, name).copy_(getattr(cohort, name)[start: start + counts[index]])
        params.requires_grad_(False)
        return SubjectFit(self.network, subject, params, self.config, self.device)


def _subject_keys(subjects: Sequence[dict]) -> List[str]:
    return [f"{s['subject_id']}:" + ",".join(sl["name"] for sl in s["slices"]) for s in subjects]


class _NISFObjective(torch.nn.Module):
    """The batch loss as a module (every learnable used inside ``forward``, as DDP requires)."""

    def __init__(self, model: NISFModel, table: SliceTable, config: NISFConfig) -> None:
        super().__init__()
        self.model = model
        self.table = table
        self.config = config

    def forward(self, batch, generator: torch.Generator):
        return batch_loss(self.model.network, self.model.params, self.table, batch, self.config, generator)


def train_nisf(studies: Sequence[Union[CineStudy, SubjectData]], config: Optional[NISFConfig] = None, *,
               checkpoint_path: Optional[Union[str, Path]] = None, resume: bool = False,
               device: Union[str, torch.device, None] = "auto", progress=None, cancel=None) -> TrainedNISF:
    """Train NISF++ on a cohort of cine studies (or already prepared subjects) and return the model.

    Labels are used where the studies have them (Dice + CE); LAX frames without labels supervise
    intensities only. ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda[:N]"`` (under
    ``torchrun``: ``cuda:LOCAL_RANK``). Multi-process training: see the module docstring.
    """
    config = (config or NISFConfig()).validate()
    device = select_device(device, local_rank=ddp.local_rank())
    rank, world_size = ddp.ensure_process_group(device)
    subjects = [s if isinstance(s, SubjectData) else prepare_subject(s, config) for s in studies]
    if not subjects:
        raise ValueError("train_nisf needs at least one study")
    torch.manual_seed(config.seed)
    n_slices = sum(len(s.slices) for s in subjects)
    model = NISFModel(config, len(subjects), n_slices, make_generator(config.seed, stream=10**6)).to(device)
    model.params.global_rotation_deg.requires_grad_(False)
    model.params.global_translation_mm.requires_grad_(False)
    table = SliceTable(subjects, device)
    sampler = SliceBatchSampler(subjects, device)
    params = model.params
    objective = ddp.wrap_ddp(_NISFObjective(model, table, config), device, find_unused_parameters=True)
    per_rank = config.slices_per_step if world_size == 1 else max(1, math.ceil(config.slices_per_step / world_size))
    groups = [
        {"params": list(model.network.parameters()), "lr": config.lr_network},
        {"params": [params.latents], "lr": config.lr_latent},
        {"params": [params.slice_rotation_deg], "lr": config.lr_rotation_deg},
        {"params": [params.slice_translation_mm], "lr": config.lr_translation_mm},
        {"params": [params.slice_through_plane_mm], "lr": config.lr_through_plane_mm},
        {"params": [params.slice_intensity], "lr": config.lr_intensity},
    ]
    optimizer = torch.optim.Adam(groups)
    warmup = int(config.offset_warmup_fraction * config.steps)
    decay = lambda step: cosine_factor(step, config.steps, config.final_lr_fraction)  # noqa: E731
    delayed = lambda step: 0.0 if step < warmup else decay(step)  # noqa: E731
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [decay, decay, delayed, delayed, delayed, delayed])
    metas = [subject_meta(s) for s in subjects]
    state_dict_fn, load_model_state = make_state_fns(model, optimizer, scheduler,
                                                     extra_fn=lambda: {"subjects": metas})

    def load_state_fn(checkpoint) -> None:
        saved = checkpoint.extra.get("subjects") or []
        if _subject_keys(saved) != _subject_keys(metas):
            raise CheckpointError(checkpoint.path, "was trained on other subjects or slices; cannot resume "
                                                   f"({len(saved)} saved, {len(metas)} given)")
        load_model_state(checkpoint)

    def step_fn(step: int):
        generator = make_generator(config.seed, rank=rank, stream=step)
        batch = sampler.sample(generator, per_rank, config.points_per_slice)
        loss, parts = objective(batch, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        metrics = {"loss": loss.detach(), **{k: v.detach() for k, v in parts.items()}}
        if world_size > 1:  # a part missing on some rank (no labels drawn) would deadlock: reduce the common ones
            metrics = {k: ddp.all_reduce_mean(v) for k, v in metrics.items() if k in ("loss", "mse", "reg")}
        return metrics

    model.train()
    result = run_training(step_fn, total_steps=config.steps, checkpoint_path=checkpoint_path,
                          checkpoint_every=config.checkpoint_every, state_dict_fn=state_dict_fn,
                          load_state_fn=load_state_fn, config=config, kind=CHECKPOINT_KIND, resume=resume,
                          progress=progress, cancel=cancel, description="train NISF++")
    barrier()  # rank 0's final checkpoint is on disk before any rank returns
    model.eval()
    model.requires_grad_(False)
    path = None if checkpoint_path is None else Path(checkpoint_path)
    return TrainedNISF(config, model, subjects, device, path, result)


def load_nisf(path: Union[str, Path], device: Union[str, torch.device, None] = "auto", *,
              allow_incomplete: Optional[bool] = None) -> TrainedNISF:
    """Load a NISF++ checkpoint (``weights_only=True``) written by :func:`train_nisf` onto ``device``;
    ``allow_incomplete`` as in :func:`~CardiacMotionAtlasLib.training.checkpoint.rebuild_model`."""
    subjects: List[SubjectFit] = []

    def build(config: NISFConfig, checkpoint) -> NISFModel:
        metas = checkpoint.extra.get("subjects")
        if not isinstance(metas, list) or not metas:
            raise CheckpointError(path, "has no training subjects in its extra data")
        try:
            subjects.extend(subject_from_meta(meta) for meta in metas)
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(path, f"invalid subject metadata ({error})") from error
        return NISFModel(config, len(subjects), sum(len(s.slices) for s in subjects))

    rebuilt = rebuild_model(path, kind=CHECKPOINT_KIND, config_cls=NISFConfig, build=build, device=device,
                            allow_incomplete=allow_incomplete)
    return TrainedNISF(rebuilt.config, rebuilt.module, subjects, rebuilt.device, Path(path))

__all__ = ["CHECKPOINT_KIND", "TrainedNISF", "train_nisf", "load_nisf"]
