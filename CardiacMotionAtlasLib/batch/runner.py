"""The cohort batch runner: one idempotent Dask task per subject.

``run_batch(manifest, "indices", out)`` starts a :class:`dask.distributed.LocalCluster` (``n_workers``
worker processes, one thread each) unless ``scheduler`` names an existing cluster (``"tcp://host:8786"``)
or a ``client`` is given. Subjects already complete in ``out`` are skipped (checked here and again by the
task); every other subject becomes one task (:func:`process_subject`) that writes into a staging folder
and commits it atomically (:mod:`.completion`). A failing subject is recorded with its error and the
others go on; a task whose worker dies is retried by Dask on another worker (up to the scheduler's
``allowed-failures``), then recorded as failed and redone by the next run. The summary
(``out/summary.csv``: subject, status, duration_s, error, study, key results) is written atomically at
the end. On a shared cluster the output folder and the studies must be on a filesystem every worker sees,
and the workers need ``CardiacMotionAtlasLib`` installed.
"""

from __future__ import annotations

import contextlib
import csv
import io as _io
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from ..errors import CardiacMotionAtlasError, InputFileError, write_crash_log
from ..io.atomic import atomic_write_text
from ..training.completeness import allow_incomplete_checkpoints, incomplete_allowed
from ..training.progress import NullProgress, ProgressReporter
from .completion import (
    BatchError,
    claim_output_folder,
    clean_staging,
    commit,
    discard,
    new_staging,
    read_record,
)
from .manifest import ManifestEntry, read_manifest
from .pipelines import Pipeline, get_pipeline

PathLike = Union[str, os.PathLike]
SUMMARY_NAME = "summary.csv"
STATUSES = ("done", "skipped", "failed")
BASE_COLUMNS = ("subject", "status", "duration_s", "error", "study")


@dataclass
class SubjectOutcome:
    """One summary row: ``status`` is ``done`` (processed now), ``skipped`` (complete from an earlier run;
    ``duration_s`` and ``results`` from its record) or ``failed`` (``error`` says why)."""

    subject: str
    status: str
    duration_s: float = float("nan")
    error: str = ""
    study: str = ""
    results: Dict[str, Any] = field(default_factory=dict)

    def row(self) -> Dict[str, Any]:
        return {"subject": self.subject, "status": self.status,
                "duration_s": "" if math.isnan(self.duration_s) else f"{self.duration_s:.3f}",
                "error": self.error, "study": self.study, **self.results}


@dataclass
class BatchResult:
    """Outcomes in manifest order, the summary CSV path and the wall time (s) of the run."""

    outcomes: List[SubjectOutcome]
    summary_path: Path
    seconds: float

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failed(self) -> List[SubjectOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]


def _scalar(value: Any) -> Any:
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


CRASH_LOGS = "crash_logs"
"""Folder (in the batch output) of the full tracebacks of subjects that failed unexpectedly."""


def _failure_text(error: BaseException, out: Union[str, os.PathLike], subject: str) -> str:
    """One line for the summary: a library error's message; an unexpected error's type and message with
    the path of a log holding its traceback (``OUT/crash_logs/``)."""
    text = f"{type(error).__name__}: {error}".replace("\n", " ")
    if isinstance(error, CardiacMotionAtlasError) or (isinstance(error, OSError) and error.filename is not None):
        return text
    log = write_crash_log(error, f"batch-{subject}", Path(out) / CRASH_LOGS)
    return f"{text} (unexpected; traceback in {log})" if log is not None else f"{text} (unexpected)"


