"""Fitting a new subject: only its codes ``(c_p, c_t)`` are optimised, the networks stay frozen.

Settings (:data:`~.config.FIT_SETTINGS`): ``all`` observed frames, ``ed_es`` (ED and ES) or ``ed`` alone.
Objective: the training objective restricted to this subject (clamped L1 SDF + velocity penalty) plus
a Gaussian prior ``prior_weight * sum_d (c_d - mean_d)^2 / var_d`` with the training codes' mean and
variance. The codes start at that mean. Timing:

- ``ed``: ``D2(0) = 0`` whatever ``c_t``, so the data say nothing about timing. With
  ``FitConfig.ed_timing`` (default) ``c_t`` gets its prior and the timing term with the training
  cohort's mean ES phase as the target (:func:`cohort_es_phase`); without it ``c_t`` stays at the prior
  mean, whose ES is not the cohort's mean ES (``D2`` is nonlinear in ``c_t``).
- ``ed_es``: two frames leave ``c_t`` nearly free (only ``D2(t_ES)`` is seen, and the template changes
  slowly around its ES), so the fit would invent a timing. With ``time_prior`` (default), ``c_t`` gets
  the Gaussian prior and the timing term ``timing_weight * (D2(t_ES) - t'_ES)^2`` that puts the
  observed ES on the template's ES phase (learned in training, see :mod:`.model`). The benchmark
  measures the difference (``time_prior=False``).
- ``all``: ``c_t`` gets the Gaussian prior and, with ``FitConfig.observed_timing`` (default) when the
  frames carry LV blood-pool volumes, the timing term with the ES estimated from them
  (:mod:`.observed_timing`: periodic spline through the volumes), as a hinge that leaves the fit's own
  timing free within ``observed_timing_tolerance`` of the estimate (:func:`timing_term`). Without it
  (the previous default) no ES target entered the all-frames fit and its ES drifted across families
  (lofted ES error 0.077 vs 0.0067 from ED+ES), while in-family it was better than the volume estimate
  (held-out ellipsoidal phantom006: 0.011 vs 0.026 with the estimate as a plain target).

Shape-to-motion prior (``ed`` and ``ed_es``, ``FitConfig.shape_prior``, when the atlas carries one, see
:mod:`.shape_prior`): the ED frame is fitted first with the plain prior; its shape code predicts the full
codes ``(c_p, c_t)`` from the training cohort's regression, and the setting's frames are then fitted from
those codes with a Gaussian prior around them (the regression's leave-one-out residual variance) instead
of the cohort mean. From ED alone this sets the motion and timing that ED does not show; in ED+ES it is
the prior of ``c_t`` (and ``c_p``) next to the timing term.

Residual warp (``FitConfig.residual_grid`` / ``residual_steps``, :mod:`.residual`): the codes only reach
shapes the training cohort spans; on hearts of another phantom family the observed frame itself stayed
at ~2 mm chamfer whatever the steps or the prior weight (300 steps: unchanged; no prior: 2.04 -> 1.88 mm),
so the limit is the code space, not the prior. A last stage therefore fits a smooth time-invariant
warp of the subject's canonical frame with the codes frozen: the atlas keeps supplying motion and
timing, the warp the shape it cannot express. ``FittedSubject.residual`` holds it (saved with the codes).

Motion residual (``FitConfig.motion_residual``, issue 16): the codes and a time-invariant warp only
reach the template's contraction amplitude (every training subject's own codes gave ~50 % LVEF, sd 0.4
points, for true 28-65 %: ``D1`` is time-invariant and ``D2`` always reaches the template's ES). When the
setting observes a frame beyond ED, the residual stage also fits ``u1`` of
``R(p, t) = p + u0(p) + m(D2(t, c_t)) u1(p)`` (:mod:`.residual`): the subject's own contraction
amplitude, following the template's contraction profile at the subject's fitted timing.
``FittedSubject.motion_residual`` holds ``C1`` (None from ED alone: nothing there shows the amplitude,
the shape-to-motion prior's prediction stands). With ``FitConfig.residual_fit_time`` the residual stage
refines ``c_t`` too (its prior and timing terms as in the code stage), so the timing is fitted
together with the amplitude.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..errors import CheckpointError
from ..training.checkpoint import load_checkpoint, save_checkpoint
from ..training.progress import NullProgress, ProgressReporter
from ..training.schedules import cosine_factor
from ..training.seeding import make_generator
from .config import FitConfig
from .frame import CanonicalFrame
from .model import Atlas, clamped_l1, frozen
from .residual import apply_motion_residual, contraction_profile, residual_penalty, scalar_offset
from .sampling import SubjectData
from .shape_prior import ShapeMotionPrior, regress_shape_motion_prior

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
    residual: Optional[torch.Tensor] = None  # (G, G, G, 3) control displacements of the residual warp
    motion_residual: Optional[torch.Tensor] = None  # (G, G, G, 3) C1: displacement at the template's ES (m = 1)
    offset: Optional[torch.Tensor] = None  # (G, G, G) w0: transmural offset (canonical units), :mod:`.residual`
    motion_offset: Optional[torch.Tensor] = None  # (G, G, G) w1: its change at the template's ES (m = 1)
    prior: Optional["CodePrior"] = field(default=None, repr=False, compare=False)  # the last stage's (not saved)

    def save(self, path: PathLike, config: Optional[FitConfig] = None) -> Path:
        """Write the fitted codes and frame as a checkpoint of kind ``atlas_subject``."""
        state = {"shape_code": self.shape_code.detach().cpu(), "time_code": self.time_code.detach().cpu()}
        if self.residual is not None:
            state["residual"] = self.residual.detach().cpu()
        if self.motion_residual is not None:
            state["motion_residual"] = self.motion_residual.detach().cpu()
        for name in ("offset", "motion_offset"):
            if getattr(self, name) is not None:
                state[name] = getattr(self, name).detach().cpu()
        return save_checkpoint(path, model_state=state,
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
                       float(extra.get("seconds", 0.0)), extra.get("es_phase"), checkpoint.model_state.get("residual"),
                       checkpoint.model_state.get("motion_residual"), checkpoint.model_state.get("offset"),
                       checkpoint.model_state.get("motion_offset"))
        except (KeyError, TypeError, ValueError) as error:
            raise CheckpointError(path, f"not a valid fitted subject ({error})") from error


def training_subject(atlas: Atlas, index: int, with_residual: bool = True) -> FittedSubject:
    """Training subject ``index`` as a :class:`FittedSubject` (its learned codes and, when the atlas has
    them, ``with_residual``, its residual warp with the amplitude term fitted after training)."""
    shape_code, time_code = atlas.subject_codes(index)
    residual = motion_residual = None
    if with_residual and atlas.training_residuals is not None:
        residual, motion_residual = atlas.training_residuals[index]
    return FittedSubject(atlas.subject_ids[index], atlas.frames[index], shape_code, time_code, "training",
                         es_phase=atlas.es_phases[index], residual=residual, motion_residual=motion_residual)


def fit_cohort_residuals(atlas: Atlas, subjects: Sequence[SubjectData], steps: int, points_per_frame: int,
                         seed: int = 0) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Each training subject's ``(C0, C1)`` (:mod:`.residual`) fitted on all its frames (``subjects`` in the
    atlas' training order) with its learned codes and the networks frozen."""
    config = FitConfig(residual_steps=steps, points_per_frame=points_per_frame, seed=seed, transmural_offset=False)
    out = []
    with frozen(atlas.module):
        for index, subject in enumerate(subjects):
            shape_code, time_code = atlas.subject_codes(index)
            c0, c1, _, _, _ = _optimise_residual(atlas, subject, atlas.frames[index].scale_mm, shape_code, time_code,
                                           config, NullProgress(), motion=observes_motion(subject))
            out.append((c0, c1 if c1 is not None else torch.zeros_like(c0)))
    return out


