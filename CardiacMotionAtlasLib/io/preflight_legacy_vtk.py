"""Pre-flight check of legacy VTK POLYDATA (``.vtk``) files before VTK reads them.

VTK's legacy reader trusts the cell sizes and counts stored in the file and crashes the process on
corrupt ones. This check walks the file (versions 4.2 and 5.1, ASCII or binary): every block fits in
the file, cell blocks are consistent and name existing points, keywords and data types are known.
VTK still does the reading.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List

import numpy as np

from ..errors import InputFileError
from ._common import MAX_INFLATION

_LEGACY_TYPES = {
    "bit": 0, "unsigned_char": 1, "char": 1, "signed_char": 1, "unsigned_short": 2, "short": 2,
    "unsigned_int": 4, "int": 4, "unsigned_long": 8, "long": 8, "vtktypeint64": 8, "vtktypeuint64": 8,
    "vtkidtype": 8, "float": 4, "double": 8,
}
_LEGACY_INT = {"int": ">i4", "unsigned_int": ">u4", "long": ">i8", "unsigned_long": ">u8", "vtktypeint64": ">i8",
               "vtktypeuint64": ">u8", "vtkidtype": ">i8", "short": ">i2", "unsigned_short": ">u2",
               "char": ">i1", "signed_char": ">i1", "unsigned_char": ">u1"}


class _LegacyCursor:
    """Walks a legacy VTK file: keyword lines, then value blocks (binary bytes or ASCII tokens)."""

    def __init__(self, path: Path, data: bytes, binary: bool, position: int) -> None:
        self.path, self.data, self.binary, self.position = path, data, binary, position

    def fail(self, problem: str) -> InputFileError:
        return InputFileError(self.path, f"legacy VTK: {problem}")

    def line(self) -> List[str]:
        """Words of the next non-blank line ([] at the end of the file)."""
        data = self.data
        while self.position < len(data) and data[self.position] in b" \t\r\n":
            self.position += 1
        if self.position >= len(data):
            return []
        end = data.find(b"\n", self.position)
        end = len(data) if end < 0 else end
        words = data[self.position:end].decode("latin-1").split()
        self.position = end + 1
        return words

    def tokens(self, count: int) -> List[bytes]:
        out = []
        data = self.data
        while len(out) < count:
            while self.position < len(data) and data[self.position] in b" \t\r\n":
                self.position += 1
            if self.position >= len(data):
                raise self.fail("file ends inside a data block")
            end = self.position
            while end < len(data) and data[end] not in b" \t\r\n":
                end += 1
            out.append(data[self.position:end])
            self.position = end
        return out

    def skip(self, count: int, kind: str) -> None:
        kind = kind.lower()
        if kind not in _LEGACY_TYPES:
            raise self.fail(f"unknown data type {kind[:30]!r}")
        if count < 0 or count > MAX_INFLATION * len(self.data):
            raise self.fail(f"invalid value count {count}")
        if self.binary:
            size = (count + 7) // 8 if kind == "bit" else count * _LEGACY_TYPES[kind]
            if self.position + size > len(self.data):
                raise self.fail("file ends inside a data block")
            self.position += size
        else:
            self.tokens(count)

    def integers(self, count: int, kind: str) -> np.ndarray:
        kind = kind.lower()
        if kind not in _LEGACY_INT:
            raise self.fail(f"cell data type {kind[:30]!r} is not an integer type")
        if count < 0 or count > MAX_INFLATION * len(self.data):
            raise self.fail(f"invalid value count {count}")
        if self.binary:
            dtype = np.dtype(_LEGACY_INT[kind])
            if self.position + count * dtype.itemsize > len(self.data):
                raise self.fail("file ends inside a cell block")
            values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.position).astype(np.int64)
            self.position += count * dtype.itemsize
            return values
        try:
            return np.array([int(t) for t in self.tokens(count)], dtype=np.int64)
        except ValueError:
            raise self.fail("non-integer value in a cell block") from None


def _number(cursor: _LegacyCursor, text: str) -> int:
    if not text.isdigit():
        raise cursor.fail(f"{text[:20]!r} is not a count")
    return int(text)


def _check_cells_block(cursor: _LegacyCursor, version: float, n: int, size: int, n_points: int) -> None:
    if version >= 5.0:
        words = cursor.line()
        if len(words) != 2 or words[0] != "OFFSETS":
            raise cursor.fail("expected OFFSETS")
        offsets = cursor.integers(n, words[1])
        words = cursor.line()
        if len(words) != 2 or words[0] != "CONNECTIVITY":
            raise cursor.fail("expected CONNECTIVITY")
        ids = cursor.integers(size, words[1])
        if n and (offsets[0] != 0 or offsets[-1] != size or np.any(np.diff(offsets) < 0)):
            raise cursor.fail("invalid cell offsets")
    else:
        values = cursor.integers(size, "int")
        width = int(values[0]) + 1 if size else 0
        if width > 1 and size == n * width and np.all(values[::width] == width - 1):  # all cells alike
            ids = values.reshape(n, width)[:, 1:].ravel()
            if ids.size and (ids.min() < 0 or ids.max() >= n_points):
                raise cursor.fail(f"cells refer to points outside 0..{n_points - 1}")
            return
        at, cells, chunks = 0, 0, []
        while at < size:
            count = int(values[at])
            if count < 0 or at + 1 + count > size:
                raise cursor.fail("cell sizes do not match the cell block")
            chunks.append(values[at + 1: at + 1 + count])
            at += 1 + count
            cells += 1
        if cells != n:
            raise cursor.fail(f"{cells} cells in a block announcing {n}")
        ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= n_points):
        raise cursor.fail(f"cells refer to points outside 0..{n_points - 1}")


def _skip_field(cursor: _LegacyCursor, arrays: int) -> None:
    for _ in range(arrays):
        words = cursor.line()
        if len(words) != 4:
            raise cursor.fail("invalid FIELD array line")
        cursor.skip(_number(cursor, words[1]) * _number(cursor, words[2]), words[3])
        _skip_metadata(cursor)


def _skip_metadata(cursor: _LegacyCursor) -> None:
    """Skip an optional METADATA block (ends with a blank line)."""
    saved = cursor.position
    if cursor.line()[:1] != ["METADATA"]:
        cursor.position = saved
        return
    while cursor.position < len(cursor.data):
        end = cursor.data.find(b"\n", cursor.position)
        end = len(cursor.data) if end < 0 else end
        blank = not cursor.data[cursor.position:end].strip()
        cursor.position = end + 1
        if blank:
            return


def check_legacy_vtk(path: Path, data: bytes) -> None:
    """Walk a legacy POLYDATA file: every block fits in the file and cells name existing points."""
    lines = data.split(b"\n", 3)
    if len(lines) < 4 or not lines[0].startswith(b"# vtk DataFile Version"):
        raise InputFileError(path, "not a legacy VTK file")
    match = re.fullmatch(rb"# vtk DataFile Version ([1-5])\.(\d{1,2})\s*", lines[0])
    if match is None:
        raise InputFileError(path, f"legacy VTK: unsupported version line {lines[0][:40]!r}")
    version = float(f"{int(match.group(1))}.{int(match.group(2))}")
    mode = lines[2].strip().upper()
    if mode not in (b"ASCII", b"BINARY"):
        raise InputFileError(path, "legacy VTK: third line must be ASCII or BINARY")
    cursor = _LegacyCursor(path, data, mode == b"BINARY", sum(len(line) + 1 for line in lines[:3]))
    if cursor.line() != ["DATASET", "POLYDATA"]:
        raise cursor.fail("not POLYDATA")
    n_points, attribute_count = 0, 0
    while True:
        words = cursor.line()
        if not words:
            return
        key = words[0].upper()
        if key == "POINTS" and len(words) == 3:
            n_points = _number(cursor, words[1])
            cursor.skip(3 * n_points, words[2])
        elif key in ("VERTICES", "LINES", "POLYGONS", "TRIANGLE_STRIPS") and len(words) == 3:
            _check_cells_block(cursor, version, _number(cursor, words[1]), _number(cursor, words[2]), n_points)
        elif key in ("POINT_DATA", "CELL_DATA") and len(words) == 2:
            attribute_count = _number(cursor, words[1])
        elif key == "FIELD" and len(words) == 3:
            _skip_field(cursor, _number(cursor, words[2]))
        elif key == "SCALARS" and len(words) in (3, 4):
            components = _number(cursor, words[3]) if len(words) == 4 else 1
            table = cursor.line()
            if table[:1] != ["LOOKUP_TABLE"]:
                raise cursor.fail("SCALARS without LOOKUP_TABLE")
            cursor.skip(attribute_count * components, words[2])
        elif key == "LOOKUP_TABLE" and len(words) == 3:
            cursor.skip(4 * _number(cursor, words[2]), "unsigned_char" if cursor.binary else "float")
        elif key == "COLOR_SCALARS" and len(words) == 3:
            cursor.skip(attribute_count * _number(cursor, words[2]), "unsigned_char" if cursor.binary else "float")
        elif key in ("VECTORS", "NORMALS") and len(words) == 3:
            cursor.skip(3 * attribute_count, words[2])
        elif key in ("TENSORS", "TENSORS6") and len(words) == 3:
            cursor.skip((9 if key == "TENSORS" else 6) * attribute_count, words[2])
        elif key == "TEXTURE_COORDINATES" and len(words) == 4:
            cursor.skip(_number(cursor, words[2]) * attribute_count, words[3])
        elif key in ("GLOBAL_IDS", "PEDIGREE_IDS") and len(words) == 3:
            cursor.skip(attribute_count, words[2])
        elif key == "METADATA":
            cursor.position -= 1
            while cursor.position > 0 and cursor.data[cursor.position - 1] != ord("\n"):
                cursor.position -= 1
            _skip_metadata(cursor)
        else:
            raise cursor.fail(f"unexpected line {' '.join(words)[:60]!r}")


__all__ = ["check_legacy_vtk"]
