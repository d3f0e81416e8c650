"""Fitting a new subject: only its codes ``(c_p, c_t)`` are optimised, the networks stay frozen.

Settings (:data:`~.config.FIT_SETTINGS`): ``all`` observed frames, ``ed_es`` (ED and ES) or ``ed`` alone.
Objective: the training objective restricted to this subject (clamped L1 SDF + velocity penalty) plus
a Gaussian prior ``prior_weight * sum_d (c_d - mean_d)^2 / var_d`` with the training codes' mean and
variance. The codes start at that mean. Timing:

- ``ed``: ``D2(0) = 0`` whatever ``c_t``, so the data say nothing about timing; ``c_t`` stays at the
  cohort mean (the mean re-timing of the cohort).
- ``ed_es``: two frames leave ``c_t`` nearly free (only ``D2(t_ES)`` is seen, and the template changes
  slowly around its ES), so the fit would invent a timing. With ``time_prior`` (default), ``c_t`` gets
  the Gaussian prior and the timing term ``timing_weight * (D2(t_ES) - t'_ES)^2`` that puts the
  observed ES on the template's ES phase (learned in training, see :mod:`.model`). The benchmark
  measures the difference (``time_prior=False``).
- ``all``: ``c_t`` gets the Gaussian prior only.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..errors import CheckpointError
from ..training.checkpoint import load_checkpoint, save_checkpoint
from ..training.progress import NullProgress, ProgressReporter
from ..training.seeding import make_generator
from .config import FitConfig
from .frame import CanonicalFrame
from .model import Atlas, clamped_l1, frozen
from .sampling import SubjectData

SUBJECT_KIND = "atlas_subject"
PathLike = Union[str, os.PathLike]


@dataclass
class FittedSubject:
    """A subject expressed in the atlas: codes, canonical frame (with the atlas' extent factor) and how
    it was fitted (``setting``, final SDF error ``sdf_error_mm`` on its observed samples, ``seconds``)."""

    subject_id: str
    frame: CanonicalFrame
    shape_code: torch.Tensor
    time_code: torch.Tensor
    setting: str = "all"
    sdf_error_mm: float = float("nan")
    seconds: float = 0.0
    es_phase: Optional[float] = None

    def save(self, path: PathLike, config: Optional[FitConfig] = None) -> Path:
        """Write the fitted codes and frame as a checkpoint of kind ``atlas_subject``."""
        return save_checkpoint(path, model_state={"shape_code": self.shape_code.detach().cpu(),
                                                  "time_code": self.time_code.detach().cpu()},
                               config=config or FitConfig(), step=0, kind=SUBJECT_KIND,
                               extra={"subject_id": self.subject_id, "frame": self.frame.to_dict(),
                                      "setting": self.setting, "sdf_error_mm": float(self.sdf_error_mm),
                                      "seconds": float(self.seconds),
                                      "es_phase": None if self.es_phase is None else float(self.es_phase)})

    @classmethod
    def load(cls, path: PathLike, device: Union[str, torch.device] = "cpu") -> "FittedSubject":
        checkpoint = load_checkpoint(path, expected_kind=SUBJECT_KIND, map_location=device)
        try:
            extra = checkpoint.extra
            return cls(str(extra["subject_id"]), CanonicalFrame.from_dict(extra["frame"]),
                       checkpoint.model_state["shape_code"], checkpoint.model_state["time_code"],
                       str(extra.get("setting", "all")), float(extra.get("sdf_error_mm", float("nan"))),
                       float(extra.get("seconds", 0.0)), extra.get("es_phase"))
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(path, f"not a valid fitted subject ({error})") from error


def training_subject(atlas: Atlas, index: int) -> FittedSubject:
    """Training subject ``index`` as a :class:`FittedSubject` (its learned codes)."""
    shape_code, time_code = atlas.subject_codes(index)
    return FittedSubject(atlas.subject_ids[index], atlas.frames[index], shape_code, time_code, "training",
                         es_phase=atlas.es_phases[index])


def prior_subject(atlas: Atlas, data: SubjectData) -> FittedSubject:
    """The codes a fit starts from (the training codes' mean): the 'untrained codes' reference."""
    stats = atlas.module.code_prior_stats()
    return FittedSubject(data.subject_id, data.frame.with_extent_factor(atlas.extent_factor),
                         stats["shape_mean"].clone(), stats["time_mean"].clone(), "prior", es_phase=data.es_phase)


def sdf_error_mm(atlas: Atlas, subject: FittedSubject, data: SubjectData, max_points: int = 20000) -> float:
    """Mean absolute SDF error (mm) of ``subject``'s field on ``data``'s samples within the clamp band."""
    scale = subject.frame.scale_mm
    errors = []
    with torch.no_grad():
        for index in range(data.n_frames):
            points = torch.from_numpy(data.points_mm[index, :max_points] / scale).to(atlas.device)
            target = torch.from_numpy(data.sdf_mm[index, :max_points] / scale).to(atlas.device)
            phases = torch.full((len(points),), float(data.phases[index]), device=atlas.device)
            predicted, _ = atlas.module(points, phases, subject.shape_code[None].to(atlas.device),
                                        subject.time_code[None].to(atlas.device))
            band = target.abs() < atlas.config.clamp
            errors.append(((predicted - target).abs()[band] * scale).cpu().numpy())
    return float(np.concatenate(errors).mean())


def fit_subject(atlas: Atlas, data: SubjectData, setting: str = "all", config: Optional[FitConfig] = None,
                progress: Optional[ProgressReporter] = None) -> FittedSubject:
    """Fit the codes of a new subject from the frames ``setting`` observes (networks frozen)."""
    config = config or FitConfig()
    observed = data.observed(setting)
    module = atlas.module
    device = atlas.device
    start_time = time.perf_counter()
    frame = data.frame.with_extent_factor(atlas.extent_factor)
    scale = frame.scale_mm
    points = torch.from_numpy(observed.points_mm / scale).to(device)
    sdf = torch.from_numpy(observed.sdf_mm / scale).to(device)
    phases = torch.from_numpy(observed.phases.astype(np.float32)).to(device)
    stats = module.code_prior_stats()
    shape_code = stats["shape_mean"].clone()[None].requires_grad_(True)
    time_code = stats["time_mean"].clone()[None].requires_grad_(setting != "ed")
    parameters = [shape_code] + ([time_code] if setting != "ed" else [])
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate)
    es_phase = None
    if setting == "ed_es":
        es_phase = torch.tensor([float(data.es_phase)], device=device)
    n_frames, n_points = points.shape[:2]
    per_frame = min(config.points_per_frame, n_points)
    progress = progress or NullProgress()
    progress.start(config.steps, f"fit {data.subject_id} ({setting})")
    module.eval()
    with frozen(module):
        for step in range(config.steps):
            for group in optimizer.param_groups:
                group["lr"] = config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / config.steps)))
            generator = make_generator(config.seed, stream=step)
            choice = torch.randint(0, n_points, (n_frames, per_frame), generator=generator).to(device)
            frame_index = torch.arange(n_frames, device=device)[:, None].expand_as(choice)
            batch_points = points[frame_index, choice].reshape(-1, 3)
            batch_sdf = sdf[frame_index, choice].reshape(-1)
            batch_phases = phases[frame_index].reshape(-1)
            predicted, energy = module(batch_points, batch_phases, shape_code, time_code)
            loss = clamped_l1(predicted, batch_sdf, atlas.config.clamp) + atlas.config.velocity_weight * energy.mean()
            prior = ((shape_code[0] - stats["shape_mean"]) ** 2 / stats["shape_var"]).sum()
            if config.time_prior:
                prior = prior + ((time_code[0] - stats["time_mean"]) ** 2 / stats["time_var"]).sum()
                if es_phase is not None:
                    loss = loss + config.timing_weight * module.es_alignment(time_code, es_phase).sum()
            loss = loss + config.prior_weight * prior
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            progress.update(step + 1, loss=float(loss.detach()))
    progress.close()
    fitted = FittedSubject(data.subject_id, frame, shape_code.detach()[0], time_code.detach()[0], setting,
                           es_phase=data.es_phase)
    fitted.seconds = time.perf_counter() - start_time
    fitted.sdf_error_mm = sdf_error_mm(atlas, fitted, observed)
    return fitted


__all__ = ["SUBJECT_KIND", "FittedSubject", "fit_subject", "prior_subject", "training_subject", "sdf_error_mm"]
