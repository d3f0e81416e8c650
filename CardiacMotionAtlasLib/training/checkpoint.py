"""Checkpoints: one ``torch.save`` file per run, written atomically, read with ``weights_only=True``.

Layout (format version 1), a dict of tensors and builtins only::

    {"format": "CardiacMotionAtlas.checkpoint", "format_version": 1,
     "kind": "atlas" | "nisf" | "cardiomorphnet" | "ct_cvae" | ...,
     "step": completed steps, "config": plain dict (see training.config),
     "model_state": state dict (or a dict of them), "optimizer_state": ... or None,
     "rng_state": [per-rank RNG state (training.seeding)], "extra": dict,
     "library_version": str, "torch_version": str,
     "complete": bool, "total_steps": int or None}

Reading never unpickles arbitrary objects; any problem (missing, truncated, corrupt, foreign file, other
kind, newer format) raises :class:`~CardiacMotionAtlasLib.errors.CheckpointError` naming the path; a file
holding code or objects (a pickle ``GLOBAL`` such as ``os.system``) is reported as refused, naming it.

Half-trained models are never applied by accident: the training loop writes its in-progress checkpoints
to :func:`partial_path` (``atlas.pt`` -> ``atlas.partial.pt``) marked ``"complete": False`` and only the
finished model under the final name. :func:`load_checkpoint` refuses an incomplete checkpoint (naming the
file and its step count) unless ``allow_incomplete=True``, :func:`allow_incomplete_checkpoints` is active
(the CLI's ``--allow-incomplete``) or ``$CARDIAC_ATLAS_ALLOW_INCOMPLETE=1``; then it warns
(:class:`IncompleteCheckpointWarning`) with the step count. Resuming always reads the partial file.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import torch

from .. import __version__ as LIBRARY_VERSION
from ..errors import CheckpointError
from ..io.atomic import atomic_path
from .config import ConfigError, config_from_dict, config_to_dict
from .device import select_device
from .completeness import (ALLOW_INCOMPLETE_ENV, IncompleteCheckpointWarning, allow_incomplete_checkpoints,
                           incomplete_allowed, partial_path)
from .pickle_scan import foreign_globals
from .seeding import capture_rng_state

PathLike = Union[str, os.PathLike]

FORMAT_MAGIC = "CardiacMotionAtlas.checkpoint"
FORMAT_VERSION = 1

# Upgrades of older layouts, applied in sequence on load: {old_version: fn(payload) -> payload of
# old_version + 1}. Add an entry here whenever FORMAT_VERSION is bumped.
MIGRATIONS: Dict[int, Callable[[Dict[str, Any]], Dict[str, Any]]] = {}

# Exact builtin types: subclasses (TorchVersion, IntEnum, ...) pickle as globals that weights_only refuses.
_SAFE_BUILTINS = (type(None), bool, int, float, str)
_SAFE_TORCH = (torch.Tensor, torch.dtype, torch.device, torch.Size)


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint (tensors on the ``map_location`` given to :func:`load_checkpoint`)."""

    path: Path
    kind: str
    step: int
    config: Dict[str, Any]
    model_state: Any
    optimizer_state: Any = None
    rng_state: List[Dict[str, Any]] = dataclasses.field(default_factory=list)
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    library_version: str = ""
    torch_version: str = ""
    complete: bool = True
    total_steps: Optional[int] = None

    def progress_text(self) -> str:
        """``step 250 of 1000`` (or ``step 250`` when the total is unknown)."""
        return f"step {self.step} of {self.total_steps}" if self.total_steps is not None else f"step {self.step}"