def prior_subject(atlas: Atlas, data: SubjectData) -> FittedSubject:
    """The codes a fit starts from (the training codes' mean): the 'untrained codes' reference."""
    stats = atlas.module.code_prior_stats()
    return FittedSubject(data.subject_id, data.frame.with_extent_factor(atlas.extent_factor),
                         stats["shape_mean"].clone(), stats["time_mean"].clone(), "prior", es_phase=data.es_phase)


def subject_residuals(subject: FittedSubject, device: torch.device
                      ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """``(C0, C1)`` of the subject's residual warp on ``device`` (None where absent)."""
    return tuple(None if c is None else c.to(device) for c in (subject.residual, subject.motion_residual))


def subject_offsets(subject: FittedSubject, device: torch.device
                    ) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """``(w0, w1)`` of the subject's transmural offset on ``device`` (None where absent)."""
    return tuple(None if c is None else c.to(device) for c in (subject.offset, subject.motion_offset))


def profile_of(atlas: Atlas, phases: torch.Tensor, time_code: torch.Tensor) -> torch.Tensor:
    """``m(D2(t, c_t))`` ``(N,)``: the template's contraction profile at the subject's phases ``(N,)`` (one
    time code ``(1, Lt)``); differentiable in ``c_t``."""
    return contraction_profile(atlas.module.temporal(phases, time_code), atlas.template_es_phase)


def sdf_error_mm(atlas: Atlas, subject: FittedSubject, data: SubjectData, max_points: int = 20000) -> float:
    """Mean absolute SDF error (mm) of ``subject``'s field on ``data``'s samples within the clamp band."""
    scale = subject.frame.scale_mm
    errors = []
    with torch.no_grad():
        for index in range(data.n_frames):
            points = torch.from_numpy(data.points_mm[index, :max_points] / scale).to(atlas.device)
            target = torch.from_numpy(data.sdf_mm[index, :max_points] / scale).to(atlas.device)
            phases = torch.full((len(points),), float(data.phases[index]), device=atlas.device)
            time_code = subject.time_code[None].to(atlas.device)
            profile = profile_of(atlas, phases, time_code)
            offset = scalar_offset(points, *subject_offsets(subject, atlas.device), profile)
            points = apply_motion_residual(points, *subject_residuals(subject, atlas.device), profile)
            predicted, _ = atlas.module(points, phases, subject.shape_code[None].to(atlas.device), time_code)
            predicted = predicted - offset
            band = target.abs() < atlas.config.clamp
            errors.append(((predicted - target).abs()[band] * scale).cpu().numpy())
    return float(np.concatenate(errors).mean())


@dataclass
class CodePrior:
    """Gaussian prior of a fit: means and variances of ``c_p`` ``(Lp,)`` and ``c_t`` ``(Lt,)`` (code
    units); a fit starts its codes at the means."""

    shape_mean: torch.Tensor
    shape_var: torch.Tensor
    time_mean: torch.Tensor
    time_var: torch.Tensor


def cohort_prior(atlas: Atlas) -> CodePrior:
    """The plain prior: the training codes' mean and (floored) variance."""
    stats = atlas.module.code_prior_stats()
    return CodePrior(stats["shape_mean"], stats["shape_var"], stats["time_mean"], stats["time_var"])


def shape_motion_prior_of(atlas: Atlas, ed_shape_code: torch.Tensor) -> CodePrior:
    """The shape-to-motion prior (:mod:`.shape_prior`): codes predicted from an ED code, with the
    regression's leave-one-out residual variance."""
    shape_mean, time_mean = atlas.shape_motion_prior.predict(ed_shape_code)
    shape_var, time_var = atlas.shape_motion_prior.variances(atlas.device)
    return CodePrior(shape_mean.to(atlas.device), shape_var, time_mean.to(atlas.device), time_var)


def cohort_es_phase(atlas: Atlas) -> Optional[float]:
    """Mean known ES phase of the training subjects (normalised cycle phase; None when none is known)."""
    known = [float(e) for e in atlas.es_phases if e is not None]
    return float(np.mean(known)) if known else None


def _optimise_codes(atlas: Atlas, observed: SubjectData, scale_mm: float, prior: CodePrior, fit_time: bool,
                    es_phase: Optional[float], config: FitConfig, progress: ProgressReporter,
                    done: int = 0, timing_tolerance: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """``config.steps`` Adam steps on the codes (networks frozen, see the module docstring) from the
    prior's means; ``c_t`` moves only when ``fit_time``. Returns ``(c_p, c_t)``."""
    module, device = atlas.module, atlas.device
    points, sdf, phases = _observed_tensors(atlas, observed, scale_mm)
    shape_code = prior.shape_mean.clone()[None].requires_grad_(True)
    time_code = prior.time_mean.clone()[None].requires_grad_(fit_time)
    optimizer = torch.optim.Adam([shape_code] + ([time_code] if fit_time else []), lr=config.learning_rate)
    es = torch.tensor([float(es_phase)], device=device) if es_phase is not None else None
    n_frames, n_points = points.shape[:2]
    per_frame = min(config.points_per_frame, n_points)
    frame_weights = ed_frame_weights(observed.phases, config.ed_weight, device)
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = config.learning_rate * cosine_factor(step, config.steps)
        generator = make_generator(config.seed, stream=step)
        choice = torch.randint(0, n_points, (n_frames, per_frame), generator=generator).to(device)
        frame_index = torch.arange(n_frames, device=device)[:, None].expand_as(choice)
        batch_points = points[frame_index, choice].reshape(-1, 3)
        batch_sdf = sdf[frame_index, choice].reshape(-1)
        batch_phases = phases[frame_index].reshape(-1)
        predicted, energy = module(batch_points, batch_phases, shape_code, time_code)
        loss = _frame_weighted_l1(predicted, batch_sdf, atlas.config.clamp, frame_weights) \
            + atlas.config.velocity_weight * energy.mean()
        penalty = ((shape_code[0] - prior.shape_mean) ** 2 / prior.shape_var).sum()
        if config.time_prior:
            penalty = penalty + ((time_code[0] - prior.time_mean) ** 2 / prior.time_var).sum()
            if es is not None:
                loss = loss + config.timing_weight * timing_term(module, time_code, es, timing_tolerance)
        loss = loss + config.prior_weight * penalty
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress.update(done + step + 1, loss=float(loss.detach()))
    return shape_code.detach()[0], time_code.detach()[0]


def ed_frame_weights(phases: np.ndarray, ed_weight: float, device: torch.device) -> Optional[torch.Tensor]:
    """Per-frame weights ``(F,)`` of the fit's SDF term: the ED frame (phase 0) ``ed_weight``, the others 1,
    normalised to mean 1; None (plain mean) when ``ed_weight`` is 1 or there is one frame."""
    phases = np.asarray(phases, float)
    if ed_weight == 1.0 or len(phases) < 2:
        return None
    weights = np.where(np.abs((phases + 0.5) % 1.0 - 0.5) < 1e-6, float(ed_weight), 1.0)
    return torch.as_tensor(weights / weights.mean(), dtype=torch.float32, device=device)


def _frame_weighted_l1(predicted: torch.Tensor, target: torch.Tensor, clamp: float,
                       frame_weights: Optional[torch.Tensor]) -> torch.Tensor:
    """Clamped L1 of a batch drawn frame by frame (equal points per frame), frames weighted
    (:func:`ed_frame_weights`; None: the plain mean)."""
    if frame_weights is None:
        return clamped_l1(predicted, target, clamp)
    error = (predicted.clamp(-clamp, clamp) - target.clamp(-clamp, clamp)).abs()
    return (error.reshape(len(frame_weights), -1).mean(dim=1) * frame_weights).mean()


def timing_term(module, time_code: torch.Tensor, es: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """The ES timing term ``(D2(t_ES, c_t) - t'_ES)^2`` (``es`` ``(1,)``, normalised phases); with
    ``tolerance`` > 0 a hinge ``max(0, |D2(t_ES) - t'_ES| - tolerance)^2`` that leaves the fit's own
    timing free within ``tolerance`` of the target (an estimated, not an observed, ES)."""
    if tolerance <= 0:
        return module.es_alignment(time_code, es).sum()
    deviation = module.es_alignment(time_code, es).clamp_min(1e-12).sqrt()
    return (torch.relu(deviation - tolerance) ** 2).sum()


def _observed_tensors(atlas: Atlas, observed: SubjectData, scale_mm: float):
    device = atlas.device
    return (torch.from_numpy(observed.points_mm / scale_mm).to(device),
            torch.from_numpy(observed.sdf_mm / scale_mm).to(device),
            torch.from_numpy(observed.phases.astype(np.float32)).to(device))


def _optimise_residual(atlas: Atlas, observed: SubjectData, scale_mm: float, shape_code: torch.Tensor,
                       time_code: torch.Tensor, config: FitConfig, progress: ProgressReporter, done: int = 0,
                       motion: bool = False, prior: Optional[CodePrior] = None, es_phase: Optional[float] = None,
                       timing_tolerance: float = 0.0) -> Tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor, Optional[torch.Tensor],
                                  Optional[torch.Tensor]]:
    """``config.residual_steps`` Adam steps on the residual warp's control displacements
    (:mod:`.residual`) with the shape code and networks frozen: clamped L1 SDF on the observed frames plus
    ``residual_weight`` times :func:`~.residual.residual_penalty` of ``C0`` (and, with ``motion``,
    ``motion_residual_weight`` times that of ``C1``). With ``motion`` and ``config.residual_fit_time`` the
    time code moves too (``prior``'s Gaussian term and, given ``es_phase``, the timing term at
    ``residual_timing_weight``). With ``config.transmural_offset`` the scalar offset ``w0`` (and, with
    ``motion``, ``w1``) is fitted too (:func:`~.residual.scalar_offset`, penalty ``offset_weight``).
    Returns ``(C0, C1 or None, c_t, w0 or None, w1 or None)``: ``(G, G, G, 3)`` / ``(Lt,)`` / ``(G, G, G)``."""
    module, device = atlas.module, atlas.device
    points, sdf, phases = _observed_tensors(atlas, observed, scale_mm)
    grid = config.residual_grid
    coefficients = torch.zeros(grid, grid, grid, 3, device=device, requires_grad=True)
    motion_coefficients = torch.zeros(grid, grid, grid, 3, device=device, requires_grad=True) if motion else None
    fit_time = bool(motion and config.residual_fit_time and prior is not None)
    time_code = time_code[None].to(device).clone().requires_grad_(fit_time)
    offset = motion_offset = None
    if config.transmural_offset:
        offset = torch.zeros(grid, grid, grid, device=device, requires_grad=True)
        motion_offset = torch.zeros(grid, grid, grid, device=device, requires_grad=True) if motion else None
    parameters = [c for c in (coefficients, motion_coefficients, offset, motion_offset) if c is not None]
    optimizer = torch.optim.Adam([{"params": parameters, "lr": config.residual_learning_rate}]
                                 + ([{"params": [time_code], "lr": config.learning_rate}] if fit_time else []))
    base_lr = [group["lr"] for group in optimizer.param_groups]
    es = torch.tensor([float(es_phase)], device=device) if es_phase is not None else None
    n_frames, n_points = points.shape[:2]
    per_frame = min(config.points_per_frame, n_points)
    frame_weights = ed_frame_weights(observed.phases, config.ed_weight, device)
    shape = shape_code[None].to(device)
    for step in range(config.residual_steps):
        for group, lr in zip(optimizer.param_groups, base_lr):
            group["lr"] = lr * cosine_factor(step, config.residual_steps)
        generator = make_generator(config.seed, stream=100000 + step)
        choice = torch.randint(0, n_points, (n_frames, per_frame), generator=generator).to(device)
        frame_index = torch.arange(n_frames, device=device)[:, None].expand_as(choice)
        batch_phases = phases[frame_index].reshape(-1)
        profile = profile_of(atlas, phases, time_code)[frame_index].reshape(-1) if motion else None
        query = points[frame_index, choice].reshape(-1, 3)
        batch_points = apply_motion_residual(query, coefficients, motion_coefficients, profile)
        predicted, _ = module(batch_points, batch_phases, shape, time_code)
        if offset is not None:
            predicted = predicted - scalar_offset(query, offset, motion_offset, profile)
        loss = _frame_weighted_l1(predicted, sdf[frame_index, choice].reshape(-1), atlas.config.clamp, frame_weights)
        loss = loss + config.residual_weight * residual_penalty(coefficients)
        if motion:
            loss = loss + config.motion_residual_weight * residual_penalty(motion_coefficients)
        for field_ in (offset, motion_offset):
            if field_ is not None:
                loss = loss + config.offset_weight * residual_penalty(field_)
        if fit_time:
            loss = loss + config.prior_weight * ((time_code[0] - prior.time_mean) ** 2 / prior.time_var).sum()
            if es is not None:
                loss = loss + config.residual_timing_weight * timing_term(module, time_code, es, timing_tolerance)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress.update(done + step + 1, loss=float(loss.detach()))
    return (coefficients.detach(), None if motion_coefficients is None else motion_coefficients.detach(),
            time_code.detach()[0], None if offset is None else offset.detach(),
            None if motion_offset is None else motion_offset.detach())


def observes_motion(observed: SubjectData) -> bool:
    """Whether the observed frames show motion (a frame beyond ED, phase > 0)."""
    return bool(np.any(np.asarray(observed.phases) > 1e-6))


def fit_subject(atlas: Atlas, data: SubjectData, setting: str = "all", config: Optional[FitConfig] = None,
                progress: Optional[ProgressReporter] = None, use_shape_prior: Optional[bool] = None) -> FittedSubject:
    """Fit the codes of a new subject from the frames ``setting`` observes (networks frozen).

    ``use_shape_prior`` (default ``config.shape_prior``): for ``ed`` and ``ed_es``, when the atlas carries
    a shape-to-motion prior, the ED frame is first fitted with the plain prior, then the setting's frames
    are fitted from the codes that prior predicts from that ED code (module docstring); the fit then
    takes twice ``config.steps`` steps. Then, unless ``config.residual_grid`` or ``residual_steps`` is 0,
    ``residual_steps`` steps fit the residual warp with the codes frozen (``FittedSubject.residual``;
    ``replace(fitted, residual=None)`` is the codes-only fit). ``FittedSubject.prior`` is the Gaussian
    prior of the last code stage (used by :func:`~.timing.prediction_spread`)."""
    config = config or FitConfig()
    use_shape_prior = config.shape_prior if use_shape_prior is None else use_shape_prior
    use_shape_prior = bool(use_shape_prior and setting in ("ed", "ed_es") and atlas.shape_motion_prior is not None)
    observed = data.observed(setting)
    start_time = time.perf_counter()
    frame = data.frame.with_extent_factor(atlas.extent_factor)
    es_phase = float(data.es_phase) if setting == "ed_es" else None
    progress = progress or NullProgress()
    stages = 2 if use_shape_prior else 1
    residual_steps = config.residual_steps if config.residual_grid > 0 else 0
    progress.start(config.steps * stages + residual_steps, f"fit {data.subject_id} ({setting})")
    atlas.module.eval()
    prior = cohort_prior(atlas)
    with frozen(atlas.module):
        if use_shape_prior:
            ed_code, _ = _optimise_codes(atlas, data.observed("ed"), frame.scale_mm, prior, False, None, config,
                                         progress)
            prior = shape_motion_prior_of(atlas, ed_code)
        timing_target = cohort_es_phase(atlas) if setting == "ed" and config.ed_timing else es_phase
        tolerance = 0.0
        if setting == "all" and config.observed_timing:
            timing_target, tolerance = observed.observed_es_phase(), config.observed_timing_tolerance
        shape_code, time_code = _optimise_codes(atlas, observed, frame.scale_mm, prior,
                                                setting != "ed" or timing_target is not None, timing_target,
                                                config, progress, done=config.steps * (stages - 1),
                                                timing_tolerance=tolerance)
        residual = motion_residual = offset = motion_offset = None
        if residual_steps > 0:
            motion = bool(config.motion_residual and observes_motion(observed))
            residual, motion_residual, time_code, offset, motion_offset = _optimise_residual(
                atlas, observed, frame.scale_mm, shape_code, time_code, config, progress, done=config.steps * stages,
                motion=motion, prior=prior, es_phase=timing_target, timing_tolerance=tolerance)
    progress.close()
    fitted = FittedSubject(data.subject_id, frame, shape_code, time_code, setting, es_phase=data.es_phase,
                           residual=residual, motion_residual=motion_residual, offset=offset,
                           motion_offset=motion_offset, prior=prior)
    fitted.seconds = time.perf_counter() - start_time
    fitted.sdf_error_mm = sdf_error_mm(atlas, fitted, observed)
    return fitted


def fit_shape_motion_prior(atlas: Atlas, subjects: Sequence[SubjectData], config: Optional[FitConfig] = None,
                           progress: Optional[ProgressReporter] = None) -> Optional[ShapeMotionPrior]:
    """Fit each training subject's ED frame (``subjects`` in the atlas' training order, as
    :class:`~.sampling.SubjectData`), regress the learned codes on those ED codes and return the prior
    (None when the atlas has fewer than 3 subjects)."""
    if len(subjects) < 3:
        return None
    ed_codes = []
    for subject in subjects:
        fitted = fit_subject(atlas, subject, "ed", config, progress=progress, use_shape_prior=False)
        ed_codes.append(fitted.shape_code.cpu().numpy())
    full = torch.cat([atlas.module.shape_codes.detach(), atlas.module.time_codes.detach()], dim=1).cpu().numpy()
    return regress_shape_motion_prior(np.stack(ed_codes), full, atlas.config.shape_code_dim)


__all__ = ["SUBJECT_KIND", "FittedSubject", "timing_term", "ed_frame_weights", "subject_residuals", "profile_of", "observes_motion", "CodePrior", "cohort_prior", "cohort_es_phase", "shape_motion_prior_of", "fit_subject",
           "subject_offsets", "fit_shape_motion_prior", "fit_cohort_residuals", "prior_subject", "training_subject", "sdf_error_mm"]
