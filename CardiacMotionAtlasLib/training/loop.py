"""A small generic, resumable training loop shared by every trainer (atlas, NISF++, CardioMorphNet,
CT CVAE).

The trainer supplies what is specific to it: ``step_fn(step)`` doing one optimisation step,
``state_dict_fn()`` returning what to save and ``load_state_fn(checkpoint)`` restoring it
(:func:`make_state_fns` builds both for a model/optimizer/scheduler). The loop owns the rest:
resuming at the saved step with the saved RNG states (a resumed run equals an uninterrupted one),
atomic checkpoints every N steps and at the end, progress, cancellation, and rank awareness (rank 0
writes; every rank's RNG state is saved).

Only a finished run is written under ``checkpoint_path``: the checkpoints on the way (every N steps, on
cancel) go to :func:`~CardiacMotionAtlasLib.training.checkpoint.partial_path` (``atlas.pt`` ->
``atlas.partial.pt``), marked incomplete with their step count, so a killed run never leaves a half-trained
model under the name that ``fit``/``apply`` read; the partial file is removed once the final one is written.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import torch

from ..errors import CheckpointError
from . import distributed
from .checkpoint import Checkpoint, load_checkpoint, partial_path, save_checkpoint
from .config import config_to_dict
from .progress import CancelToken, NullProgress, ProgressReporter, TrainingCancelled
from .seeding import capture_rng_state, restore_rng_state

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
StepFn = Callable[[int], Optional[Mapping[str, Any]]]
StateDictFn = Callable[[], Mapping[str, Any]]
LoadStateFn = Callable[[Checkpoint], None]
FinaliseFn = Callable[[], Optional[Mapping[str, Any]]]

_STATE_KEYS = ("model_state", "optimizer_state", "extra")
_CAPTURE = object()  # save(): capture the ranks' RNG states now


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """How a run ended: ``step`` completed steps of ``total_steps`` (equal on return), started at
    ``start_step`` (> 0 when resumed), with the last step's ``metrics``."""

    step: int
    total_steps: int
    start_step: int
    metrics: Dict[str, float]
    checkpoint_path: Optional[Path]

    @property
    def resumed(self) -> bool:
        return self.start_step > 0


def _metrics_as_floats(raw: Optional[Mapping[str, Any]], step: int) -> Dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise TypeError(f"step_fn({step}) returned {type(raw).__name__}; expected a mapping of metrics or None")
    out = {}
    for name, value in raw.items():
        out[str(name)] = float(value.detach().item()) if isinstance(value, torch.Tensor) else float(value)
    return out


def _config_differences(saved: Mapping[str, Any], current: Mapping[str, Any], prefix: str = "") -> list:
    diffs = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}{key}"
        if key not in saved:
            diffs.append(f"{name} (new)")
        elif key not in current:
            diffs.append(f"{name} (removed)")
        elif isinstance(saved[key], Mapping) and isinstance(current[key], Mapping):
            diffs.extend(_config_differences(saved[key], current[key], f"{name}."))
        elif saved[key] != current[key]:
            diffs.append(f"{name}: {saved[key]!r} -> {current[key]!r}")
    return diffs


def _restore_rank_rng(checkpoint: Checkpoint, rank: int) -> None:
    if rank < len(checkpoint.rng_state):
        restore_rng_state(checkpoint.rng_state[rank])
    else:
        warnings.warn(
            f"{checkpoint.path}: no RNG state for rank {rank} (saved by {len(checkpoint.rng_state)} rank(s)); "
            "keeping this rank's current RNG state, so the resumed run will not replay the original exactly",
            RuntimeWarning,
            stacklevel=3,
        )


