"""Training the atlas on a cohort (auto-decoder: networks and per-subject codes together).

Each step draws ``subjects_per_step`` subjects (0 = all), ``frames_per_subject`` of their frames and
``points_per_frame`` of each frame's precomputed SDF samples, from a generator seeded by the step index
(so a resumed run equals an uninterrupted one), and takes one Adam step on the loss of
:mod:`.model`. Networks and codes have their own learning rates, both decayed by a cosine schedule to
``final_lr_fraction``. The loop, checkpoints, ``--resume``, progress and cancel are
:func:`~CardiacMotionAtlasLib.training.run_training`'s. After the last step the shape-to-motion prior
is built from ED-alone fits of the training subjects (:mod:`.shape_prior`, ``config.prior_fit_steps``),
each training subject's residual warp with its contraction-amplitude term is fitted on its own frames
(``config.cohort_residual_steps``, :func:`~.fit.fit_cohort_residuals`) and the final checkpoint is
rewritten with both.

Multi-process (``torchrun --nproc_per_node N``, or a process group the caller initialised): every rank
draws the same global batch, keeps its shard of the points and weights the per-point terms so that
DistributedDataParallel's gradient average equals the single-process gradient (gloo on CPU, nccl on
CUDA); the reported loss is averaged over ranks, rank 0 alone writes checkpoints (every rank's RNG state
in them) and a resumed run continues on every rank.
"""

from __future__ import annotations

import os
import time
from typing import List, Optional, Sequence, Union

import numpy as np
import torch

from ..training import ddp
from ..training.device import select_device
from ..training.distributed import barrier
from ..training.loop import make_state_fns, run_training
from ..training.progress import CancelToken, ProgressReporter
from ..training.schedules import cosine_factor
from ..training.seeding import make_generator, seed_everything
from .config import AtlasConfig, FitConfig
from .errors import AtlasDataError
from .fit import fit_cohort_residuals, fit_shape_motion_prior
from .model import CHECKPOINT_KIND, Atlas, NeuralDiffeomorphicAtlas, clamped_l1
from .sampling import SubjectData

PathLike = Union[str, os.PathLike]


def cohort_extent_factor(subjects: Sequence[SubjectData], margin: float) -> float:
    """Factor ``k`` such that every subject's surface, in units of its size ``size_mm * k``, lies within
    ``[-margin, margin]^3``."""
    return float(max(np.max(s.surface_extent_mm / s.frame.size_mm) for s in subjects) / margin)


class CohortTensors:
    """Every subject's samples in canonical units on the device, padded to the largest frame count."""

    def __init__(self, subjects: Sequence[SubjectData], extent_factor: float, device: torch.device) -> None:
        n_points = min(s.points_mm.shape[1] for s in subjects)
        n_frames = max(s.n_frames for s in subjects)
        shape = (len(subjects), n_frames, n_points)
        points = np.zeros(shape + (3,), np.float32)
        sdf = np.zeros(shape, np.float32)
        phases = np.zeros(shape[:2], np.float32)
        for index, subject in enumerate(subjects):
            scale = subject.frame.size_mm * extent_factor
            points[index, :subject.n_frames] = subject.points_mm[:, :n_points] / scale
            sdf[index, :subject.n_frames] = subject.sdf_mm[:, :n_points] / scale
            phases[index, :subject.n_frames] = subject.phases
        self.points = torch.from_numpy(points).to(device)
        self.sdf = torch.from_numpy(sdf).to(device)
        self.phases = torch.from_numpy(phases).to(device)
        self.n_frames = torch.tensor([s.n_frames for s in subjects], device=device)
        known = [s.es_phase is not None for s in subjects]
        self.es_index = torch.tensor([i for i, k in enumerate(known) if k], dtype=torch.long, device=device)
        self.es_phase = torch.tensor([s.es_phase for s in subjects if s.es_phase is not None], dtype=torch.float32,
                                     device=device)
        self.n_points = n_points

    def batch(self, generator: torch.Generator, subjects: torch.Tensor, frames_per_subject: int,
              points_per_frame: int):
        """(points ``(B, 3)``, phases ``(B,)``, sdf ``(B,)``, subject index ``(B,)``) for the given subjects."""
        device = self.points.device
        n_sub = len(subjects)
        draws = torch.rand(n_sub, frames_per_subject, generator=generator)
        frames = (draws * self.n_frames[subjects].cpu()[:, None]).long()
        point_index = torch.randint(0, self.n_points, (n_sub, frames_per_subject, points_per_frame),
                                    generator=generator)
        s = subjects.cpu()[:, None, None].expand_as(point_index).reshape(-1).to(device)
        f = frames[:, :, None].expand_as(point_index).reshape(-1).to(device)
        p = point_index.reshape(-1).to(device)
        return self.points[s, f, p], self.phases[s, f], self.sdf[s, f, p], s