def process_subject(subject: str, study: str, out: str, pipeline: Pipeline, options: Dict[str, Any],
                    torch_threads: int = 1, allow_incomplete: Optional[bool] = None) -> Dict[str, Any]:
    """Run ``pipeline`` for one subject on a worker (idempotent). Returns a plain dict with ``subject``,
    ``status`` (``done``/``skipped``/``failed``), ``duration_s`` (s), ``error`` and ``results``. Errors of
    the subject are caught and returned; only the death of the worker escapes (Dask retries the task).
    ``allow_incomplete``: the submitting process' consent to half-trained checkpoints, carried with the
    task because a remote worker has neither its context nor its environment (None: the worker's own)."""
    record = read_record(out, subject)
    if record is not None:
        return {"subject": subject, "status": "skipped", "duration_s": record.get("duration_s", float("nan")),
                "error": "", "results": record.get("results", {})}
    if torch_threads:
        import torch

        torch.set_num_threads(int(torch_threads))
    staging = new_staging(out, subject)
    start = time.perf_counter()
    try:
        study_path = Path(study)
        if not study_path.exists():
            raise InputFileError(study_path, "no such study (listed in the manifest)")
        with allow_incomplete_checkpoints(allow_incomplete) if allow_incomplete is not None \
                else contextlib.nullcontext():
            results = pipeline.function(study_path, staging, dict(options))
        results = {str(name): _scalar(value) for name, value in dict(results or {}).items()}
        duration = time.perf_counter() - start
        commit(out, subject, staging, {"pipeline": pipeline.name, "study": os.fspath(study),
                                       "options": {k: _scalar(v) for k, v in options.items()},
                                       "duration_s": duration, "results": results})
        return {"subject": subject, "status": "done", "duration_s": duration, "error": "", "results": results}
    except Exception as error:  # one subject's failure must not stop the batch
        discard(staging)
        return {"subject": subject, "status": "failed", "duration_s": time.perf_counter() - start,
                "error": _failure_text(error, out, subject), "results": {}}


