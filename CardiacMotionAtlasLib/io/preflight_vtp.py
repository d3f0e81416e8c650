"""Pre-flight check of VTK XML PolyData (``.vtp``) files before VTK reads them.

VTK's XML reader trusts the sizes stored in the file (block counts of compressed arrays, byte counts of
raw arrays, the strings of string arrays) and aborts or crashes the process on absurd ones. This check
compares what the file announces with what it holds: every ``NumberOf*``/``offset`` attribute is a
non-negative integer, the headers of appended or inline binary arrays (compressed or not, raw or
base64) stay within the file, string arrays hold exactly the strings they announce, and cell arrays
(offsets, connectivity) are consistent and name existing points. Cell and string arrays compressed with
LZ4 (no Python decoder here) are refused. VTK still does the reading.
"""

from __future__ import annotations

import base64
import binascii
import lzma
import re
import zlib
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..errors import InputFileError
from ._common import MAX_INFLATION

_XML_NUMBER = re.compile(rb'\b(NumberOf\w+|offset)\s*=\s*"([^"]*)"')
_XML_ATTR = re.compile(rb'(\w+)\s*=\s*"([^"]*)"')
_ARRAY = re.compile(rb"<(?:Data)?Array\b([^>]*?)(/?)>")
_WHITESPACE = re.compile(rb"\s+")


class _Layout:
    """How array data is stored: header word size, byte order, compressor."""

    def __init__(self, path: Path, size: int, header_size: int, little: bool, compressor: bytes) -> None:
        self.path, self.size, self.header_size, self.little = path, size, header_size, little
        self.compressor = compressor.strip()

    def words(self, raw: bytes, count: int) -> List[int]:
        dtype = np.dtype(("<" if self.little else ">") + ("u4" if self.header_size == 4 else "u8"))
        return [int(v) for v in np.frombuffer(raw[: count * self.header_size], dtype=dtype)]


