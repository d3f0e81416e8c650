"""Which checkpoints may be applied: a training's in-progress file has its own name (:func:`partial_path`)
and is marked incomplete; applying one needs the user's consent (``allow_incomplete=True``, the
:func:`allow_incomplete_checkpoints` context that the CLI's ``--allow-incomplete`` opens, or
``$CARDIAC_ATLAS_ALLOW_INCOMPLETE=1`` for child processes). Torch-free, so the CLI imports it cheaply."""

from __future__ import annotations

import contextlib
import contextvars
import os
from pathlib import Path
from typing import Iterator, Optional, Union

PathLike = Union[str, os.PathLike]

PARTIAL_TAG = ".partial"
ALLOW_INCOMPLETE_ENV = "CARDIAC_ATLAS_ALLOW_INCOMPLETE"
_ALLOW_INCOMPLETE: contextvars.ContextVar = contextvars.ContextVar("allow_incomplete", default=None)


class IncompleteCheckpointWarning(UserWarning):
    """An incomplete (half-trained) checkpoint was loaded because the caller allowed it."""


def partial_path(path: PathLike) -> Path:
    """Where a training writes its in-progress checkpoint: ``atlas.pt`` -> ``atlas.partial.pt``."""
    path = Path(path)
    suffix = path.suffix
    stem = path.name[: -len(suffix)] if suffix else path.name
    return path.with_name(f"{stem}{PARTIAL_TAG}{suffix}")


@contextlib.contextmanager
def allow_incomplete_checkpoints(enabled: bool = True) -> Iterator[None]:
    """Within this block :func:`load_checkpoint` (and every method loader built on it) accepts
    incomplete checkpoints, with a warning, unless a call says otherwise."""
    token = _ALLOW_INCOMPLETE.set(bool(enabled))
    try:
        yield
    finally:
        _ALLOW_INCOMPLETE.reset(token)


def incomplete_allowed(explicit: Optional[bool] = None) -> bool:
    """``explicit`` if given, else :func:`allow_incomplete_checkpoints`' setting, else the environment."""
    if explicit is not None:
        return bool(explicit)
    scoped = _ALLOW_INCOMPLETE.get()
    if scoped is not None:
        return bool(scoped)
    return os.environ.get(ALLOW_INCOMPLETE_ENV, "").strip().lower() in ("1", "true", "yes")


__all__ = ["ALLOW_INCOMPLETE_ENV", "IncompleteCheckpointWarning", "PARTIAL_TAG", "allow_incomplete_checkpoints",
           "incomplete_allowed", "partial_path"]
