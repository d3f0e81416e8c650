"""Idempotent per-subject outputs: staging folders, completion records and the commit.

Layout of a batch output folder ``OUT``::

    OUT/batch.json                  which pipeline made this folder (a rerun must use the same)
    OUT/subjects/<subject>/         a finished subject: its outputs + COMPLETE_RECORD (written last)
    OUT/.staging/<subject>.<attempt>/   an attempt in progress (never read as output)
    OUT/summary.csv                 the last run's summary (written atomically)

An attempt writes everything into its own staging folder, writes the completion record there last
(atomically), then renames the staging folder to ``OUT/subjects/<subject>`` (one ``rename``: a reader
sees either nothing or the complete subject). A subject is *complete* when its folder holds a valid record
and every file the record lists, with the recorded size. A killed attempt leaves only a staging folder,
removed by the next attempt of that subject or at the end of the batch.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..errors import CardiacMotionAtlasError, InputFileError
from ..io.atomic import atomic_write_text

PathLike = Union[str, os.PathLike]

COMPLETE_RECORD = "_complete.json"
BATCH_RECORD = "batch.json"
SUBJECTS_DIR = "subjects"
STAGING_DIR = ".staging"
RECORD_FORMAT = "CardiacMotionAtlas.batch.subject"
RECORD_VERSION = 1


class BatchError(CardiacMotionAtlasError):
    """A batch cannot run (output folder of another pipeline, unreachable scheduler, bad options)."""


def subject_folder(out: PathLike, subject: str) -> Path:
    return Path(out) / SUBJECTS_DIR / subject


def staging_root(out: PathLike) -> Path:
    return Path(out) / STAGING_DIR


def _listing(folder: Path) -> Dict[str, int]:
    """``{relative path: size in bytes}`` of every file under ``folder`` except the record."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != COMPLETE_RECORD:
            files[path.relative_to(folder).as_posix()] = path.stat().st_size
    return files


def read_record(out: PathLike, subject: str) -> Optional[Dict[str, Any]]:
    """The completion record of ``subject`` when the subject is complete (record valid, every listed file
    present with its recorded size), else ``None``."""
    folder = subject_folder(out, subject)
    record_path = folder / COMPLETE_RECORD
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or record.get("subject") != subject:
        return None
    files = record.get("files")
    if not isinstance(files, dict):
        return None
    for name, size in files.items():
        path = folder / name
        try:
            if path.stat().st_size != size:
                return None
        except OSError:
            return None
    return record


def is_complete(out: PathLike, subject: str) -> bool:
    return read_record(out, subject) is not None


def new_staging(out: PathLike, subject: str) -> Path:
    """A fresh, empty staging folder for one attempt at ``subject``; stale attempts of the subject (from a
    killed worker) are removed first."""
    root = staging_root(out)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f"{subject}.*"):
        shutil.rmtree(stale, ignore_errors=True)
    folder = root / f"{subject}.{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def commit(out: PathLike, subject: str, staging: Path, record: Dict[str, Any]) -> Dict[str, Any]:
    """Write the completion record into ``staging`` (last, atomically) and rename it to the subject's
    folder. When another attempt committed first, ``staging`` is discarded and that record returned."""
    final = subject_folder(out, subject)
    full = dict(record)
    full.update(format=RECORD_FORMAT, format_version=RECORD_VERSION, subject=subject, files=_listing(staging),
                finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), host=socket.gethostname(), pid=os.getpid())
    atomic_write_text(staging / COMPLETE_RECORD, json.dumps(full, indent=1, sort_keys=True, default=_jsonable) + "\n")
    final.parent.mkdir(parents=True, exist_ok=True)
    existing = read_record(out, subject)
    if existing is not None:  # a duplicate attempt finished first: keep its outputs
        shutil.rmtree(staging, ignore_errors=True)
        return existing
    if final.exists():  # an incomplete folder (tampered or interrupted replacement): replace it
        shutil.rmtree(final)
    try:
        os.rename(staging, final)
    except OSError:
        existing = read_record(out, subject)
        shutil.rmtree(staging, ignore_errors=True)
        if existing is None:
            raise
        return existing
    return full


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def clean_staging(out: PathLike) -> int:
    """Remove every staging folder (call when no attempt is running); returns how many were removed."""
    root = staging_root(out)
    if not root.is_dir():
        return 0
    stale = list(root.iterdir())
    for path in stale:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return len(stale)


def claim_output_folder(out: PathLike, pipeline: str) -> None:
    """Create ``out`` for ``pipeline``, or check that an existing batch folder belongs to the same
    pipeline (raises :class:`BatchError` otherwise)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputFileError(out, "output path exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    marker = out / BATCH_RECORD
    if marker.exists():
        try:
            saved = json.loads(marker.read_text(encoding="utf-8")).get("pipeline")
        except (OSError, ValueError, AttributeError) as error:
            raise InputFileError(marker, f"unreadable batch record ({error})") from error
        if saved != pipeline:
            raise BatchError(f"{out}: holds outputs of pipeline {saved!r}; use another --out for {pipeline!r}")
        return
    atomic_write_text(marker, json.dumps({"pipeline": pipeline, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                                         indent=1) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def completed_subjects(out: PathLike) -> List[str]:
    folder = Path(out) / SUBJECTS_DIR
    if not folder.is_dir():
        return []
    return sorted(child.name for child in folder.iterdir() if child.is_dir() and is_complete(out, child.name))


__all__ = ["BATCH_RECORD", "COMPLETE_RECORD", "BatchError", "STAGING_DIR", "SUBJECTS_DIR", "claim_output_folder",
           "clean_staging", "commit", "completed_subjects", "discard", "is_complete", "new_staging", "read_record",
           "staging_root", "subject_folder"]
