"""Run the library's CLI (``python -m CardiacMotionAtlasLib.cli.main <args> --progress lines``) in a
background process, with progress, cancel and a blocking mode.

- The child process runs in a working folder (a new temporary folder unless given): relative paths in
  ``args`` land there, which is how inputs and outputs are exchanged with the caller. A temporary folder
  the run owns is removed by :meth:`BackgroundCLIRun.cleanup` once the run succeeded or was cancelled;
  a failed run's folder is kept for inspection and named in :attr:`CLIRunResult.error_message`.
- A reader thread parses ``PROGRESS <fraction> <message>`` lines with
  :func:`~CardiacMotionAtlasLib.training.progress.parse_progress_line`; other lines are kept as output.
- Callbacks (``on_progress(fraction, message)``, ``on_done(result)``) run either in the reader thread
  (``dispatch="thread"``: scripts, headless) or in whichever thread calls
  :meth:`BackgroundCLIRun.dispatch_pending` (``dispatch="poll"``: the Slicer GUI polls from a
  ``qt.QTimer`` so that callbacks may touch Qt widgets and the MRML scene). ``wait=True`` blocks and
  dispatches in the calling thread.
- :meth:`BackgroundCLIRun.cancel` kills the whole process tree (the child is the leader of its own
  process group / session; ``taskkill /T`` on Windows). The CLI writes atomically, so a cancelled run
  leaves no partial output file (a cohort subject is complete only once its ``phantom.json`` exists).

Nothing here imports ``slicer``; the Slicer module passes ``PythonSlicer`` as the interpreter.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import CardiacMotionAtlasLib

from .common import MRMLBridgeError

ProgressCallback = Callable[[float, str], None]
DoneCallback = Callable[["CLIRunResult"], None]

CLI_MODULE = "CardiacMotionAtlasLib.cli.main"
DISPATCH_MODES = ("thread", "poll")


@dataclass
class CLIRunResult:
    """How a background CLI run ended."""

    command: List[str]
    work_dir: Path
    returncode: Optional[int]
    cancelled: bool
    output: List[str] = field(default_factory=list)
    last_progress: float = 0.0
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Finished by itself with exit status 0."""
        return self.returncode == 0 and not self.cancelled

    @property
    def error_message(self) -> str:
        """'' when ok; else 'cancelled' or the exit status with the last output lines."""
        if self.ok:
            return ""
        if self.cancelled:
            return "cancelled"
        tail = "\n".join(self.output[-10:])
        return (f"exit status {self.returncode}" + (f":\n{tail}" if tail else "")
                + f"\n(work folder kept for inspection: {self.work_dir})")


def default_python_executable() -> str:
    """The interpreter for the child: ``PythonSlicer`` when running inside Slicer (whose
    ``sys.executable`` is the Slicer application), else ``sys.executable``."""
    executable = sys.executable or "python"
    if Path(executable).name.lower().startswith("slicer"):
        candidates = [shutil.which("PythonSlicer"), str(Path(executable).with_name("PythonSlicer")),
                      str(Path(executable).with_name("PythonSlicer.exe"))]
        for candidate in candidates:
            if candidate and Path(candidate).is_file():
                return candidate
    return executable


def library_root() -> Path:
    """The folder holding the ``CardiacMotionAtlasLib`` package (put on the child's PYTHONPATH)."""
    return Path(CardiacMotionAtlasLib.__file__).resolve().parent.parent


def subcommand_reports_progress(name: Union[str, Sequence[str]]) -> bool:
    """Whether the CLI sub-command ``name`` (or the command line ``[name, sub-name, ...]``, e.g.
    ``["atlas", "fit", ...]``) has the ``--progress`` option (the long-running ones do; ``info`` does
    not). Unknown names give False (the child then reports the usage error)."""
    import argparse

    from ..cli.main import COMMANDS

    words = [name] if isinstance(name, str) else [str(w) for w in name]
    if not words or words[0] not in COMMANDS:
        return False
    parser = argparse.ArgumentParser(add_help=False)
    COMMANDS[words[0]][0](parser)
    for word in words[1:]:  # descend into nested sub-commands (atlas fit, nisf reconstruct, ...)
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subparsers or word not in subparsers[0].choices:
            break
        parser = subparsers[0].choices[word]
    return any("--progress" in action.option_strings for action in parser._actions)


