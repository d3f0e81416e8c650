"""Refuse images whose header declares more voxel bytes than the file holds, or than memory allows,
BEFORE any voxel buffer is allocated.

A 1 MB ``.nii.gz`` whose header declares 1 GiB of voxels must be refused at the header, not after the
reader allocated (and zero-filled) 1 GiB. :func:`check_declared_size` compares the bytes a header
declares with the bytes really available:

- raw data: the file size from the data offset;
- gzip / zlib data (``.nii.gz``, NRRD ``encoding: gzip``, MetaImage ``CompressedData = True``): the
  gzip ISIZE trailer (uncompressed size modulo 2^32) when it already covers the declaration, else the
  stream is decompressed and *counted*, 1 MiB at a time, stopping at the declared size (constant memory);
- bzip2 (NRRD): counted the same way.

:func:`check_memory_budget` also refuses a declaration above the memory budget (default half the
physical memory, at most 32 GiB; ``CMA_IO_MEMORY_BUDGET_MB`` overrides it).
"""

from __future__ import annotations

import bz2
import os
import struct
import zlib
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import InputFileError
from ._common import PathLike

CHUNK = 1 << 20
"""Bytes read (and at most produced) per decompression step while counting."""
RAW, GZIP, BZIP2, TEXT = "raw", "gzip", "bzip2", "text"
ENCODINGS = (RAW, GZIP, BZIP2, TEXT)


def memory_budget_bytes() -> int:
    """Largest voxel buffer (bytes) a reader may allocate: ``CMA_IO_MEMORY_BUDGET_MB`` if set, else half
    the physical memory, at most 32 GiB."""
    text = os.environ.get("CMA_IO_MEMORY_BUDGET_MB")
    if text:
        try:
            return max(1, int(float(text) * (1 << 20)))
        except ValueError:
            pass
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        physical = 8 << 30
    return int(min(physical // 2, 32 << 30))


def declared_bytes(shape: Sequence[int], itemsize: int, path: PathLike) -> int:
    """Bytes of ``shape`` voxels of ``itemsize`` bytes; non-positive sizes raise :class:`InputFileError`."""
    shape = [int(s) for s in shape]
    if not shape or any(s <= 0 for s in shape) or int(itemsize) <= 0:
        raise InputFileError(path, f"invalid image size {tuple(shape)} (item size {itemsize} bytes)")
    return int(np.prod(np.asarray(shape, dtype=object))) * int(itemsize)


def check_memory_budget(path: PathLike, n_bytes: int, copies: int = 1) -> None:
    """Refuse ``n_bytes`` of voxels (held ``copies`` times while reading) above :func:`memory_budget_bytes`."""
    budget = memory_budget_bytes()
    if int(n_bytes) * max(int(copies), 1) > budget:
        raise InputFileError(path, f"header declares {int(n_bytes) / 2**20:.1f} MiB of voxels, more than the memory "
                                   f"budget of {budget / 2**20:.0f} MiB (set CMA_IO_MEMORY_BUDGET_MB to raise it)")


def gzip_isize(path: PathLike, offset: int = 0) -> Optional[int]:
    """The gzip ISIZE trailer of the gzip stream starting at byte ``offset`` of ``path`` and ending the
    file (uncompressed size of its last member modulo 2^32), or None if there is no gzip stream there.
    The true size is at least ISIZE, so ISIZE >= a declaration proves the data holds it."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        if handle.read(2) != b"\x1f\x8b":
            return None
        handle.seek(0, os.SEEK_END)
        if handle.tell() - offset < 18:
            return None
        handle.seek(-4, os.SEEK_END)
        return struct.unpack("<I", handle.read(4))[0]


def _count_gzip(handle, cap: int) -> int:
    count, decoder = 0, zlib.decompressobj(47)  # 47: gzip or zlib header, detected
    pending = handle.read(CHUNK)
    while count < cap:
        if not pending:
            pending = handle.read(CHUNK)
            if not pending:
                return count + (0 if decoder.eof else len(decoder.flush()))
        count += len(decoder.decompress(pending, CHUNK))
        pending = decoder.unconsumed_tail
        if decoder.eof:  # next gzip member (concatenated streams), unless only padding follows
            pending = decoder.unused_data + handle.read(CHUNK)
            if not pending.strip(b"\x00"):
                return count
            decoder = zlib.decompressobj(47)
    return count


def _count_bzip2(handle, cap: int) -> int:
    count, decoder = 0, bz2.BZ2Decompressor()
    while count < cap:
        if decoder.eof:
            rest = decoder.unused_data + handle.read(CHUNK)
            if not rest.strip(b"\x00"):
                return count
            decoder = bz2.BZ2Decompressor()
            count += len(decoder.decompress(rest, CHUNK))
        elif decoder.needs_input:
            data = handle.read(CHUNK)
            if not data:
                return count
            count += len(decoder.decompress(data, CHUNK))
        else:
            count += len(decoder.decompress(b"", CHUNK))
    return count


def count_decompressed(path: PathLike, offset: int, encoding: str, cap: int) -> int:
    """Uncompressed bytes of the ``encoding`` (gzip/zlib or bzip2) stream(s) of ``path`` from byte
    ``offset``, counted in constant memory (about :data:`CHUNK`) and stopped at ``cap``. A corrupt
    stream raises :class:`InputFileError`; a truncated one counts what it held."""
    try:
        with open(path, "rb") as handle:
            handle.seek(int(offset))
            count = _count_gzip(handle, cap) if encoding == GZIP else _count_bzip2(handle, cap)
    except (zlib.error, OSError, EOFError, ValueError) as error:
        raise InputFileError(path, f"compressed voxel data is corrupt ({type(error).__name__}: {error})") from None
    return min(count, cap)


def check_declared_size(path: PathLike, n_bytes: int, data_path: Optional[PathLike] = None, offset: int = 0,
                        encoding: str = RAW, skip: int = 0, copies: int = 1) -> None:
    """Refuse a header (``path``) declaring ``n_bytes`` of voxels that its data cannot hold, or that are
    above the memory budget (held ``copies`` times); nothing is allocated.

    The data is ``data_path`` (default ``path``) from byte ``offset``, in ``encoding``; ``skip``
    uncompressed bytes precede the voxels (a ``.nii.gz``'s ``vox_offset``)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}")
    check_memory_budget(path, n_bytes, copies)
    data_path = Path(path if data_path is None else data_path)
    needed = int(n_bytes) + int(skip)
    size = data_path.stat().st_size
    if encoding == RAW:
        available = size - int(offset)
    elif encoding == TEXT:
        available = (size - int(offset)) * 8  # at least one character per value of at most 8 bytes
    else:
        isize = gzip_isize(data_path, offset) if encoding == GZIP else None
        if isize is not None and isize >= needed:
            return
        available = count_decompressed(data_path, offset, encoding, needed)
    if available < needed:
        where = "" if data_path == Path(path) else f" ({data_path.name})"
        raise InputFileError(path, f"header declares {int(n_bytes)} bytes of voxels but the data{where} holds only "
                                   f"{max(int(available) - int(skip), 0)} bytes (truncated file or corrupt header)")


__all__ = ["CHUNK", "RAW", "GZIP", "BZIP2", "TEXT", "memory_budget_bytes", "declared_bytes", "check_memory_budget",
           "gzip_isize", "count_decompressed", "check_declared_size"]