def run_training(
    step_fn: StepFn,
    *,
    total_steps: int,
    checkpoint_path: Optional[PathLike],
    checkpoint_every: Optional[int],
    state_dict_fn: StateDictFn,
    load_state_fn: LoadStateFn,
    config: Any,
    kind: str,
    resume: bool = False,
    progress: Optional[ProgressReporter] = None,
    cancel: Optional[CancelToken] = None,
    description: str = "",
    rank: Optional[int] = None,
    world_size: Optional[int] = None,
    finalise: Optional[FinaliseFn] = None,
) -> TrainingResult:
    """Run ``step_fn(step)`` for ``step = start .. total_steps - 1``.

    - ``step_fn(step)`` does one optimisation step and returns metrics (floats or 0-d tensors) or None.
      Randomness must come from the global RNGs (restored on resume) or from generators derived from the
      step index (``make_generator(seed, stream=step)``) for a resumed run to equal an uninterrupted one.
    - ``state_dict_fn()`` returns ``{"model_state": ..., "optimizer_state": ..., "extra": {...}}``
      (the last two optional), called on rank 0 only; ``load_state_fn(checkpoint)`` restores them.
    - ``resume=True`` continues from the in-progress checkpoint ``partial_path(checkpoint_path)`` when it
      exists, else from ``checkpoint_path`` (finished: nothing to do) when it exists, else from step 0;
      its ``kind`` and ``config`` must match (a different config raises :class:`CheckpointError`).
    - A checkpoint is written every ``checkpoint_every`` completed steps (``None``/0: only at the end)
      and on cancel to ``partial_path(checkpoint_path)`` (marked incomplete), and at the end to
      ``checkpoint_path`` (complete; the partial file is then removed); atomically, by rank 0 only.
      ``checkpoint_path=None`` disables them.
    - ``cancel`` is checked before each step (on all ranks together); when set, the completed steps are
      checkpointed and :class:`TrainingCancelled` is raised (its ``checkpoint_path`` is the partial
      file). An exception inside ``step_fn`` leaves the last checkpoint as it was.
    - ``rank``/``world_size`` default to ``torch.distributed``'s when initialised, else 0/1.
    - ``finalise()`` (on every rank) computes what the finished model carries besides its weights (the
      atlas' shape prior, CardioMorphNet's interval calibration) after the last step; it returns entries
      merged into the final checkpoint's ``extra`` (or None). With it the final checkpoint is written once,
      after ``finalise``: the last step is checkpointed to the partial file first, so a run killed during
      ``finalise`` leaves no "complete" model without those entries (``resume`` then only finalises).
      It is not called when the run is cancelled; when resuming an already finished run it is called and
      the final file is left as it is.
    """
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 0:
        raise ValueError(f"total_steps must be a non-negative integer, got {total_steps!r}")
    if checkpoint_every is not None and (not isinstance(checkpoint_every, int) or checkpoint_every < 0):
        raise ValueError(f"checkpoint_every must be a non-negative integer or None, got {checkpoint_every!r}")
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path")
    dist_rank, dist_world = distributed.rank_and_world_size()
    rank = dist_rank if rank is None else rank
    world_size = dist_world if world_size is None else world_size
    path = None if checkpoint_path is None else Path(checkpoint_path)
    partial = None if path is None else partial_path(path)
    plain_config = config_to_dict(config)
    progress = progress if progress is not None else NullProgress()
    every = checkpoint_every or 0

    start = 0
    resumed_complete = False
    if resume and path is not None:
        source = partial if partial.exists() else path
        if source.exists():
            checkpoint = load_checkpoint(source, expected_kind=kind, allow_incomplete=True)
            diffs = _config_differences(checkpoint.config, plain_config)
            if diffs:
                raise CheckpointError(source, "was trained with another config: " + "; ".join(diffs))
            if checkpoint.step > total_steps:
                raise CheckpointError(source,
                                      f"is at step {checkpoint.step}, beyond total_steps={total_steps}")
            load_state_fn(checkpoint)
            _restore_rank_rng(checkpoint, rank)
            start = checkpoint.step
            resumed_complete = checkpoint.complete
            logger.info("%s: resuming at step %d/%d", source, start, total_steps)
        else:
            logger.info("%s: no checkpoint yet, starting from step 0", path)

    def save(done: int, final: Optional[bool] = None, extra: Optional[Mapping[str, Any]] = None,
             rng_states: Any = _CAPTURE) -> None:
        if rng_states is _CAPTURE:
            rng_states = distributed.gather_to_rank_zero(capture_rng_state())  # collective: every rank calls
        if rank != 0:
            return
        state = dict(state_dict_fn())
        unknown = sorted(set(state) - set(_STATE_KEYS))
        if unknown or "model_state" not in state:
            raise ValueError(
                f"state_dict_fn() must return model_state (+ optimizer_state, extra), got keys {sorted(state)}"
            )
        if extra:
            state["extra"] = {**dict(state.get("extra") or {}), **extra}
        finished = done >= total_steps if final is None else final
        save_checkpoint(path if finished else partial, config=plain_config, step=done, kind=kind,
                        rng_state=rng_states, total_steps=total_steps, complete=finished, **state)
        if finished and partial.exists():
            partial.unlink()

    last_saved = start if start > 0 and (resumed_complete or start < total_steps) else None
    metrics: Dict[str, float] = {}
    progress.start(total_steps, description, initial=start)
    try:
        for step in range(start, total_steps):
            if cancel is not None and distributed.any_rank(cancel.is_cancelled()):
                if path is not None and last_saved != step:
                    save(step)
                    last_saved = step
                where = None if last_saved is None else (path if last_saved >= total_steps else partial)
                raise TrainingCancelled(step, total_steps, where, cancel.reason)
            metrics = _metrics_as_floats(step_fn(step), step)
            done = step + 1
            if path is not None and done == total_steps and finalise is not None:
                save(done, final=False)  # the last step is safe; the final model waits for finalise()
            elif path is not None and (done == total_steps or (every and done % every == 0)):
                save(done)
                last_saved = done
            progress.update(done, **metrics)
        if finalise is not None:
            # captured before finalise() draws: the final file keeps the RNG state the last step left
            rng_states = distributed.gather_to_rank_zero(capture_rng_state()) if path is not None else None
            extra = finalise()
            if path is not None and last_saved != total_steps:
                save(total_steps, extra={k: v for k, v in dict(extra or {}).items() if v is not None},
                     rng_states=rng_states)
        elif path is not None and last_saved != total_steps:
            save(total_steps)  # total_steps == 0, or resumed from a partial at the end: write the final model
    finally:
        progress.close()
    return TrainingResult(
        step=total_steps, total_steps=total_steps, start_step=start, metrics=metrics, checkpoint_path=path
    )


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare module inside DistributedDataParallel / DataParallel, so checkpoints load anywhere."""
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    return model.module if isinstance(model, wrappers) else model


def make_state_fns(
    model: torch.nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Optional[Any] = None,
    *,
    extra_fn: Optional[Callable[[], Mapping[str, Any]]] = None,
) -> Tuple[StateDictFn, LoadStateFn]:
    """``(state_dict_fn, load_state_fn)`` for :func:`run_training` with one model (wrap several parts in
    an ``nn.ModuleDict``), an optional optimizer and LR scheduler. ``model_state`` is the bare model's
    ``state_dict`` (DDP wrappers removed); ``optimizer_state`` is ``{"optimizer": ..., "scheduler": ...}``.
    ``extra_fn()`` adds trainer-specific values under ``extra``."""

    def state_dict_fn() -> Dict[str, Any]:
        state: Dict[str, Any] = {"model_state": _unwrap(model).state_dict()}
        if optimizer is not None or scheduler is not None:
            state["optimizer_state"] = {
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
            }
        if extra_fn is not None:
            state["extra"] = dict(extra_fn())
        return state

    def load_state_fn(checkpoint: Checkpoint) -> None:
        try:
            _unwrap(model).load_state_dict(checkpoint.model_state)
        except (RuntimeError, KeyError, TypeError) as error:
            raise CheckpointError(checkpoint.path, f"model state does not fit the model: {error}") from error
        saved = checkpoint.optimizer_state or {}
        for name, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
            if obj is None:
                continue
            if saved.get(name) is None:
                raise CheckpointError(checkpoint.path, f"has no {name} state to resume from")
            try:
                obj.load_state_dict(saved[name])
            except (RuntimeError, KeyError, ValueError, TypeError) as error:
                raise CheckpointError(checkpoint.path, f"{name} state does not fit: {error}") from error

    return state_dict_fn, load_state_fn


__all__ = ["FinaliseFn", "LoadStateFn", "StateDictFn", "StepFn", "TrainingResult", "make_state_fns", "run_training"]
