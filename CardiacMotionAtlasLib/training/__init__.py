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

from .checkpoint import FORMAT_VERSION, Checkpoint, load_checkpoint, save_checkpoint
from .config import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config_json,
    save_config_json,
    tiny_config,
)
from .device import DeviceUnavailableError, describe_device, select_device
from .distributed import is_rank_zero, rank_and_world_size
from .loop import TrainingResult, make_state_fns, run_training
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
from .seeding import capture_rng_state, derive_seed, make_generator, restore_rng_state, seed_everything

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
    "load_checkpoint",
    "save_checkpoint",
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