def atlas_loss(module: NeuralDiffeomorphicAtlas, data: CohortTensors, subjects: torch.Tensor, points: torch.Tensor,
               phases: torch.Tensor, sdf: torch.Tensor, index: torch.Tensor, point_weight: float = 1.0):
    """Training loss and its parts (see :mod:`.model`). ``point_weight`` scales the per-point means (SDF,
    velocity): a rank's shard weight under DDP (:func:`~CardiacMotionAtlasLib.training.ddp.shard_weight`)."""
    config = module.config
    predicted, energy = module(points, phases, module.shape_codes, module.time_codes, index)
    sdf_term = clamped_l1(predicted, sdf, config.clamp)
    codes = (module.shape_codes[subjects] ** 2).sum(1).mean() + (module.time_codes[subjects] ** 2).sum(1).mean()
    velocity = energy.mean()
    if point_weight != 1.0:
        sdf_term, velocity = sdf_term * point_weight, velocity * point_weight
    loss = sdf_term + config.code_weight * codes + config.velocity_weight * velocity
    alignment = torch.zeros((), device=points.device)
    if config.es_alignment_weight > 0 and len(data.es_index):
        alignment = module.es_alignment(module.time_codes[data.es_index], data.es_phase).mean()
        loss = loss + config.es_alignment_weight * alignment
    return loss, {"sdf": sdf_term.detach(), "velocity": velocity.detach(), "align": alignment.detach()}


class _AtlasObjective(torch.nn.Module):
    """The loss as a module, so that every parameter use (codes, ES alignment) happens inside ``forward``,
    as DistributedDataParallel requires."""

    def __init__(self, module: NeuralDiffeomorphicAtlas, data: CohortTensors) -> None:
        super().__init__()
        self.atlas = module
        self.data = data

    def forward(self, subjects, points, phases, sdf, index, point_weight: float = 1.0):
        return atlas_loss(self.atlas, self.data, subjects, points, phases, sdf, index, point_weight)


