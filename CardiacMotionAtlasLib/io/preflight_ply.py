"""Pre-flight check of PLY files before VTK reads them.

VTK's PLY reader crashes the process on truncated binary bodies, face indices beyond the vertex count
or a face element without ``vertex_indices``. This check parses the header grammar (format, elements,
known property types, ``end_header``), requires ``vertex`` (x, y, z) and ``face`` (``vertex_indices``)
elements, and walks the body to check that it holds every element and that face indices name existing
vertices. VTK still does the reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np

from ..errors import InputFileError
from ._common import MAX_INFLATION

_PLY_TYPES = {
    "char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
    "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8,
}
_PLY_NUMPY = {
    "char": "i1", "uchar": "u1", "int8": "i1", "uint8": "u1", "short": "i2", "ushort": "u2", "int16": "i2",
    "uint16": "u2", "int": "i4", "uint": "u4", "int32": "i4", "uint32": "u4",
}


def _ply_header(path: Path, data: bytes) -> Tuple[str, List[Tuple[str, int, list]], int]:
    """(format, [(element, count, [(name, type or (count type, item type))])], body offset)."""
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise InputFileError(path, "not a PLY file (no 'ply' magic or no end_header)")
    body = data.find(b"\n", end) + 1
    if body <= 0:
        raise InputFileError(path, "PLY header is not terminated by a newline")
    fmt, elements = None, []
    for line in data[:end].decode("latin-1").splitlines()[1:]:
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            if len(words) != 3 or words[1] not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise InputFileError(path, f"invalid PLY format line {line.strip()[:60]!r}")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise InputFileError(path, f"invalid PLY element line {line.strip()[:60]!r}")
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements:
                raise InputFileError(path, "PLY property before any element")
            if len(words) == 5 and words[1] == "list":
                if words[2] not in _PLY_NUMPY or words[3] not in _PLY_TYPES:
                    raise InputFileError(path, f"invalid PLY list property {line.strip()[:60]!r}")
                elements[-1][2].append((words[4], (words[2], words[3])))
            elif len(words) == 3 and words[1] in _PLY_TYPES:
                elements[-1][2].append((words[2], words[1]))
            else:
                raise InputFileError(path, f"invalid PLY property {line.strip()[:60]!r}")
        else:
            raise InputFileError(path, f"unexpected PLY header line {line.strip()[:60]!r}")
    if fmt is None:
        raise InputFileError(path, "PLY header has no format line")
    return fmt, elements, body


_INDEX_LISTS = ("vertex_indices", "vertex_index")


def _check_indices(path: Path, indices: np.ndarray, n_vertices: int) -> None:
    if indices.size and (indices.min() < 0 or indices.max() >= n_vertices):
        raise InputFileError(path, f"PLY faces refer to vertices outside 0..{n_vertices - 1}")


def check_ply(path: Path, data: bytes) -> None:
    fmt, elements, position = _ply_header(path, data)
    size = len(data)
    counts = {name: count for name, count, _ in elements}
    for name, count, properties in elements:
        if count * max(1, len(properties)) > MAX_INFLATION * size:
            raise InputFileError(path, f"PLY element {name!r} announces {count} items for a {size}-byte file")
    n_vertices = counts.get("vertex", 0)
    props = {name: {prop for prop, _ in properties} for name, _, properties in elements}
    if "vertex" not in props or not {"x", "y", "z"} <= props["vertex"]:
        raise InputFileError(path, "PLY file needs a 'vertex' element with x, y, z properties")
    if "face" in props and not props["face"] & set(_INDEX_LISTS):
        raise InputFileError(path, "PLY 'face' element needs a vertex_indices list")
    if fmt == "ascii":
        _walk_ascii(path, data[position:], elements, n_vertices)
        return
    order = "<" if fmt == "binary_little_endian" else ">"
    for name, count, properties in elements:
        if not any(isinstance(kind, tuple) for _, kind in properties):
            position += count * sum(_PLY_TYPES[kind] for _, kind in properties)
        else:
            position = _walk_list_element(path, data, position, name, count, properties, order, n_vertices)
        if position > size:
            raise InputFileError(path, f"PLY body ends inside element {name!r} (file has {size} bytes)")


def _walk_ascii(path: Path, body: bytes, elements, n_vertices: int) -> None:
    """Check that an ASCII body holds every element and that face indices name existing vertices."""
    tokens = body.split()
    at = 0
    for name, count, properties in elements:
        for _ in range(count):
            for prop_name, kind in properties:
                if isinstance(kind, tuple):
                    if at >= len(tokens) or not tokens[at].lstrip(b"-").isdigit():
                        raise InputFileError(path, f"PLY element {name!r}: missing or invalid list length")
                    n = int(tokens[at])
                    items = tokens[at + 1: at + 1 + n]
                    if n < 0 or len(items) != n:
                        raise InputFileError(path, f"PLY body ends inside element {name!r}")
                    if prop_name in _INDEX_LISTS:
                        try:
                            _check_indices(path, np.array([int(v) for v in items]), n_vertices)
                        except ValueError:
                            raise InputFileError(path, f"PLY element {name!r}: non-integer vertex index") from None
                    at += 1 + n
                else:
                    if at >= len(tokens):
                        raise InputFileError(path, f"PLY body ends inside element {name!r}")
                    at += 1


def _walk_list_element(path: Path, data: bytes, position: int, name: str, count: int, properties, order: str,
                       n_vertices: int) -> int:
    """End offset of a binary element with list properties. Fast path: every row has the list
    lengths of the first row (checked for all rows at once); otherwise rows are walked one by one."""
    def row_layout(offset: int):
        """(row size, [(byte offset of a list length in the row, its dtype, its value)]) or None."""
        total, lengths = 0, []
        for _, kind in properties:
            if isinstance(kind, tuple):
                dtype = np.dtype(order + _PLY_NUMPY[kind[0]])
                if offset + total + dtype.itemsize > len(data):
                    return None
                n = int(np.frombuffer(data, dtype=dtype, count=1, offset=offset + total)[0])
                if n < 0:
                    raise InputFileError(path, f"PLY element {name!r} has a negative list length")
                lengths.append((total, dtype, n))
                total += dtype.itemsize + n * _PLY_TYPES[kind[1]]
            else:
                total += _PLY_TYPES[kind]
        return total, lengths

    def cut() -> InputFileError:
        return InputFileError(path, f"PLY body ends inside element {name!r} (file has {len(data)} bytes)")

    if count == 0:
        return position
    layout = row_layout(position)
    if layout is None:
        raise cut()
    row_size, lengths = layout
    end = position + count * row_size
    if row_size > 0 and end <= len(data):
        rows = np.frombuffer(data, dtype=np.uint8, count=count * row_size, offset=position).reshape(count, row_size)
        if all(np.all(rows[:, at:at + dtype.itemsize].copy().view(dtype).ravel() == n) for at, dtype, n in lengths):
            for (at, dtype, n), (prop_name, kind) in zip(lengths, [p for p in properties if isinstance(p[1], tuple)]):
                if prop_name in _INDEX_LISTS and n:
                    item = np.dtype(order + _PLY_NUMPY.get(kind[1], "i4"))
                    block = rows[:, at + dtype.itemsize: at + dtype.itemsize + n * item.itemsize].copy()
                    _check_indices(path, block.view(item).ravel(), n_vertices)
            return end
    list_props = [p for p in properties if isinstance(p[1], tuple)]
    for _ in range(count):
        layout = row_layout(position)
        if layout is None or position + layout[0] > len(data):
            raise cut()
        for (at, dtype, n), (prop_name, kind) in zip(layout[1], list_props):
            if prop_name in _INDEX_LISTS and n:
                item = np.dtype(order + _PLY_NUMPY.get(kind[1], "i4"))
                _check_indices(path, np.frombuffer(data, dtype=item, count=n, offset=position + at + dtype.itemsize),
                               n_vertices)
        position += layout[0]
    return position


__all__ = ["check_ply"]
