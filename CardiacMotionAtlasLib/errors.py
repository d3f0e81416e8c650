"""Error types of the library. Every error about input names the offending file and the problem."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Optional, TextIO, Union

PathLike = Union[str, os.PathLike]


class CardiacMotionAtlasError(Exception):
    """Base class of every error the library raises on purpose."""


class InputFileError(CardiacMotionAtlasError):
    """A file (or folder) given as input is missing, unreadable or invalid.

    The message always starts with the path: ``InputFileError: study/sax.nii.gz: contains NaN``.
    """

    def __init__(self, path: Optional[PathLike], problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class CineStudyError(InputFileError):
    """A cine study on disk is inconsistent (mismatched frame counts, missing views, bad layout)."""


class GeometryError(CardiacMotionAtlasError):
    """An IJK->RAS matrix or slice geometry is invalid (non-orthonormal direction, zero spacing)."""


class CheckpointError(InputFileError):
    """A checkpoint is missing, corrupt, of another format version, or of another model."""


LOG_DIR_ENV = "CARDIAC_ATLAS_LOG_DIR"
"""Environment variable naming the folder of crash logs (default: ``<tempdir>/cardiac-atlas-logs``)."""
EXIT_REFUSED = 2
"""Exit status of a command that refused its input (a library error) or failed unexpectedly."""


def crash_log_dir() -> Path:
    """Folder where :func:`write_crash_log` puts full tracebacks (``$CARDIAC_ATLAS_LOG_DIR`` or a temp dir)."""
    configured = os.environ.get(LOG_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "cardiac-atlas-logs"


def write_crash_log(error: BaseException, prog: str, log_dir: Optional[Path] = None) -> Optional[Path]:
    """Write ``error``'s full traceback (plus the command line) atomically to a new file in ``log_dir``
    (default :func:`crash_log_dir`) and return its path; None when no log could be written."""
    from .io.atomic import atomic_write_text

    folder = Path(log_dir) if log_dir is not None else crash_log_dir()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in prog) or "cardiac-atlas"
    path = folder / f"{name}-{stamp}-{os.getpid()}.log"
    text = (f"command: {' '.join(sys.argv)}\nwhen (UTC): {stamp}\n\n"
            + "".join(traceback.format_exception(type(error), error, error.__traceback__)))
    try:
        atomic_write_text(path, text)
    except OSError:
        return None
    return path


def report_error(error: BaseException, prog: str, stream: Optional[TextIO] = None,
                 log_dir: Optional[Path] = None) -> int:
    """Print one line about ``error`` on ``stream`` (stderr) and return the exit status, never a traceback.

    - a library error (:class:`CardiacMotionAtlasError`): its message (it names the file and the problem);
    - an ``OSError`` about a file (``NotADirectoryError``, ``PermissionError`` ...): ``file: problem``;
    - anything else is unexpected: one line naming the exception, and the full traceback goes to a log
      file (:func:`write_crash_log`) whose path is printed.
    """
    stream = stream if stream is not None else sys.stderr
    if isinstance(error, CardiacMotionAtlasError):
        line = f"{prog}: error: {type(error).__name__}: {error}"
    elif isinstance(error, OSError) and error.filename is not None:
        line = f"{prog}: error: {error.filename}: {error.strerror or type(error).__name__}"
    else:
        log = write_crash_log(error, prog, log_dir)
        where = f"full traceback in {log}" if log is not None else "no log could be written"
        line = (f"{prog}: unexpected error (a bug, please report it): {type(error).__name__}: "
                f"{_one_line(str(error))} -- {where}")
    print(line, file=stream, flush=True)
    return EXIT_REFUSED


def _one_line(text: str, limit: int = 2000) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_guarded(prog: str, func: Callable[[], int], log_dir: Optional[Path] = None) -> int:
    """``func()``'s exit status; any exception is reported by :func:`report_error` (exit 2) and
    ``KeyboardInterrupt`` exits 130. ``SystemExit`` (argparse, explicit exits) passes through."""
    try:
        return func()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception as error:  # noqa: BLE001 - the single place where every failure becomes one line
        return report_error(error, prog, log_dir=log_dir)


__all__ = [
    "CardiacMotionAtlasError",
    "InputFileError",
    "CineStudyError",
    "GeometryError",
    "CheckpointError",
    "EXIT_REFUSED",
    "LOG_DIR_ENV",
    "crash_log_dir",
    "report_error",
    "run_guarded",
    "write_crash_log",
]
