"""Shared machinery for every trainer and fitter (atlas, NISF++, CardioMorphNet, CT CVAE): device
choice, seeding, progress and cancellation, atomic ``weights_only`` checkpoints, dataclass configs and a
resumable, rank-aware training loop.

Typical trainer::

    device = select_device(args.device)
    seed_everything(config.seed, rank)
    state_dict_fn, load_state_fn = make_state_fns(model, optimizer)
    run_training(step_fn, total_steps=config.steps, checkpoint_path=out / "atlas.pt",
                 checkpoint_every=500, state_dict_fn=state_dict_fn, load_state_fn=load_state_fn,
                 config=config, kind="atlas", resume=args.resume,
                 progress=make_progress_reporter(args.progress, rank=rank), cancel=token)
"""

import importlib
from typing import Any

# torch-free parts are imported eagerly (the Slicer GUI parses progress lines without torch); the
# torch-dependent parts load on first use (PEP 562), so `import CardiacMotionAtlasLib.training` is cheap.
from .config import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config_json,
    save_config_json,
    tiny_config,
)
from .completeness import (
    IncompleteCheckpointWarning,
    allow_incomplete_checkpoints,
    incomplete_allowed,
    partial_path,
)
from .progress import (
    PROGRESS_MODES,
    CallbackProgress,
    CancelToken,
    LineProgress,
    NullProgress,
    ProgressCallback,
    ProgressReporter,
    TqdmProgress,
    TrainingCancelled,
    cancel_on_signals,
    make_progress_reporter,
    parse_progress_line,
)

_LAZY = {
    "FORMAT_VERSION": "checkpoint", "Checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint", "Rebuilt": "checkpoint", "rebuild_model": "checkpoint",
    "DeviceUnavailableError": "device", "describe_device": "device", "select_device": "device",
    "is_rank_zero": "distributed", "rank_and_world_size": "distributed",
    "TrainingResult": "loop", "make_state_fns": "loop", "run_training": "loop",
    "capture_rng_state": "seeding", "derive_seed": "seeding", "make_generator": "seeding",
    "restore_rng_state": "seeding", "seed_everything": "seeding",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    # device
    "DeviceUnavailableError",
    "describe_device",
    "select_device",
    # seeding
    "capture_rng_state",
    "derive_seed",
    "make_generator",
    "restore_rng_state",
    "seed_everything",
    # progress and cancellation
    "PROGRESS_MODES",
    "CallbackProgress",
    "CancelToken",
    "LineProgress",
    "NullProgress",
    "ProgressCallback",
    "ProgressReporter",
    "TqdmProgress",
    "TrainingCancelled",
    "cancel_on_signals",
    "make_progress_reporter",
    "parse_progress_line",
    # checkpoints
    "FORMAT_VERSION",
    "Checkpoint",
    "IncompleteCheckpointWarning",
    "allow_incomplete_checkpoints",
    "incomplete_allowed",
    "partial_path",
    "load_checkpoint",
    "save_checkpoint",
    "Rebuilt",
    "rebuild_model",
    # configs
    "ConfigError",
    "config_from_dict",
    "config_to_dict",
    "load_config_json",
    "save_config_json",
    "tiny_config",
    # loop and ranks
    "TrainingResult",
    "is_rank_zero",
    "make_state_fns",
    "rank_and_world_size",
    "run_training",
]