def cli_command(args: Sequence[str], python_executable: Optional[str] = None,
                progress_lines: Optional[bool] = None) -> List[str]:
    """``[python, -m, CardiacMotionAtlasLib.cli.main, *args, --progress, lines]``. ``--progress lines``
    is appended when ``progress_lines`` (default: when the sub-command has that option) and ``args``
    do not choose a progress mode already."""
    args = [str(a) for a in args]
    if not args:
        raise MRMLBridgeError("no CLI arguments given (expected a sub-command such as 'phantom')")
    if progress_lines is None:
        progress_lines = subcommand_reports_progress(args)
    if progress_lines and not any(a == "--progress" or a.startswith("--progress=") for a in args):
        args += ["--progress", "lines"]
    return [python_executable or default_python_executable(), "-m", CLI_MODULE, *args]


class BackgroundCLIRun:
    """One CLI child process (see module docstring). Create with :func:`run_cli_in_background`."""

    def __init__(self, args: Sequence[str], on_progress: Optional[ProgressCallback] = None,
                 on_done: Optional[DoneCallback] = None, *, work_dir: Optional[Union[str, os.PathLike]] = None,
                 python_executable: Optional[str] = None, dispatch: str = "thread", force_cpu: bool = False,
                 env: Optional[Dict[str, str]] = None, progress_lines: Optional[bool] = None,
                 owns_work_dir: Optional[bool] = None) -> None:
        if dispatch not in DISPATCH_MODES:
            raise ValueError(f"dispatch must be one of {DISPATCH_MODES}, got {dispatch!r}")
        self.command = cli_command(args, python_executable, progress_lines)
        # a folder the caller gave is the caller's, unless it says the run owns it (a temporary folder the
        # caller made for this run's inputs): owned folders are removed by cleanup() after success
        self._owns_work_dir = work_dir is None if owns_work_dir is None else bool(owns_work_dir)
        self.work_dir = Path(work_dir) if work_dir is not None else Path(
            tempfile.mkdtemp(prefix="CardiacMotionAtlas-run-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.on_progress = on_progress
        self.on_done = on_done
        self.dispatch = dispatch
        self.force_cpu = force_cpu
        self.extra_env = dict(env or {})
        self.progress = 0.0
        self.message = ""
        self.output: List[str] = []
        self.result: Optional[CLIRunResult] = None
        self._events: "queue.Queue[tuple]" = queue.Queue()
        self._cancelled = threading.Event()
        self._finished = threading.Event()  # the process ended and the result exists
        self._done_dispatched = threading.Event()
        self._process: Optional[subprocess.Popen] = None
        self._reader: Optional[threading.Thread] = None
        self._started = 0.0

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "BackgroundCLIRun":
        """Start the child process and the reader thread."""
        if self._process is not None:
            raise MRMLBridgeError("this run was already started")
        # imported here, not at module import: the training package loads torch
        from ..training.progress import parse_progress_line

        self._parse_line = parse_progress_line
        env = dict(os.environ)
        root = str(library_root())
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONIOENCODING"] = "utf-8"
        env.setdefault("MPLBACKEND", "Agg")
        if self.force_cpu:
            env["CUDA_VISIBLE_DEVICES"] = "-1"
        env.update(self.extra_env)
        kwargs: Dict = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        else:
            kwargs["start_new_session"] = True  # own process group: cancel kills the whole tree
        self._started = time.monotonic()
        self._process = subprocess.Popen(
            self.command, cwd=str(self.work_dir), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace", bufsize=1, **kwargs)
        self._reader = threading.Thread(target=self._read, name="CardiacMotionAtlas-cli-reader", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            parsed = self._parse_line(line)
            if parsed is None:
                self.output.append(line.rstrip("\r\n"))
                continue
            if self._cancelled.is_set():
                continue
            fraction, message = parsed
            self.progress, self.message = fraction, message
            self._emit(("progress", fraction, message))
        returncode = self._process.wait()
        self.result = CLIRunResult(self.command, self.work_dir, returncode, self._cancelled.is_set(),
                                   list(self.output), self.progress, time.monotonic() - self._started)
        self._finished.set()
        self._emit(("done", self.result))

    def _emit(self, event: tuple) -> None:
        if self.dispatch == "thread":
            self._deliver(event)
        else:
            self._events.put(event)

    def _deliver(self, event: tuple) -> None:
        if event[0] == "progress":
            if self.on_progress is not None:
                self.on_progress(event[1], event[2])
        else:
            try:
                if self.on_done is not None:
                    self.on_done(event[1])
            finally:
                self._done_dispatched.set()

    def dispatch_pending(self) -> int:
        """Deliver queued callbacks in the calling thread (``dispatch="poll"``); returns how many."""
        count = 0
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return count
            self._deliver(event)
            count += 1

    def wait(self, timeout: Optional[float] = None) -> Optional[CLIRunResult]:
        """Block until the run ended and ``on_done`` was called (dispatching queued callbacks in this
        thread when polling); the result, or None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._done_dispatched.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            if self.dispatch == "poll":
                try:
                    event = self._events.get(timeout=0.05 if remaining is None else min(0.05, remaining))
                except queue.Empty:
                    continue
                self._deliver(event)
            else:
                self._done_dispatched.wait(0.05 if remaining is None else min(0.05, remaining))
        return self.result

    def start_and_maybe_wait(self, wait: bool) -> "BackgroundCLIRun":
        """Start; with ``wait`` block until it ended and ``on_done`` was called (an interrupt of the
        waiting caller, e.g. Ctrl+C in the Python console, cancels the run before it propagates)."""
        self.start()
        if wait:
            try:
                self.wait()
            except BaseException:
                self.cancel()
                raise
        return self

    def cancel(self, grace_s: float = 2.0) -> None:
        """Stop the run: terminate the child's whole process tree (kill after ``grace_s``). ``on_done``
        still follows, with ``result.cancelled`` set. No-op once the process ended."""
        self._cancelled.set()
        process = self._process
        if process is None or process.poll() is not None:
            return
        _terminate_tree(process, grace_s)

    # ------------------------------------------------------------------ state
    @property
    def is_running(self) -> bool:
        """Whether the child process has not ended yet."""
        return self._process is not None and not self._finished.is_set()

    @property
    def finished(self) -> bool:
        """Whether the process ended and ``on_done`` has run (polling: once dispatched)."""
        return self._done_dispatched.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def pid(self) -> Optional[int]:
        return None if self._process is None else self._process.pid

    @property
    def owns_work_dir(self) -> bool:
        """Whether the working folder is a temporary folder of this run (removed by :meth:`cleanup`)."""
        return self._owns_work_dir

    def cleanup(self, failed: bool = False) -> bool:
        """Delete the working folder if this run owns it and it did not fail (call after reading its
        outputs); a failed run's folder (exit status != 0, or ``failed``: its outputs could not be used)
        is kept for inspection. Returns whether the folder was removed. A folder given by the caller is
        never removed."""
        if self.is_running:
            raise MRMLBridgeError("cannot remove the working folder of a running process; cancel it first")
        result = self.result
        if failed or (result is not None and not result.ok and not result.cancelled):
            return False
        if self._owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            return not self.work_dir.exists()
        return False


def _terminate_tree(process: subprocess.Popen, grace_s: float) -> None:
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True, check=False)
        return
    try:
        group = os.getpgid(process.pid)
    except ProcessLookupError:
        return
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    try:  # children may outlive the leader: make sure the whole group is gone
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_cli_in_background(args: Sequence[str], on_progress: Optional[ProgressCallback] = None,
                          on_done: Optional[DoneCallback] = None, *, wait: bool = False,
                          work_dir: Optional[Union[str, os.PathLike]] = None,
                          python_executable: Optional[str] = None, dispatch: str = "thread",
                          force_cpu: bool = False, env: Optional[Dict[str, str]] = None,
                          progress_lines: Optional[bool] = None) -> BackgroundCLIRun:
    """Start ``cardiac-atlas <args> --progress lines`` as a child process (see module docstring;
    ``--progress lines`` only for sub-commands that have the option, see :func:`cli_command`).

    Returns the :class:`BackgroundCLIRun` (``cancel()``, ``wait()``, ``dispatch_pending()``,
    ``result``). With ``wait=True`` it returns only after the run ended and ``on_done`` ran, every
    callback having run in the calling thread (console, headless scripts).
    """
    run = BackgroundCLIRun(args, on_progress, on_done, work_dir=work_dir, python_executable=python_executable,
                           dispatch="poll" if wait else dispatch, force_cpu=force_cpu, env=env,
                           progress_lines=progress_lines)
    return run.start_and_maybe_wait(wait)


__all__ = [
    "CLI_MODULE",
    "BackgroundCLIRun",
    "CLIRunResult",
    "cli_command",
    "default_python_executable",
    "subcommand_reports_progress",
    "library_root",
    "run_cli_in_background",
]
