"""The atlas model ``F(p, t, c) = T(D1(p, c_p), D2(t, c_t))`` and its trained bundle.

:class:`NeuralDiffeomorphicAtlas` (an ``nn.Module``) holds the three networks, the training subjects'
auto-decoder codes, the learned template phase of end-systole ``t'_ES`` and the cohort ``extent_factor``.
:class:`Atlas` bundles it with its config, the training subjects' ids and canonical frames and the
device; it loads from and saves to checkpoints read with ``weights_only=True``.

Losses (all in canonical units): clamped L1 between predicted and sampled SDF (DeepSDF, clamp
``config.clamp``); code regulariser ``code_weight * (|c_p|^2 + |c_t|^2)`` (Gaussian prior); velocity
penalty ``velocity_weight * sum_b int |v_b|^2 ds`` (kinetic energy of D1, which keeps it close to the
identity and stops the template's scale from drifting); ES alignment ``es_alignment_weight *
(D2(t_ES) - t'_ES)^2`` over subjects whose ES phase is known (so every subject's ES falls on one
template phase; ``t'_ES`` is learned).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError
from ..training.checkpoint import rebuild_model, save_checkpoint
from .config import AtlasConfig
from .frame import CanonicalFrame
from .networks import SpatialFlow, TemplateSDF, TemporalFlow
from .shape_prior import ShapeMotionPrior

CHECKPOINT_KIND = "atlas"
PathLike = Union[str, os.PathLike]


def clamped_l1(predicted: torch.Tensor, target: torch.Tensor, clamp: float) -> torch.Tensor:
    """DeepSDF loss: ``mean |clamp(pred, +-d) - clamp(target, +-d)|``."""
    return (predicted.clamp(-clamp, clamp) - target.clamp(-clamp, clamp)).abs().mean()


class NeuralDiffeomorphicAtlas(nn.Module):
    """Networks, codes and learned scalars of the atlas (see the module docstring)."""

    def __init__(self, config: AtlasConfig, n_subjects: int) -> None:
        super().__init__()
        self.config = config
        self.template = TemplateSDF(config.template_hidden, config.template_layers, config.template_frequencies)
        self.spatial = SpatialFlow(config)
        self.temporal = TemporalFlow(config.time_code_dim, config.time_harmonics, config.time_quadrature)
        self.shape_codes = nn.Parameter(torch.randn(n_subjects, config.shape_code_dim) * config.code_init_std)
        self.time_codes = nn.Parameter(torch.randn(n_subjects, config.time_code_dim) * config.code_init_std)
        self.template_es_phase = nn.Parameter(torch.tensor(0.35))
        self.register_buffer("extent_factor", torch.tensor(1.0))

    @property
    def n_subjects(self) -> int:
        return int(self.shape_codes.shape[0])

    def networks(self) -> List[nn.Module]:
        return [self.template, self.spatial, self.temporal]

    def forward(self, points: torch.Tensor, phases: torch.Tensor, shape_codes: torch.Tensor,
                time_codes: torch.Tensor, subject_index: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """SDF (canonical units) at subject canonical ``points`` ``(N, 3)`` and phases ``(N,)``; codes are
        ``(S, L)`` rows picked by ``subject_index`` ``(N,)`` (or one row for all points when it is None).
        Returns (``(N,)`` SDF, ``(N,)`` kinetic energy of D1)."""
        if subject_index is None:
            subject_index = torch.zeros(len(points), dtype=torch.long, device=points.device)
        template_points, energy = self.spatial(points, shape_codes, subject_index)
        template_phases = self.temporal(phases, time_codes, subject_index)
        return self.template(template_points, template_phases), energy

    def code_prior_stats(self) -> Dict[str, torch.Tensor]:
        """Mean and variance (floored at ``code_init_std^2``) of the training codes: the Gaussian prior
        for fitting new subjects."""
        floor = self.config.code_init_std**2
        stats = {}
        for name, codes in (("shape", self.shape_codes), ("time", self.time_codes)):
            codes = codes.detach()
            var = codes.var(dim=0, unbiased=False) if len(codes) > 1 else torch.zeros_like(codes[0])
            stats[f"{name}_mean"] = codes.mean(dim=0)
            stats[f"{name}_var"] = var.clamp_min(floor)
        return stats

    def es_alignment(self, time_codes: torch.Tensor, es_phases: torch.Tensor) -> torch.Tensor:
        """``(D2(t_ES, c_t) - t'_ES)^2`` per code row ``(S,)``."""
        index = torch.arange(len(time_codes), device=time_codes.device)
        return (self.temporal(es_phases, time_codes, index) - self.template_es_phase) ** 2


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block no parameter of ``module`` requires gradients (restored afterwards)."""
    states = [(p, p.requires_grad) for p in module.parameters()]
    try:
        for p, _ in states:
            p.requires_grad_(False)
        yield module
    finally:
        for p, flag in states:
            p.requires_grad_(flag)


class Atlas:
    """A trained atlas: model, config, training subjects (ids and canonical frames), device and the
    shape-to-motion prior (:mod:`.shape_prior`, None when not built; saved with the checkpoint)."""

    def __init__(self, module: NeuralDiffeomorphicAtlas, subject_ids: Sequence[str],
                 frames: Sequence[CanonicalFrame], device: Union[str, torch.device] = "cpu",
                 es_phases: Optional[Sequence[Optional[float]]] = None) -> None:
        self.module = module
        self.config = module.config
        self.subject_ids = list(subject_ids)
        self.frames = list(frames)
        self.es_phases = list(es_phases) if es_phases is not None else [None] * len(self.subject_ids)
        self.device = torch.device(device)
        self.training_seconds_per_step = float("nan")  # set by train_atlas
        self.template_level = 0.0  # SDF level of the template surface, set by meshing.extract_template_mesh
        self.shape_motion_prior: Optional[ShapeMotionPrior] = None  # set by train_atlas
        # per training subject (C0, C1) of its residual warp with the amplitude term (set by train_atlas; None: not fitted)
        self.training_residuals: Optional[List[Tuple[torch.Tensor, torch.Tensor]]] = None

    @property
    def extent_factor(self) -> float:
        return float(self.module.extent_factor.item())

    @property
    def template_es_phase(self) -> float:
        return float(self.module.template_es_phase.detach().item())

    @property
    def mean_scale_mm(self) -> float:
        """Mean mm per canonical unit over the training subjects (size of the template in mm)."""
        return float(np.mean([f.size_mm for f in self.frames])) * self.extent_factor

    def subject_codes(self, index: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """(shape code ``(Lp,)``, time code ``(Lt,)``) of training subject ``index``."""
        return self.module.shape_codes[index].detach(), self.module.time_codes[index].detach()

    def extra(self) -> Dict:
        return {"subject_ids": list(self.subject_ids), "frames": [f.to_dict() for f in self.frames],
                "es_phases": [None if e is None else float(e) for e in self.es_phases],
                "shape_motion_prior": None if self.shape_motion_prior is None else self.shape_motion_prior.to_dict(),
                "training_residuals": None if self.training_residuals is None else
                [[c.detach().cpu().to(torch.float32).flatten().tolist() for c in pair] for pair in self.training_residuals]}

    def save(self, path: PathLike, step: Optional[int] = None) -> Path:
        """Write a checkpoint (kind ``atlas``: config, weights, subjects) that :meth:`load` reads back."""
        return save_checkpoint(path, model_state=self.module.state_dict(), config=self.config,
                               step=int(step if step is not None else self.config.steps), kind=CHECKPOINT_KIND,
                               extra=self.extra())

    @classmethod
    def load(cls, path: PathLike, device: Union[str, torch.device, None] = "auto", *,
             allow_incomplete: Optional[bool] = None) -> "Atlas":
        """Rebuild an atlas from a checkpoint (``torch.load(weights_only=True)``); errors name the file."""
        def build(config: AtlasConfig, checkpoint) -> NeuralDiffeomorphicAtlas:
            try:
                return NeuralDiffeomorphicAtlas(config, len(checkpoint.extra["subject_ids"]))
            except (KeyError, TypeError) as error:
                raise CheckpointError(path, f"has no valid subject list ({error})") from error

        rebuilt = rebuild_model(path, kind=CHECKPOINT_KIND, config_cls=AtlasConfig, build=build, device=device,
                                allow_incomplete=allow_incomplete, freeze=False)
        extra = rebuilt.checkpoint.extra
        try:
            subject_ids = list(extra["subject_ids"])
            frames = [CanonicalFrame.from_dict(f) for f in extra["frames"]]
            es_phases = list(extra.get("es_phases") or [None] * len(subject_ids))
            prior = extra.get("shape_motion_prior")
            prior = None if prior is None else ShapeMotionPrior.from_dict(prior)
            residuals = extra.get("training_residuals")
            if residuals is not None:
                residuals = [tuple(_lattice(values, rebuilt.device) for values in pair) for pair in residuals]
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(path, f"has no valid subject list ({error})") from error
        atlas = cls(rebuilt.module, subject_ids, frames, rebuilt.device, es_phases)
        atlas.shape_motion_prior = prior
        atlas.training_residuals = residuals
        return atlas


def _lattice(values: Sequence[float], device: torch.device) -> torch.Tensor:
    """``(G, G, G, 3)`` control displacements from their flattened list (checkpoint ``extra``)."""
    tensor = torch.tensor(values, dtype=torch.float32)
    grid = round((len(tensor) / 3) ** (1.0 / 3.0))
    if grid**3 * 3 != len(tensor):
        raise ValueError(f"{len(tensor)} values are not a cubic lattice of 3-vectors")
    return tensor.reshape(grid, grid, grid, 3).to(device)


def load_atlas(path: PathLike, device: Union[str, torch.device, None] = "auto", *,
               allow_incomplete: Optional[bool] = None) -> Atlas:
    """Load an atlas checkpoint written by ``train_atlas`` (``weights_only=True``) onto ``device``
    (``"auto"``: CUDA when present). ``allow_incomplete``: None refuses a half-trained checkpoint unless the
    user allowed it (``--allow-incomplete``); True accepts it. Errors are :class:`CheckpointError` naming
    the file."""
    return Atlas.load(path, device, allow_incomplete=allow_incomplete)

__all__ = ["CHECKPOINT_KIND", "NeuralDiffeomorphicAtlas", "Atlas", "clamped_l1", "frozen", "load_atlas"]