class _Source:
    """The bytes of one array: raw from ``start`` in ``data``, or base64 chunks (header chunk, then data
    chunk, each padded, as VTK writes them) from ``start``."""

    def __init__(self, data: bytes, start: int, encoded: bool) -> None:
        self.data, self.position, self.encoded = data, start, encoded

    def take(self, n_bytes: int) -> bytes:
        if not self.encoded:
            chunk = self.data[self.position:self.position + n_bytes]
            self.position += n_bytes
            return chunk
        chars = -(-n_bytes // 3) * 4
        chunk = self.data[self.position:self.position + chars]
        self.position += chars
        try:
            return base64.b64decode(chunk + b"=" * (-len(chunk) % 4), validate=False)[:n_bytes]
        except (binascii.Error, ValueError):
            return b""


def _array_bytes(layout: _Layout, source: _Source, where: str, available: int, want_payload: bool) -> Optional[bytes]:
    """Check one array's block header; return its (decompressed) payload if ``want_payload``."""
    path, size, hs = layout.path, layout.size, layout.header_size
    start = source.position
    if not layout.compressor:
        first = source.take(hs)
        if len(first) < hs:
            raise InputFileError(path, f"{where}: binary data header is cut off")
        (n_bytes,) = layout.words(first, 1)
        if n_bytes > available:
            raise InputFileError(path, f"{where}: announces {n_bytes} bytes, the file holds {available}")
        if not want_payload:
            return None
        source.position = start  # uncompressed: header and data form one (base64) chunk
        payload = source.take(hs + n_bytes)[hs:]
        if len(payload) < n_bytes:
            raise InputFileError(path, f"{where}: data is cut off")
        return payload
    first = source.take(3 * hs)  # compressed: a header chunk, then a data chunk
    if len(first) < 3 * hs:
        raise InputFileError(path, f"{where}: compression header is cut off")
    n_blocks, block_size, last_size = layout.words(first, 3)
    if n_blocks and (block_size == 0 or last_size > block_size):
        raise InputFileError(path, f"{where}: invalid compression blocks ({block_size}, last {last_size})")
    if n_blocks * hs > available or n_blocks * block_size > MAX_INFLATION * size:
        raise InputFileError(path, f"{where}: {n_blocks} compressed blocks of {block_size} bytes cannot fit "
                                   f"in a {size}-byte file")
    source.position = start
    header = source.take((3 + n_blocks) * hs)
    if len(header) < (3 + n_blocks) * hs:
        raise InputFileError(path, f"{where}: compression header is cut off")
    sizes = layout.words(header[3 * hs:], n_blocks)
    if sum(sizes) > available:
        raise InputFileError(path, f"{where}: compressed blocks ({sum(sizes)} bytes) exceed the file")
    if not want_payload:
        return None
    packed = source.take(sum(sizes))
    if len(packed) < sum(sizes):
        raise InputFileError(path, f"{where}: compressed data is cut off")
    return _inflate(layout, packed, sizes, block_size, where)


def _inflate(layout: _Layout, packed: bytes, sizes: List[int], block_size: int, where: str) -> bytes:
    if layout.compressor == b"vtkZLibDataCompressor":
        def inflate(chunk: bytes) -> bytes:
            return zlib.decompressobj().decompress(chunk, block_size)
    elif layout.compressor == b"vtkLZMADataCompressor":
        def inflate(chunk: bytes) -> bytes:
            return lzma.LZMADecompressor().decompress(chunk, block_size)
    else:
        raise InputFileError(layout.path, f"{where}: cannot check an array compressed with "
                                          f"{layout.compressor.decode('latin-1')[:40]!r}")
    out, at = [], 0
    try:
        for n in sizes:
            out.append(inflate(packed[at:at + n]))
            at += n
    except (zlib.error, lzma.LZMAError) as exc:
        raise InputFileError(layout.path, f"{where}: corrupt compressed data ({exc})") from None
    return b"".join(out)


def _string_count(layout: _Layout, array: dict, fmt: bytes, text: bytes, payload: Optional[bytes], where: str) -> None:
    """A string array must hold exactly NumberOfTuples x NumberOfComponents NUL-terminated strings."""
    expected = int(array.get(b"NumberOfTuples", b"0")) * int(array.get(b"NumberOfComponents", b"1") or 1)
    if fmt == b"ascii":
        tokens = text.split()
        if not all(t.isdigit() and int(t) < 256 for t in tokens):
            raise InputFileError(layout.path, f"{where}: string array holds non-byte values")
        found = sum(1 for t in tokens if int(t) == 0)
    else:
        found = (payload or b"").count(b"\x00")
    if found != expected:
        raise InputFileError(layout.path, f"{where}: string array holds {found} strings, announces {expected}")


def _head_checks(path: Path, head: bytes, size: int) -> _Layout:
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
    return _Layout(path, size, 4 if header_type == b"UInt32" else 8,
                   attributes.get(b"byte_order", b"LittleEndian") != b"BigEndian", attributes.get(b"compressor", b""))


def _appended(path: Path, data: bytes, appended_at: int) -> Tuple[Optional[int], bool]:
    """(offset of the byte after the ``_`` marker, base64?) of the AppendedData element."""
    if appended_at < 0:
        return None, False
    tag_end = data.find(b">", appended_at)
    underscore = data.find(b"_", tag_end)
    if tag_end < 0 or underscore < 0:
        raise InputFileError(path, "AppendedData has no '_' marker")
    encoding = dict(_XML_ATTR.findall(data[appended_at:tag_end])).get(b"encoding", b"raw")
    return underscore + 1, encoding == b"base64"


_INT_TYPES = {b"Int8": "i1", b"UInt8": "u1", b"Int16": "i2", b"UInt16": "u2", b"Int32": "i4", b"UInt32": "u4",
              b"Int64": "i8", b"UInt64": "u8"}
_CELL_SECTIONS = (b"Verts", b"Lines", b"Strips", b"Polys")


class _Arrays:
    """The arrays of one file and how to get at their bytes."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path, self.data, self.size = path, data, len(data)
        appended_at = data.find(b"<AppendedData")
        self.head = data if appended_at < 0 else data[:appended_at]
        self.layout = _head_checks(path, self.head, self.size)
        self.appended_base, self.appended_base64 = _appended(path, data, appended_at)

    def each(self, start: int = 0, end: Optional[int] = None):
        """(index, attributes, format, inline text, element match) of the arrays in head[start:end]."""
        end = len(self.head) if end is None else end
        for index, match in enumerate(_ARRAY.finditer(self.head, start, end)):
            attributes = dict(_XML_ATTR.findall(match.group(1)))
            text = b""
            if not match.group(2):
                close = self.head.find(b"</", match.end())
                text = self.head[match.end(): close if close >= 0 else len(self.head)]
            yield index, attributes, attributes.get(b"format", b"ascii"), text, match

    def payload(self, attributes: dict, fmt: bytes, text: bytes, where: str, want: bool) -> Optional[bytes]:
        """Check the block header of a binary array; its decoded payload if ``want``."""
        if fmt == b"appended":
            if self.appended_base is None:
                raise InputFileError(self.path, f"{where}: appended data but no <AppendedData> element")
            start = self.appended_base + int(attributes.get(b"offset", b"0"))
            if start >= self.size:
                raise InputFileError(self.path, f"{where}: offset beyond the end of the file")
            source = _Source(self.data, start, self.appended_base64)
            return _array_bytes(self.layout, source, where, self.size - start, want)
        if fmt == b"binary":
            return _array_bytes(self.layout, _Source(_WHITESPACE.sub(b"", text), 0, True), where, self.size, want)
        return None

    def integers(self, attributes: dict, fmt: bytes, text: bytes, where: str) -> np.ndarray:
        kind = attributes.get(b"type", b"")
        if kind not in _INT_TYPES:
            raise InputFileError(self.path, f"{where}: cell array of type {kind.decode('latin-1')[:20]!r}")
        if fmt == b"ascii":
            try:
                return np.array([int(t) for t in text.split()], dtype=np.int64)
            except ValueError:
                raise InputFileError(self.path, f"{where}: non-integer value in a cell array") from None
        raw = self.payload(attributes, fmt, text, where, True) or b""
        dtype = np.dtype(("<" if self.layout.little else ">") + _INT_TYPES[kind])
        if len(raw) % dtype.itemsize:
            raise InputFileError(self.path, f"{where}: {len(raw)} bytes is not a whole number of values")
        return np.frombuffer(raw, dtype=dtype).astype(np.int64)


def _check_cells(arrays: _Arrays) -> None:
    """Every cell section of every piece: offsets and connectivity consistent, points in range."""
    path, head = arrays.path, arrays.head
    for piece in re.finditer(rb"<Piece\b([^>]*)>", head):
        piece_attributes = dict(_XML_ATTR.findall(piece.group(1)))
        n_points = int(piece_attributes.get(b"NumberOfPoints", b"0"))
        piece_end = head.find(b"</Piece>", piece.end())
        piece_end = len(head) if piece_end < 0 else piece_end
        for section in _CELL_SECTIONS:
            opening = re.compile(rb"<" + section + rb"\s*>").search(head, piece.end(), piece_end)
            declared = int(piece_attributes.get(b"NumberOf" + section, b"0"))
            if opening is None:
                if declared:
                    raise InputFileError(path, f"{section.decode()}: {declared} cells announced but no cell arrays")
                continue
            closing = head.find(b"</" + section + b">", opening.end())
            closing = piece_end if closing < 0 else closing
            found = {}
            for _, attributes, fmt, text, _ in arrays.each(opening.end(), closing):
                name = attributes.get(b"Name", b"")
                if name in (b"connectivity", b"offsets"):
                    found[name] = arrays.integers(attributes, fmt, text, f"{section.decode()} {name.decode()}")
            if set(found) != {b"connectivity", b"offsets"}:
                raise InputFileError(path, f"{section.decode()}: missing connectivity or offsets array")
            offsets, connectivity = found[b"offsets"], found[b"connectivity"]
            if len(offsets) != declared:
                raise InputFileError(path, f"{section.decode()}: {len(offsets)} offsets for {declared} cells")
            if declared and (offsets[0] < 0 or np.any(np.diff(offsets) < 0) or offsets[-1] != len(connectivity)):
                raise InputFileError(path, f"{section.decode()}: invalid cell offsets")
            if connectivity.size and (connectivity.min() < 0 or connectivity.max() >= n_points):
                raise InputFileError(path, f"{section.decode()}: cells refer to points outside 0..{n_points - 1}")


def check_vtp(path: Path, data: bytes) -> None:
    arrays = _Arrays(path, data)
    for index, attributes, fmt, text, _ in arrays.each():
        is_string = attributes.get(b"type", b"") == b"String"
        where = f"array {index} ({attributes.get(b'Name', b'?').decode('latin-1')[:40]})"
        payload = arrays.payload(attributes, fmt, text, where, is_string)
        if is_string:
            _string_count(arrays.layout, attributes, fmt, text, payload, where)
    _check_cells(arrays)


__all__ = ["check_vtp"]
