"""Progress reporting and cancellation for long work (training, fitting, cohort batches).

A loop calls ``start(total, description)``, then ``update(step, **metrics)`` with the number of
completed steps (absolute, not an increment, so a resumed run simply starts higher), then ``close()``.
Implementations:

- :class:`TqdmProgress`: a progress bar on stderr (terminals);
- :class:`CallbackProgress`: calls ``callback(fraction, message)`` (the Slicer module turns it into a
  progress dialog); fractions are strictly increasing and a completed run ends at exactly 1.0;
- :class:`LineProgress`: prints ``PROGRESS <fraction> <message>`` lines on stdout for a parent process
  (the Slicer module runs the CLI in a subprocess) to parse with :func:`parse_progress_line`;
- :class:`NullProgress`: reports nothing.

Cancellation: a :class:`CancelToken` is checked by the loop between steps, which then raises
:class:`TrainingCancelled` after leaving its last checkpoint valid.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Optional, Protocol, TextIO, Tuple, runtime_checkable

from ..errors import CardiacMotionAtlasError

ProgressCallback = Callable[[float, str], None]

PROGRESS_PREFIX = "PROGRESS"
_PROGRESS_LINE = re.compile(r"^PROGRESS ([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?: (.*))?$")


@runtime_checkable
class ProgressReporter(Protocol):
    """What every long-running loop reports to."""

    def start(self, total: int, description: str = "", *, initial: int = 0) -> None:
        """A run of ``total`` steps begins (``initial`` of them already done, e.g. when resuming)."""

    def update(self, step: int, **metrics: Any) -> None:
        """``step`` steps (absolute count) are complete; ``metrics`` are floats or 0-d tensors."""

    def close(self) -> None:
        """The run ended (completed, failed or cancelled)."""


def _format_value(value: Any) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def format_progress_message(description: str, step: int, total: int, metrics: Mapping[str, Any]) -> str:
    """``"fit atlas: 5/20 loss=0.0123"``: one line, no newlines."""
    head = f"{description}: {step}/{total}" if description else f"{step}/{total}"
    tail = " ".join(f"{name}={_format_value(value)}" for name, value in metrics.items())
    text = f"{head} {tail}" if tail else head
    return " ".join(text.split())  # newlines or tabs in a description must not break line protocols


class _FractionReporter:
    """Shared bookkeeping: total, description, throttling by wall time, fraction clamping."""

    def __init__(self, min_interval_s: float = 0.0) -> None:
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")
        self.min_interval_s = float(min_interval_s)
        self.total = 0
        self.description = ""
        self._last_time = float("-inf")

    def start(self, total: int, description: str = "", *, initial: int = 0) -> None:
        if total < 0 or not 0 <= initial <= max(total, 0):
            raise ValueError(f"invalid progress range: initial={initial}, total={total}")
        self.total = int(total)
        self.description = description
        self._last_time = float("-inf")

    def _fraction(self, step: int) -> float:
        if self.total <= 0:
            return 1.0
        return min(max(step / self.total, 0.0), 1.0)

    def _due(self, fraction: float, force: bool = False) -> bool:
        now = time.monotonic()
        if force or fraction >= 1.0 or now - self._last_time >= self.min_interval_s:
            self._last_time = now
            return True
        return False


class NullProgress:
    """Reports nothing (tests, non-zero ranks, library calls without a reporter)."""

    def start(self, total: int, description: str = "", *, initial: int = 0) -> None:
        pass

    def update(self, step: int, **metrics: Any) -> None:
        pass

    def close(self) -> None:
        pass


class TqdmProgress:
    """A tqdm bar on ``file`` (stderr by default, so stdout stays free for results)."""

    def __init__(self, file: Optional[TextIO] = None, *, leave: bool = True, mininterval: float = 0.1) -> None:
        self.file = file
        self.leave = leave
        self.mininterval = mininterval
        self._bar = None

    def start(self, total: int, description: str = "", *, initial: int = 0) -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc=description or None,
            file=self.file if self.file is not None else sys.stderr,
            leave=self.leave,
            mininterval=self.mininterval,
            dynamic_ncols=True,
        )

    def update(self, step: int, **metrics: Any) -> None:
        if self._bar is None:
            return
        if metrics:
            self._bar.set_postfix({name: _format_value(value) for name, value in metrics.items()}, refresh=False)
        self._bar.update(step - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class CallbackProgress(_FractionReporter):
    """Adapts the loop to ``callback(fraction, message)``: fractions in [0, 1], strictly increasing
    (repeats are dropped), at most one call per ``min_interval_s`` except the final 1.0."""

    def __init__(self, callback: ProgressCallback, *, min_interval_s: float = 0.0) -> None:
        super().__init__(min_interval_s)
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        self.callback = callback
        self._last_fraction = -1.0

    def start(self, total: int, description: str = "", *, initial: int = 0) -> None:
        super().start(total, description, initial=initial)
        self._last_fraction = -1.0
        self._emit(self._fraction(initial), format_progress_message(description, initial, total, {}), force=True)

    def update(self, step: int, **metrics: Any) -> None:
        self._emit(self._fraction(step), format_progress_message(self.description, step, self.total, metrics))

    def _emit(self, fraction: float, message: str, *, force: bool = False) -> None:
        if fraction <= self._last_fraction or not self._due(fraction, force):
            return
        self._last_fraction = fraction
        self.callback(fraction, message)

    def close(self) -> None:
        pass


class LineProgress(_FractionReporter):
    """Prints ``PROGRESS <fraction> <message>`` lines (fraction with 6 decimals) to ``stream`` (stdout),
    flushed at once, for a parent process to parse with :func:`parse_progress_line`."""

    def __init__(self, stream: Optional[TextIO] = None, *, min_interval_s: float = 0.25) -> None:
        super().__init__(min_interval_s)
        self.stream = stream
        self._last_fraction = -1.0

    def start(self, total: int, description: str = "", *, initial: int = 0) -> None:
        super().start(total, description, initial=initial)
        self._last_fraction = -1.0
        self._write(self._fraction(initial), format_progress_message(description, initial, total, {}), force=True)

    def update(self, step: int, **metrics: Any) -> None:
        self._write(self._fraction(step), format_progress_message(self.description, step, self.total, metrics))

    def _write(self, fraction: float, message: str, *, force: bool = False) -> None:
        if fraction <= self._last_fraction or not self._due(fraction, force):
            return
        self._last_fraction = fraction
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(f"{PROGRESS_PREFIX} {fraction:.6f} {message}\n")
        stream.flush()

    def close(self) -> None:
        pass


def parse_progress_line(line: str) -> Optional[Tuple[float, str]]:
    """``(fraction, message)`` from a ``PROGRESS <fraction> <message>`` line, ``None`` for any other
    line (which a parent process passes through as ordinary output)."""
    match = _PROGRESS_LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    return float(match.group(1)), match.group(2) or ""


PROGRESS_MODES = ("auto", "bar", "lines", "none")


def make_progress_reporter(
    mode: str = "auto",
    *,
    rank: int = 0,
    callback: Optional[ProgressCallback] = None,
    all_ranks: bool = False,
) -> ProgressReporter:
    """The reporter a CLI option (``--progress auto|bar|lines|none``) or a callback asks for.

    ``callback`` wins over ``mode``. ``auto``: a bar when stderr is a terminal, else nothing. Ranks other
    than 0 report nothing unless ``all_ranks``.
    """
    if rank != 0 and not all_ranks:
        return NullProgress()
    if callback is not None:
        return CallbackProgress(callback)
    if mode == "auto":
        mode = "bar" if sys.stderr.isatty() else "none"
    if mode == "bar":
        return TqdmProgress()
    if mode == "lines":
        return LineProgress()
    if mode == "none":
        return NullProgress()
    raise ValueError(f"unknown progress mode {mode!r}: expected one of {', '.join(PROGRESS_MODES)}")


class TrainingCancelled(CardiacMotionAtlasError):
    """A run stopped because its :class:`CancelToken` was set. ``step`` steps were completed and
    ``checkpoint_path`` (``None`` when not checkpointing) holds them, ready for ``resume``."""

    def __init__(self, step: int, total_steps: int, checkpoint_path: Optional[Any] = None, reason: str = "") -> None:
        self.step = step
        self.total_steps = total_steps
        self.checkpoint_path = checkpoint_path
        self.reason = reason
        where = f"; checkpoint: {checkpoint_path}" if checkpoint_path is not None else ""
        why = f" ({reason})" if reason else ""
        super().__init__(f"cancelled at step {step}/{total_steps}{why}{where}")


class CancelToken:
    """A thread-safe cancel flag (``threading.Event``-like) shared by a GUI/caller and a running loop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def cancel(self, reason: str = "cancel requested") -> None:
        if not self._event.is_set():
            self.reason = reason
        self._event.set()

    def is_cancelled(self) -> bool:
        return self._event.is_set()

    # ``threading.Event`` spelling, so an Event-like object can be passed where a token is expected.
    is_set = is_cancelled
    set = cancel

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._event.wait(timeout)

    def raise_if_cancelled(self, step: int = 0, total_steps: int = 0, checkpoint_path: Optional[Any] = None) -> None:
        if self._event.is_set():
            raise TrainingCancelled(step, total_steps, checkpoint_path, self.reason)


@contextlib.contextmanager
def cancel_on_signals(
    token: CancelToken, signals: Tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
) -> Iterator[CancelToken]:
    """Within the block, SIGINT/SIGTERM set ``token`` (the loop then checkpoints and stops cleanly); a
    second signal falls back to the previous handler (Ctrl-C twice interrupts at once). Previous handlers
    are restored on exit. Outside the main thread signals cannot be caught: the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield token
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, frame: Any) -> None:
        if token.is_cancelled():
            old = previous.get(signum)
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
            signal.raise_signal(signum)
            return
        token.cancel(f"signal {signal.Signals(signum).name}")

    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield token
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)


__all__ = [
    "PROGRESS_MODES",
    "PROGRESS_PREFIX",
    "CallbackProgress",
    "CancelToken",
    "LineProgress",
    "NullProgress",
    "ProgressCallback",
    "ProgressReporter",
    "TqdmProgress",
    "TrainingCancelled",
    "cancel_on_signals",
    "format_progress_message",
    "make_progress_reporter",
    "parse_progress_line",
]
