"""Pre-flight checks of mesh files, run before VTK reads them.

Some VTK readers trust sizes stored in the file and abort or crash the process (``std::bad_alloc``,
segmentation faults) on corrupt ones; a crash cannot be turned into an error afterwards. These checks
only compare the sizes and counts that a file announces with what the file can hold (VTK still does
the reading):

* ``.vtp``: every ``NumberOf*``/``offset`` attribute is a non-negative integer, and the block headers of
  appended or inline binary arrays (compressed or not, raw or base64) stay within the file.
* ``.ply``: the header grammar (format, elements, known property types, ``end_header``) and, for binary
  files, that the body holds every element (list lengths included).
* ``.stl``: a binary STL holds the triangles it announces.
* ``.vtk`` (legacy POLYDATA, versions 4.2 and 5.1, ASCII or binary): every block fits in the file, cell
  blocks are consistent and name existing points, keywords and data types are known.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import List, Tuple

import numpy as np

from ..errors import InputFileError
from ._common import MAX_INFLATION

_XML_NUMBER = re.compile(rb'\b(NumberOf\w+|offset)\s*=\s*"([^"]*)"')
_XML_ATTR = re.compile(rb'(\w+)\s*=\s*"([^"]*)"')
_DATA_ARRAY = re.compile(rb"<DataArray\b([^>]*?)(/?)>")
_PLY_TYPES = {
    "char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
    "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8,
}
_PLY_NUMPY = {
    "char": "i1", "uchar": "u1", "int8": "i1", "uint8": "u1", "short": "i2", "ushort": "u2", "int16": "i2",
    "uint16": "u2", "int": "i4", "uint": "u4", "int32": "i4", "uint32": "u4",
}


# --------------------------------------------------------------------------- VTK XML (.vtp)


def _words(raw: bytes, count: int, header_size: int, little: bool) -> List[int]:
    dtype = np.dtype(("<" if little else ">") + ("u4" if header_size == 4 else "u8"))
    return [int(v) for v in np.frombuffer(raw[: count * header_size], dtype=dtype)]


def _check_block_header(path: Path, reader, compressed: bool, header_size: int, little: bool,
                        available: int, size: int, where: str) -> None:
    """``reader(n_bytes)`` returns the first decoded bytes of one array's data (header first)."""
    if not compressed:
        first = reader(header_size)
        if len(first) < header_size:
            raise InputFileError(path, f"{where}: binary data header is cut off")
        (n_bytes,) = _words(first, 1, header_size, little)
        if n_bytes > available:
            raise InputFileError(path, f"{where}: announces {n_bytes} bytes, the file holds {available}")
        return
    first = reader(3 * header_size)
    if len(first) < 3 * header_size:
        raise InputFileError(path, f"{where}: compression header is cut off")
    n_blocks, block_size, last_size = _words(first, 3, header_size, little)
    if n_blocks and (block_size == 0 or last_size > block_size):
        raise InputFileError(path, f"{where}: invalid compression blocks ({block_size}, last {last_size})")
    if n_blocks * header_size > available or n_blocks * block_size > MAX_INFLATION * size:
        raise InputFileError(path, f"{where}: {n_blocks} compressed blocks of {block_size} bytes cannot fit "
                                   f"in a {size}-byte file")
    full = reader((3 + n_blocks) * header_size)
    if len(full) < (3 + n_blocks) * header_size:
        raise InputFileError(path, f"{where}: compression header is cut off")
    compressed_sizes = _words(full[3 * header_size:], n_blocks, header_size, little)
    if sum(compressed_sizes) > available:
        raise InputFileError(path, f"{where}: compressed blocks ({sum(compressed_sizes)} bytes) exceed the file")