def _check_safe(value: Any, where: str) -> None:
    """Refuse, before writing, anything a ``weights_only`` load could not read back."""
    if type(value) in _SAFE_BUILTINS or isinstance(value, _SAFE_TORCH):
        return
    if type(value) in (dict, collections.OrderedDict):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise TypeError(f"{where}: key {key!r} ({type(key).__name__}) cannot be stored in a checkpoint")
            _check_safe(item, f"{where}[{key!r}]")
        return
    if type(value) in (list, tuple):
        for index, item in enumerate(value):
            _check_safe(item, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where}: {type(value).__module__}.{type(value).__qualname__} cannot be stored in a checkpoint "
        "(only tensors, numbers, strings, None and dicts/lists/tuples of them load with weights_only=True; "
        "convert numpy arrays with torch.from_numpy and objects to plain dicts)"
    )


def save_checkpoint(
    path: PathLike,
    *,
    model_state: Any,
    optimizer_state: Any = None,
    config: Any,
    step: int,
    extra: Optional[Mapping[str, Any]] = None,
    kind: str,
    rng_state: Union[None, Mapping[str, Any], Sequence[Mapping[str, Any]]] = None,
    total_steps: Optional[int] = None,
    complete: Optional[bool] = None,
) -> Path:
    """Write a checkpoint atomically (a reader never sees a partial file; on error the previous file at
    ``path`` is untouched) and return its path.

    ``total_steps``: the steps the run will have when finished; ``complete`` (default: ``total_steps`` is
    None or reached) marks a finished model: an incomplete one is refused for applying by
    :func:`load_checkpoint` unless allowed.

    ``config``: a dataclass config or a plain dict (stored via ``config_to_dict``). ``rng_state``: one
    state from ``capture_rng_state`` or a list of them, one per rank; ``None`` captures this process'.
    Raises ``TypeError`` (before touching the disk) when a value could not be loaded back with
    ``weights_only=True``.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be a non-negative integer, got {step!r}")
    if total_steps is not None and (isinstance(total_steps, bool) or not isinstance(total_steps, int)
                                    or total_steps < 0):
        raise ValueError(f"total_steps must be a non-negative integer or None, got {total_steps!r}")
    if complete is None:
        complete = total_steps is None or step >= total_steps
    try:
        plain_config = config_to_dict(config)
    except ConfigError as error:
        raise TypeError(f"config cannot be stored in a checkpoint: {error}") from error
    if rng_state is None:
        rng_states = [capture_rng_state()]
    elif isinstance(rng_state, Mapping):
        rng_states = [dict(rng_state)]
    else:
        rng_states = [dict(state) for state in rng_state]
    payload = {
        "format": FORMAT_MAGIC,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "step": step,
        "config": plain_config,
        "model_state": model_state,
        "optimizer_state": optimizer_state,
        "rng_state": rng_states,
        "extra": dict(extra or {}),
        "library_version": LIBRARY_VERSION,
        "torch_version": str(torch.__version__),  # TorchVersion is a str subclass weights_only refuses
        "complete": bool(complete),
        "total_steps": total_steps,
    }
    _check_safe(payload, "checkpoint")
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
    return path


_GLOBAL_IN_MESSAGE = re.compile(r"\bGLOBAL ([\w.]+)")  # torch: "Unsupported global: GLOBAL posix.system ..."
def _refused(path: Path, name: str) -> CheckpointError:
    return CheckpointError(
        path,
        f"refused: contains code/objects that weights_only loading does not allow ({name}); checkpoints are "
        "read with torch.load(weights_only=True), never as arbitrary pickles",
    )


def _read_payload(path: Path, map_location: Any) -> Any:
    if not path.exists():
        raise CheckpointError(path, "no such checkpoint file")
    if path.is_dir():
        raise CheckpointError(path, "is a directory, expected a checkpoint file")
    if not path.is_file():
        raise CheckpointError(path, "not a regular file (a device, pipe or socket), expected a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "empty file (truncated checkpoint)")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # foreign pickles: we raise
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... for bad files
        text = str(error)
        named = _GLOBAL_IN_MESSAGE.findall(text) if "Weights only load failed" in text else []
        names = list(dict.fromkeys(foreign_globals(path) or named))  # the file's own (qualified), else torch's
        if names:
            raise _refused(path, ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")) from error
        detail = text.split("WeightsUnpickler error:", 1)[-1].strip().splitlines()
        detail = detail[0].strip() if detail else ""
        if "Weights only load failed" in text:
            raise CheckpointError(path, f"corrupt or truncated checkpoint ({detail})") from error
        raise CheckpointError(path, f"corrupt or truncated checkpoint ({type(error).__name__}: {detail})") from error


def _upgrade(path: Path, payload: Dict[str, Any]) -> Dict[str, Any]:
    version = payload.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise CheckpointError(path, f"invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            path,
            f"format version {version} is newer than this library reads ({FORMAT_VERSION}); "
            "update CardiacMotionAtlasLib",
        )
    while version < FORMAT_VERSION:
        migrate = MIGRATIONS.get(version)
        if migrate is None:
            raise CheckpointError(
                path, f"format version {version} is no longer supported (this library reads {FORMAT_VERSION})"
            )
        payload = migrate(payload)
        version += 1
        payload["format_version"] = version
    return payload


def _incomplete_problem(checkpoint: "Checkpoint") -> str:
    return (f"incomplete model: its training stopped at {checkpoint.progress_text()}; finish it with --resume, "
            "or pass --allow-incomplete (allow_incomplete=True) to use it anyway")


def _missing_with_partial(path: Path, map_location: Any, expected_kind: Optional[str],
                          allow: bool) -> Optional["Checkpoint"]:
    """``path`` is missing: the partial checkpoint beside it when allowed, else a refusal naming it."""
    partial = partial_path(path)
    if not partial.is_file():
        return None
    try:
        checkpoint = _validate(partial, _read_payload(partial, map_location), expected_kind)
    except CheckpointError as error:
        raise CheckpointError(path, f"no such checkpoint file (an unfinished training left {partial.name}, "
                                    f"unreadable: {error.problem})") from error
    if not allow:
        raise CheckpointError(path, f"no such checkpoint file: its training did not finish; {partial} holds "
                                    f"{checkpoint.progress_text()}; finish it with --resume, or pass "
                                    "--allow-incomplete (allow_incomplete=True) to use it anyway")
    return checkpoint


def load_checkpoint(
    path: PathLike,
    *,
    expected_kind: Optional[str] = None,
    map_location: Any = "cpu",
    allow_incomplete: Optional[bool] = None,
) -> Checkpoint:
    """Read a checkpoint with ``torch.load(..., weights_only=True)`` and validate it.

    Raises :class:`CheckpointError` naming ``path`` when the file is missing, empty, truncated, corrupt,
    not a checkpoint of this library, of a newer format version, holds arbitrary objects, or is of another
    kind than ``expected_kind``; and when it is an incomplete (in-progress) checkpoint, unless
    ``allow_incomplete`` (default: :func:`incomplete_allowed`), which then warns with its step count. With
    ``path`` missing but its :func:`partial_path` present, that one is loaded when allowed.
    """
    path = Path(path)
    allow = incomplete_allowed(allow_incomplete)
    checkpoint = None
    if not path.exists():
        checkpoint = _missing_with_partial(path, map_location, expected_kind, allow)
    if checkpoint is None:
        checkpoint = _validate(path, _read_payload(path, map_location), expected_kind)
    if not checkpoint.complete:
        if not allow:
            raise CheckpointError(checkpoint.path, _incomplete_problem(checkpoint))
        if allow_incomplete is None:  # a user's choice (flag, context, environment): say what is used
            warnings.warn(f"{checkpoint.path}: using an INCOMPLETE model ({checkpoint.progress_text()}) as "
                          "asked (--allow-incomplete)", IncompleteCheckpointWarning, stacklevel=2)
    return checkpoint


def _validate(path: Path, payload: Any, expected_kind: Optional[str]) -> Checkpoint:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_MAGIC:
        raise CheckpointError(path, "not a CardiacMotionAtlas checkpoint (no format marker)")
    payload = _upgrade(path, payload)
    kind = payload.get("kind")
    if not isinstance(kind, str):
        raise CheckpointError(path, f"invalid kind {kind!r}")
    if expected_kind is not None and kind != expected_kind:
        raise CheckpointError(path, f"checkpoint of kind {kind!r}, expected {expected_kind!r}")
    step = payload.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise CheckpointError(path, f"invalid step {step!r}")
    if not isinstance(payload.get("config"), dict):
        raise CheckpointError(path, "has no config dict")
    if "model_state" not in payload:
        raise CheckpointError(path, "has no model state")
    rng_state = payload.get("rng_state") or []
    if not isinstance(rng_state, list):
        raise CheckpointError(path, "invalid rng_state (expected a list of per-rank states)")
    total = payload.get("total_steps")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)):
        raise CheckpointError(path, f"invalid total_steps {total!r}")
    complete = payload.get("complete", True)  # files written before the marker: finished models
    if not isinstance(complete, bool):
        raise CheckpointError(path, f"invalid completion marker {complete!r}")
    return Checkpoint(
        path=path,
        kind=kind,
        step=step,
        config=payload["config"],
        model_state=payload["model_state"],
        optimizer_state=payload.get("optimizer_state"),
        rng_state=rng_state,
        extra=dict(payload.get("extra") or {}),
        format_version=payload["format_version"],
        library_version=str(payload.get("library_version", "")),
        torch_version=str(payload.get("torch_version", "")),
        complete=complete,
        total_steps=total,
    )


@dataclasses.dataclass(frozen=True)
class Rebuilt:
    """A model rebuilt by :func:`rebuild_model`: the module (eval mode, on ``device``), its config
    dataclass and the checkpoint it came from (``extra`` for the method's own records)."""

    module: torch.nn.Module
    config: Any
    checkpoint: Checkpoint
    device: torch.device


def rebuild_model(
    path: PathLike,
    *,
    kind: str,
    config_cls: type,
    build: Callable[[Any, Checkpoint], torch.nn.Module],
    device: Union[str, torch.device, None] = "auto",
    allow_incomplete: Optional[bool] = None,
    check_state: Optional[Callable[[Checkpoint], None]] = None,
    freeze: bool = True,
) -> Rebuilt:
    """The one way every method loader rebuilds its model from a checkpoint.

    Reads ``path`` with ``weights_only=True`` (on the CPU), checks its ``kind`` and completeness
    (``allow_incomplete``: None = refuse unless the user allowed it, see :func:`load_checkpoint`), rebuilds
    ``config_cls`` from the stored dict, calls ``build(config, checkpoint)`` for the module, runs
    ``check_state(checkpoint)`` (may raise :class:`CheckpointError`), loads the state, moves the module to
    ``device`` (``"auto"``: CUDA when present) in eval mode, with gradients off when ``freeze``. Every problem
    raises :class:`CheckpointError` naming ``path``.
    """
    device = select_device(device)
    checkpoint = load_checkpoint(path, expected_kind=kind, map_location="cpu", allow_incomplete=allow_incomplete)
    try:
        config = config_from_dict(config_cls, checkpoint.config, source=path)
    except ConfigError as error:
        raise CheckpointError(path, f"invalid {kind} config: {error}") from error
    module = build(config, checkpoint)
    if check_state is not None:
        check_state(checkpoint)
    try:
        module.load_state_dict(checkpoint.model_state)
    except (RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(path, f"model state does not fit its config: {error}") from error
    module.to(device).eval()
    if freeze:
        module.requires_grad_(False)
    return Rebuilt(module=module, config=config, checkpoint=checkpoint, device=device)


__all__ = ["ALLOW_INCOMPLETE_ENV", "FORMAT_MAGIC", "FORMAT_VERSION", "MIGRATIONS", "Checkpoint",
           "IncompleteCheckpointWarning", "Rebuilt", "allow_incomplete_checkpoints", "incomplete_allowed",
           "load_checkpoint", "partial_path", "rebuild_model", "save_checkpoint"]