@contextlib.contextmanager
def dask_client(scheduler: Optional[str] = None, *, n_workers: int = 2, threads_per_worker: int = 1,
                processes: bool = True, memory_limit: Union[str, float, None] = "auto") -> Iterator[Any]:
    """A ``dask.distributed.Client``: connected to ``scheduler`` (an address such as ``tcp://host:8786``
    or a scheduler file path ending in ``.json``), else to a new :class:`LocalCluster`; closed on exit."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            if str(scheduler).endswith(".json"):
                client = Client(scheduler_file=scheduler, timeout="20s")
            else:
                client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError, ValueError) as error:
            raise BatchError(f"cannot connect to the Dask scheduler at {scheduler!r}: {error}") from error
        try:
            yield client
        finally:
            client.close()
        return
    if n_workers < 1 or threads_per_worker < 1:
        raise BatchError(f"n_workers and threads_per_worker must be >= 1, got {n_workers}, {threads_per_worker}")
    with LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                      dashboard_address=":0", silence_logs=logging.ERROR, memory_limit=memory_limit) as cluster:
        with Client(cluster) as client:
            yield client


def summary_csv(outcomes: Sequence[SubjectOutcome]) -> str:
    """The summary table as CSV text: base columns, then every key result in order of appearance."""
    columns: List[str] = list(BASE_COLUMNS)
    for outcome in outcomes:
        columns += [name for name in outcome.results if name not in columns]
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", restval="")
    writer.writeheader()
    for outcome in outcomes:
        writer.writerow(outcome.row())
    return buffer.getvalue()


def _outcome(entry: ManifestEntry, payload: Mapping[str, Any]) -> SubjectOutcome:
    duration = payload.get("duration_s")
    return SubjectOutcome(entry.subject, str(payload.get("status", "failed")),
                          float(duration) if duration is not None else float("nan"), str(payload.get("error", "")),
                          os.fspath(entry.study), dict(payload.get("results") or {}))


def run_batch(manifest: Union[PathLike, Sequence[ManifestEntry]], pipeline: Union[str, Pipeline], out: PathLike, *,
              options: Optional[Mapping[str, Any]] = None, scheduler: Optional[str] = None, client: Any = None,
              n_workers: int = 2, threads_per_worker: int = 1, processes: bool = True, torch_threads: int = 1,
              retries: int = 0, progress: Optional[ProgressReporter] = None,
              check_paths: bool = False, allow_incomplete: Optional[bool] = None) -> BatchResult:
    """Process every subject of ``manifest`` (a CSV path or entries) with ``pipeline`` into ``out``.

    ``options``: pipeline options for every subject (manifest columns override them per subject).
    Cluster: ``client`` (used as is), else ``scheduler`` (address of an existing cluster), else a
    ``LocalCluster`` of ``n_workers`` x ``threads_per_worker`` (``processes=False``: threads in this
    process). ``torch_threads``: ``torch.set_num_threads`` in each task (0 leaves it). ``retries``: extra
    attempts Dask makes when a task raises (subject errors are caught, so this is about infrastructure).
    ``allow_incomplete``: accept half-trained checkpoints (None: whatever this process allows, see
    :func:`~CardiacMotionAtlasLib.training.completeness.incomplete_allowed`); decided here and sent with
    every task, so workers of a remote cluster follow the caller's ``--allow-incomplete``.
    Returns a :class:`BatchResult`; ``out/summary.csv`` is written atomically.
    """
    started = time.perf_counter()
    source = "manifest"
    if isinstance(manifest, (str, os.PathLike)):
        source = os.fspath(manifest)
        entries = read_manifest(manifest, check_paths=check_paths)
    else:
        entries = list(manifest)
    pipe = get_pipeline(pipeline)
    columns = sorted({name for entry in entries for name in entry.options})
    unknown = [name for name in columns if name not in pipe.option_names()]
    if unknown:
        raise BatchError(f"{source}: column(s) {unknown} are not options of pipeline {pipe.name!r} "
                         f"(known: {', '.join(pipe.option_names()) or 'none'})")
    pipe.parse_options((dict(options or {}), "--option"))  # global options valid before anything runs
    out = Path(out).resolve()
    claim_output_folder(out, pipe.name)
    clean_staging(out)  # nothing of ours runs yet: leftovers are from killed runs

    outcomes: Dict[str, SubjectOutcome] = {}
    todo: List[tuple] = []
    for entry in entries:
        record = read_record(out, entry.subject)
        if record is not None:
            outcomes[entry.subject] = _outcome(entry, {"status": "skipped", "duration_s": record.get("duration_s"),
                                                       "results": record.get("results")})
            continue
        try:
            values = pipe.parse_options((dict(options or {}), "--option"),
                                        (entry.options, f"{source}, line {entry.line}"))
        except Exception as error:
            outcomes[entry.subject] = _outcome(entry, {"status": "failed", "error": f"{type(error).__name__}: {error}"})
            continue
        todo.append((entry, values))

    progress = progress if progress is not None else NullProgress()
    progress.start(len(entries), f"batch {pipe.name}", initial=len(outcomes))
    try:
        if todo:
            with contextlib.ExitStack() as stack:
                if client is None:
                    client = stack.enter_context(dask_client(scheduler, n_workers=n_workers,
                                                             threads_per_worker=threads_per_worker,
                                                             processes=processes))
                _run_tasks(client, todo, pipe, out, torch_threads, incomplete_allowed(allow_incomplete), retries,
                           outcomes, progress, len(entries))
    finally:
        progress.close()
    clean_staging(out)
    ordered = [outcomes[entry.subject] for entry in entries]
    summary = out / SUMMARY_NAME
    atomic_write_text(summary, summary_csv(ordered))
    return BatchResult(ordered, summary, time.perf_counter() - started)


def _run_tasks(client: Any, todo: Sequence[tuple], pipe: Pipeline, out: Path, torch_threads: int,
               allow_incomplete: bool, retries: int, outcomes: Dict[str, SubjectOutcome], progress: ProgressReporter,
               total: int) -> None:
    from dask.distributed import as_completed

    run_id = uuid.uuid4().hex[:8]
    futures = {}
    for entry, values in todo:
        future = client.submit(process_subject, entry.subject, os.fspath(entry.study), os.fspath(out), pipe, values,
                               torch_threads, allow_incomplete, key=f"cma-{pipe.name}-{entry.subject}-{run_id}", pure=False,
                               retries=retries)
        futures[future] = entry
    failed = sum(o.status == "failed" for o in outcomes.values())
    try:
        for future in as_completed(list(futures)):
            entry = futures[future]
            try:
                payload = future.result()
            except Exception as error:  # KilledWorker, a lost scheduler, an unpicklable result
                record = read_record(out, entry.subject)  # the disk is the truth: it may have committed
                if record is not None:
                    payload = {"status": "done", "duration_s": record.get("duration_s"), "results": record.get("results")}
                else:
                    payload = {"status": "failed", "error": f"{type(error).__name__}: {error}".replace("\n", " ")}
            if payload.get("status") == "skipped":  # not complete at submission: finished during this run (a
                payload = dict(payload, status="done")  # result lost with its worker, recomputed as a no-op)
            outcome = _outcome(entry, payload)
            outcomes[entry.subject] = outcome
            failed += outcome.status == "failed"
            progress.update(len(outcomes), subject=entry.subject, status=outcome.status, failed=failed)
    except BaseException:
        client.cancel(list(futures))
        raise


__all__ = ["BASE_COLUMNS", "BatchResult", "STATUSES", "SUMMARY_NAME", "SubjectOutcome", "dask_client",
           "process_subject", "run_batch", "summary_csv"]
