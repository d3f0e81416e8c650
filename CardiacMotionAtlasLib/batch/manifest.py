"""Cohort manifests: a CSV with one row per subject.

Columns (header required, case-sensitive):

- ``subject`` (or ``subject_id``): a unique id, used as the name of the subject's output folder (letters,
  digits, ``-``, ``_``, ``.``; not starting with ``.``);
- ``study`` (or ``study_path``): the subject's study folder (or file), absolute or relative to the
  manifest's folder;
- any other column: a per-subject option of the pipeline (an empty cell means "use the default"); values
  are parsed by the pipeline's option types (see :mod:`.pipelines`).

Structural problems (no file, no header, a missing column, duplicate or unsafe ids) raise
:class:`ManifestError` naming the manifest and the row; a study path that does not exist is, by default,
a per-subject failure reported in the batch summary (``check_paths=True`` makes it an error up front).
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Union

from ..errors import InputFileError

PathLike = Union[str, os.PathLike]

SUBJECT_COLUMNS = ("subject", "subject_id")
STUDY_COLUMNS = ("study", "study_path")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")


class ManifestError(InputFileError):
    """A cohort manifest is missing, unreadable or malformed (the message names the file and the row)."""


@dataclass(frozen=True)
class ManifestEntry:
    """One subject of a manifest: id, study path (resolved), per-subject options (raw strings) and the
    1-based CSV line it came from."""

    subject: str
    study: Path
    options: Dict[str, str] = field(default_factory=dict)
    line: int = 0


def _pick(header: Sequence[str], names: Sequence[str], path: Path) -> str:
    found = [name for name in names if name in header]
    if not found:
        raise ManifestError(path, f"missing column {names[0]!r} (or {names[1]!r}); header is {list(header)}")
    if len(found) > 1:
        raise ManifestError(path, f"both {found[0]!r} and {found[1]!r} columns given; keep one")
    return found[0]


def read_manifest(path: PathLike, *, check_paths: bool = False) -> List[ManifestEntry]:
    """Read and validate a cohort manifest (module docstring); returns its entries in file order."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(path, "no such manifest file")
    if path.is_dir():
        raise ManifestError(path, "is a directory, expected a CSV manifest")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise ManifestError(path, f"unreadable manifest ({error})") from error
    rows = list(csv.reader(text.splitlines()))
    rows = [(number, row) for number, row in enumerate(rows, start=1) if any(cell.strip() for cell in row)]
    if not rows:
        raise ManifestError(path, "empty manifest (expected a header with 'subject' and 'study' columns)")
    header_line, header = rows[0]
    header = [cell.strip() for cell in header]
    if len(set(header)) != len(header) or "" in header:
        raise ManifestError(path, f"header has empty or duplicate column names: {header}")
    subject_column = _pick(header, SUBJECT_COLUMNS, path)
    study_column = _pick(header, STUDY_COLUMNS, path)
    option_columns = [name for name in header if name not in (subject_column, study_column)]
    entries: List[ManifestEntry] = []
    seen: Dict[str, int] = {}
    for number, row in rows[1:]:
        if len(row) != len(header):
            raise ManifestError(path, f"line {number}: {len(row)} cells for {len(header)} columns")
        cells = dict(zip(header, (cell.strip() for cell in row)))
        subject, study = cells[subject_column], cells[study_column]
        if not subject:
            raise ManifestError(path, f"line {number}: empty {subject_column!r}")
        if not _SAFE_ID.match(subject):
            raise ManifestError(path, f"line {number}: subject id {subject!r} is not a safe folder name "
                                      "(letters, digits, '-', '_', '.'; not starting with '.')")
        if subject in seen:
            raise ManifestError(path, f"line {number}: duplicate subject {subject!r} (first on line {seen[subject]})")
        seen[subject] = number
        if not study:
            raise ManifestError(path, f"line {number}: empty {study_column!r} for subject {subject!r}")
        study_path = Path(study).expanduser()
        if not study_path.is_absolute():
            study_path = (path.parent / study_path).resolve()
        if check_paths and not study_path.exists():
            raise ManifestError(path, f"line {number}: study of {subject!r} does not exist: {study_path}")
        options = {name: cells[name] for name in option_columns if cells[name] != ""}
        entries.append(ManifestEntry(subject, study_path, options, number))
    if not entries:
        raise ManifestError(path, "no subjects (only a header)")
    return entries


def write_manifest(path: PathLike, entries: Sequence[ManifestEntry]) -> Path:
    """Write ``entries`` as a manifest (atomically; option columns = the union of the entries' options)."""
    from ..io.atomic import atomic_write_text
    import io as _io

    columns: List[str] = []
    for entry in entries:
        columns += [name for name in entry.options if name not in columns]
    buffer = _io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["subject", "study"] + columns)
    for entry in entries:
        writer.writerow([entry.subject, os.fspath(entry.study)] + [entry.options.get(c, "") for c in columns])
    atomic_write_text(path, buffer.getvalue())
    return Path(path)


def manifest_from_folder(cohort: PathLike) -> List[ManifestEntry]:
    """One entry per sub-folder of ``cohort`` (sorted; hidden folders skipped): a cohort written by
    ``cardiac-atlas phantom`` becomes a manifest with :func:`write_manifest`."""
    cohort = Path(cohort)
    if not cohort.is_dir():
        raise InputFileError(cohort, "no such cohort folder")
    folders = [child for child in sorted(cohort.iterdir()) if child.is_dir() and not child.name.startswith(".")]
    if not folders:
        raise InputFileError(cohort, "cohort folder has no subject folders")
    return [ManifestEntry(folder.name, folder.resolve()) for folder in folders]


__all__ = ["ManifestEntry", "ManifestError", "manifest_from_folder", "read_manifest", "write_manifest"]
