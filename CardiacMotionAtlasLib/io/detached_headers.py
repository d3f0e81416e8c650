"""Read MetaImage (``.mha``/``.mhd``) and NRRD (``.nrrd``/``.nhdr``) headers before SimpleITK does: where
the voxels are, in which encoding, and whether it is safe to open them.

A header names its data file (MetaImage ``ElementDataFile``, NRRD ``data file:``). SimpleITK opens
whatever is named: ``../../../../etc/passwd``, ``/dev/zero`` or a FIFO (the reader then hangs). So a
detached data file must (:func:`safe_data_file`):

- be a plain name in the header's own folder: no absolute path, no ``..``, no sub-folder;
- not be a symbolic link leading out of that folder;
- be a regular file (``os.stat`` + ``S_ISREG``: no device, FIFO, socket or folder), checked without
  opening it.

``LIST`` (file names after the header) and printf patterns (``slice%03d.raw 1 40 1``) are expanded and
every file is checked. :func:`inspect_header` returns a :class:`DataLayout` (data files, byte offset,
encoding) for the size check of :mod:`.size_budget`. Every refusal is an :class:`InputFileError` naming
the header and the data file.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import InputFileError
from ._common import PathLike, lower_name
from .size_budget import BZIP2, GZIP, RAW, TEXT

HEADER_BYTES = 65536
"""At most this many bytes of a header are read (a longer header is refused)."""
MAX_DATA_FILES = 10000
METAIMAGE_SUFFIXES = (".mha", ".mhd")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
_NRRD_ENCODINGS = {"raw": RAW, "gzip": GZIP, "gz": GZIP, "bzip2": BZIP2, "bz2": BZIP2, "ascii": TEXT,
                   "text": TEXT, "txt": TEXT, "hex": TEXT}


@dataclass
class DataLayout:
    """Where a header's voxels are: ``data_files`` (the header itself when attached), the byte
    ``offset`` of the voxels in the first file (None: unknown, e.g. MetaImage ``HeaderSize = -1``), and
    the ``encoding`` (:mod:`.size_budget` names)."""

    data_files: List[Path]
    offset: Optional[int]
    encoding: str
    attached: bool


def safe_data_file(header: PathLike, name: str) -> Path:
    """The data file ``name`` of ``header`` if it is a regular file in the header's own folder (see the
    module docstring); else :class:`InputFileError` naming the header and ``name``."""
    header = Path(header)
    shown = name[:200]
    if not name or name != name.strip() or "\x00" in name:
        raise InputFileError(header, f"invalid data file name {shown!r}")
    if os.path.isabs(name) or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise InputFileError(header, f"data file {shown!r} is an absolute path; a detached data file must be in "
                                     "the header's own folder")
    parts = re.split(r"[\\/]", name)
    if ".." in parts or len(parts) > 1:
        raise InputFileError(header, f"data file {shown!r} is outside the header's own folder (no '..' or "
                                     "sub-folders allowed)")
    candidate = header.parent / name
    folder = os.path.realpath(header.parent)
    real = os.path.realpath(candidate)
    if os.path.dirname(real) != folder:
        raise InputFileError(header, f"data file {shown!r} is a link to {real}, outside the header's folder")
    try:
        mode = os.stat(real).st_mode
    except OSError:
        raise InputFileError(header, f"data file {shown!r} does not exist") from None
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a folder" if stat.S_ISDIR(mode) else "not a regular file")
        raise InputFileError(header, f"data file {shown!r} is {kind}; voxel data must be a regular file")
    return candidate


def _expand(header: Path, value: str, rest: List[str]) -> List[Path]:
    """Data files of a ``data file``/``ElementDataFile`` value: one name, ``LIST`` (names in ``rest``) or
    a printf pattern ``fmt min max step``."""
    words = value.split()
    if words and words[0].upper() == "LIST":
        names = [line.strip() for line in rest if line.strip()]
        if not names:
            raise InputFileError(header, "data file LIST names no file")
    elif "%" in value:
        try:
            fmt, low, high, step = words[0], int(words[1]), int(words[2]), int(words[3])
            count = 0 if step == 0 else (high - low) // step + 1
            if step == 0 or count <= 0 or count > MAX_DATA_FILES:
                raise ValueError
            names = [fmt % index for index in range(low, high + (1 if step > 0 else -1), step)]
        except (ValueError, IndexError, TypeError):
            raise InputFileError(header, f"invalid data file pattern {value[:100]!r}") from None
    else:
        names = [value]
    if len(names) > MAX_DATA_FILES:
        raise InputFileError(header, f"{len(names)} data files; at most {MAX_DATA_FILES}")
    return [safe_data_file(header, name) for name in names]


def _read_head(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(HEADER_BYTES)


def _positive_ints(path: Path, fields: Dict[str, str], key: str) -> List[int]:
    words = fields.get(key, "").split()
    if not words or not all(w.isdigit() for w in words):
        raise InputFileError(path, f"MetaImage {key} = {fields.get(key, '')[:30]!r} is not a list of "
                                   "positive integers")
    return [int(w) for w in words]


def _metaimage(path: Path) -> DataLayout:
    """Check a MetaImage header (MetaIO trusts ``NDims``/``DimSize``/``ElementNumberOfChannels`` and can
    crash on absurd values) and locate its data."""
    head = _read_head(path)
    text = head.decode("latin-1")
    fields: Dict[str, str] = {}
    lines = text.split("\n")
    end = None
    position = 0
    for index, line in enumerate(lines):
        position += len(line) + 1
        if "=" in line:
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()
            if key.strip() == "ElementDataFile":
                end = index
                break
    if end is None:
        raise InputFileError(path, f"MetaImage header has no ElementDataFile within its first {HEADER_BYTES} bytes")
    n_dims = _positive_ints(path, fields, "NDims")[0]
    if not 2 <= n_dims <= 5:
        raise InputFileError(path, f"MetaImage NDims = {n_dims}; expected 2..5")
    dims = _positive_ints(path, fields, "DimSize")
    if len(dims) != n_dims or min(dims) < 1:
        raise InputFileError(path, f"MetaImage DimSize must have {n_dims} positive values")
    if "ElementNumberOfChannels" in fields and not 1 <= _positive_ints(path, fields, "ElementNumberOfChannels")[0] <= 64:
        raise InputFileError(path, "MetaImage ElementNumberOfChannels must be 1..64")
    compressed = fields.get("CompressedData", "False").strip().lower() in ("true", "1", "yes")
    encoding = GZIP if compressed else RAW
    value = fields["ElementDataFile"]
    if value.upper() == "LOCAL":
        return DataLayout([path], position, encoding, attached=True)
    files = _expand(path, value, lines[end + 1:])
    offset: Optional[int] = 0
    header_size = fields.get("HeaderSize", "0").strip()
    if header_size.lstrip("-").isdigit():
        offset = None if int(header_size) < 0 else int(header_size)
    return DataLayout(files, offset, encoding, attached=False)


def _nrrd(path: Path) -> DataLayout:
    """Locate the data of a NRRD header (attached after the blank line, or ``data file:``)."""
    head = _read_head(path)
    if not head.startswith(b"NRRD"):
        raise InputFileError(path, "not a NRRD file (no NRRD magic)")
    match = re.search(rb"\r?\n\r?\n", head)
    if match is None and lower_name(path).endswith(".nrrd") and len(head) >= HEADER_BYTES:
        raise InputFileError(path, f"NRRD header longer than {HEADER_BYTES} bytes")
    header_end = match.end() if match else len(head)
    lines = head[:match.start() if match else len(head)].decode("latin-1").splitlines()
    fields: Dict[str, Tuple[str, int]] = {}
    for index, line in enumerate(lines[1:], start=1):
        if line.startswith("#") or ":=" in line or ":" not in line:
            continue
        key, value = line.split(":", 1)
        fields[key.strip().lower()] = (value.strip(), index)
    encoding_name = fields.get("encoding", ("raw", 0))[0].lower()
    if encoding_name not in _NRRD_ENCODINGS:
        raise InputFileError(path, f"unknown NRRD encoding {encoding_name[:30]!r}")
    encoding = _NRRD_ENCODINGS[encoding_name]
    entry = fields.get("data file") or fields.get("datafile")
    if entry is None:
        return DataLayout([path], header_end, encoding, attached=True)
    value, index = entry
    rest = []
    if value.split()[:1] == ["LIST"]:
        rest = lines[index + 1:] + head[header_end:].decode("latin-1").splitlines()
    return DataLayout(_expand(path, value, rest), 0, encoding, attached=False)


def inspect_header(path: PathLike) -> Optional[DataLayout]:
    """The :class:`DataLayout` of a MetaImage or NRRD file (None for other formats), after checking that
    every detached data file is safe to open (:func:`safe_data_file`)."""
    path = Path(path)
    name = lower_name(path)
    if name.endswith(METAIMAGE_SUFFIXES):
        return _metaimage(path)
    if name.endswith(NRRD_SUFFIXES):
        return _nrrd(path)
    return None


__all__ = ["DataLayout", "HEADER_BYTES", "MAX_DATA_FILES", "safe_data_file", "inspect_header"]