def _base64_prefix(text: bytes):
    clean = re.sub(rb"\s+", b"", text)

    def read(n_bytes: int) -> bytes:
        chars = -(-n_bytes // 3) * 4
        chunk = clean[:chars]
        chunk += b"=" * (-len(chunk) % 4)
        try:
            return base64.b64decode(chunk, validate=False)
        except (binascii.Error, ValueError):
            return b""

    return read


def check_vtp(path: Path, data: bytes) -> None:
    size = len(data)
    appended_at = data.find(b"<AppendedData")
    head = data if appended_at < 0 else data[:appended_at]
    for match in _XML_NUMBER.finditer(head):
        value = match.group(2).strip().decode("latin-1")
        if not (value.isascii() and value.isdigit()):
            raise InputFileError(path, f"{match.group(1).decode()}={value[:20]!r} is not a non-negative integer")
        if int(value) > MAX_INFLATION * size:
            raise InputFileError(path, f"{match.group(1).decode()}={int(value)} exceeds what a {size}-byte file holds")
    root = re.search(rb"<VTKFile\b([^>]*)>", head)
    if root is None:
        raise InputFileError(path, "not a VTK XML file (no <VTKFile> element)")
    attributes = dict(_XML_ATTR.findall(root.group(1)))
    header_type = attributes.get(b"header_type", b"UInt32")
    if header_type not in (b"UInt32", b"UInt64"):
        raise InputFileError(path, f"unsupported header_type {header_type.decode('latin-1')!r}")
    header_size = 4 if header_type == b"UInt32" else 8
    little = attributes.get(b"byte_order", b"LittleEndian") != b"BigEndian"
    compressed = bool(attributes.get(b"compressor", b"").strip())
    appended_base, appended_base64 = None, False
    if appended_at >= 0:
        tag_end = data.find(b">", appended_at)
        underscore = data.find(b"_", tag_end)
        if tag_end < 0 or underscore < 0:
            raise InputFileError(path, "AppendedData has no '_' marker")
        encoding = dict(_XML_ATTR.findall(data[appended_at:tag_end])).get(b"encoding", b"raw")
        appended_base, appended_base64 = underscore + 1, encoding == b"base64"
    for index, match in enumerate(_DATA_ARRAY.finditer(head)):
        array = dict(_XML_ATTR.findall(match.group(1)))
        fmt = array.get(b"format", b"ascii")
        where = f"DataArray {index} ({array.get(b'Name', b'?').decode('latin-1')[:40]})"
        if fmt == b"appended":
            if appended_base is None:
                raise InputFileError(path, f"{where}: appended data but no <AppendedData> element")
            start = appended_base + int(array.get(b"offset", b"0"))
            if start >= size:
                raise InputFileError(path, f"{where}: offset beyond the end of the file")
            if appended_base64:
                reader = _base64_prefix(data[start:start + 64 + 4 * MAX_INFLATION])
            else:
                def reader(n_bytes, start=start):
                    return data[start:start + n_bytes]
            _check_block_header(path, reader, compressed, header_size, little, size - start, size, where)
        elif fmt == b"binary" and not match.group(2):
            end = head.find(b"</DataArray>", match.end())
            text = head[match.end(): end if end >= 0 else len(head)]
            _check_block_header(path, _base64_prefix(text), compressed, header_size, little, size, size, where)


# --------------------------------------------------------------------------- PLY


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


# --------------------------------------------------------------------------- legacy VTK

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


# --------------------------------------------------------------------------- dispatch


def check_mesh_file(path: Path, suffix: str) -> None:
    """Raise :class:`InputFileError` if the file announces more than it holds (see module docstring)."""
    data = path.read_bytes()
    size = len(data)
    if suffix == ".vtp":
        check_vtp(path, data)
    elif suffix == ".ply":
        check_ply(path, data)
    elif suffix == ".stl":
        if not data[:5].lower().startswith(b"solid") and size >= 84:
            count = int.from_bytes(data[80:84], "little")
            if 84 + 50 * count > size:
                raise InputFileError(path, f"binary STL announces {count} triangles but has only {size} bytes")
        elif size < 84 and not data[:5].lower().startswith(b"solid"):
            raise InputFileError(path, "binary STL shorter than its 84-byte header")
    elif suffix == ".vtk":
        check_legacy_vtk(path, data)

__all__ = ["check_mesh_file", "check_vtp", "check_ply", "check_legacy_vtk"]