def train_atlas(subjects: Sequence[SubjectData], config: Optional[AtlasConfig] = None, *,
                device: Union[str, torch.device, None] = "cpu", checkpoint_path: Optional[PathLike] = None,
                resume: bool = False, progress: Optional[ProgressReporter] = None,
                cancel: Optional[CancelToken] = None) -> Atlas:
    """Train the atlas on ``subjects`` and return it (checkpointed at ``checkpoint_path`` every
    ``config.checkpoint_every`` steps and at the end; ``resume`` continues from that checkpoint).

    ``device``: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda[:N]"`` or a ``torch.device``. The result's
    ``training_seconds_per_step`` attribute holds the mean wall time of the steps run.

    Under ``torchrun`` (or with a process group already initialised) the steps run with
    DistributedDataParallel over the ranks (module docstring); ``device="cuda"`` then picks
    ``cuda:LOCAL_RANK``. Every rank returns the same trained atlas."""
    config = config or AtlasConfig()
    subjects = list(subjects)
    if not subjects:
        raise AtlasDataError(None, "no training subjects")
    ids = [s.subject_id for s in subjects]
    if len(set(ids)) != len(ids):
        raise AtlasDataError(None, f"duplicate subject ids in the training cohort: {ids}")
    device = select_device(device, local_rank=ddp.local_rank())
    rank, world_size = ddp.ensure_process_group(device)
    seed_everything(config.seed, rank)  # rank 0: the single-process seed; DDP broadcasts rank 0's weights
    factor = cohort_extent_factor(subjects, config.extent_margin)
    module = NeuralDiffeomorphicAtlas(config, len(subjects)).to(device)
    module.extent_factor.fill_(factor)
    data = CohortTensors(subjects, factor, device)
    aligned = config.es_alignment_weight > 0 and len(data.es_index) > 0  # else template_es_phase gets no gradient
    objective = ddp.wrap_ddp(_AtlasObjective(module, data), device, find_unused_parameters=not aligned)

    network_params = [p for m in module.networks() for p in m.parameters()] + [module.template_es_phase]
    optimizer = torch.optim.Adam([
        {"params": network_params, "lr": config.learning_rate},
        {"params": [module.shape_codes, module.time_codes], "lr": config.code_learning_rate},
    ])
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step, config.steps, config.final_lr_fraction))
    atlas = Atlas(module, ids, [s.frame.with_extent_factor(factor) for s in subjects], device,
                  [s.es_phase for s in subjects])
    state_dict_fn, load_state_fn = make_state_fns(module, optimizer, scheduler, extra_fn=atlas.extra)
    per_step = max(1, min(config.subjects_per_step or len(subjects), len(subjects)))
    timings: List[float] = []

    def step_fn(step: int):
        start = time.perf_counter()
        generator = make_generator(config.seed, stream=step)
        if per_step < len(subjects):
            chosen = torch.randperm(len(subjects), generator=generator)[:per_step].to(device)
        else:
            chosen = torch.arange(len(subjects), device=device)
        points, phases, sdf, index = data.batch(generator, chosen, config.frames_per_subject, config.points_per_frame)
        weight = 1.0
        if world_size > 1:  # this rank's shard of the global batch
            part = ddp.shard(len(points), rank, world_size)
            weight = ddp.shard_weight(len(points), rank, world_size)
            points, phases, sdf, index = points[part], phases[part], sdf[part], index[part]
        module.train()
        optimizer.zero_grad(set_to_none=True)
        loss, parts = objective(chosen, points, phases, sdf, index, weight)
        loss.backward()
        if step < config.template_warmup_steps:  # warm-up: the template learns the mean shape, D1 stays identity
            for parameter in module.spatial.parameters():
                parameter.grad = None
        optimizer.step()
        scheduler.step()
        timings.append(time.perf_counter() - start)
        loss, sdf_term = ddp.all_reduce_mean(loss.detach()), ddp.all_reduce_mean(parts["sdf"])
        return {"loss": loss, "sdf_mm": sdf_term * atlas.mean_scale_mm}

    def finalise() -> None:
        """The shape-to-motion prior, before the final checkpoint (``atlas.extra`` stores it there)."""
        module.eval()
        if config.prior_fit_steps > 0:  # deterministic: every rank builds the same prior
            fit_config = FitConfig(steps=config.prior_fit_steps, points_per_frame=config.prior_fit_points,
                                   seed=config.seed, residual_steps=0)  # codes only: the residual stage changes none
            atlas.shape_motion_prior = fit_shape_motion_prior(atlas, subjects, fit_config)
        if config.cohort_residual_steps > 0:  # the training subjects' own contraction amplitudes
            atlas.training_residuals = fit_cohort_residuals(atlas, subjects, config.cohort_residual_steps,
                                                            config.prior_fit_points, config.seed)

    run_training(step_fn, total_steps=config.steps, checkpoint_path=checkpoint_path,
                 checkpoint_every=config.checkpoint_every, state_dict_fn=state_dict_fn,
                 load_state_fn=load_state_fn, config=config, kind=CHECKPOINT_KIND, resume=resume,
                 progress=progress, cancel=cancel, description="train atlas", finalise=finalise)
    module.eval()
    atlas.training_seconds_per_step = float(np.mean(timings)) if timings else float("nan")
    barrier()  # rank 0's final checkpoint is on disk before any rank returns
    return atlas


__all__ = ["train_atlas", "atlas_loss", "cohort_extent_factor", "CohortTensors"]
