"""Shared helpers of the readers and writers: error wrapping, input checks, size guards.

Every reader runs inside :func:`reading`, so that no third-party exception (nibabel, SimpleITK,
pydicom, vtk, zlib, EOF, memory) escapes: they all become :class:`InputFileError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from ..errors import CardiacMotionAtlasError, GeometryError, InputFileError
from ..geometry.affine import check_ijk_to_ras

PathLike = Union[str, os.PathLike]

KNOWN_LABELS = (0, 1, 2, 3)
"""Label values of every known convention (:mod:`.label_conventions`: product, ACDC, M&Ms); a label map
read with ``labels=True`` holding another value is refused (pass ``allowed_labels=None`` to skip)."""

MAX_INFLATION = 1100
"""Upper bound of the deflate (gzip/zlib) compression ratio (the format's maximum is ~1032:1). A header
that promises more voxel bytes than ``MAX_INFLATION`` times the file size is corrupt: refusing it early
avoids allocating absurd buffers for mutated headers."""


@contextlib.contextmanager
def reading(path: PathLike, error_type: type = InputFileError) -> Iterator[None]:
    """Turn any exception raised while reading ``path`` into ``error_type(path, problem)``; the
    library's own errors pass through unchanged."""
    try:
        yield
    except CardiacMotionAtlasError:
        raise
    except MemoryError:
        raise error_type(path, "not enough memory to read it (corrupt header?)") from None
    except Exception as exc:  # noqa: BLE001 - the reader boundary: nothing raw escapes
        message = " ".join(str(exc).split()) or type(exc).__name__
        if len(message) > 300:
            message = message[:300] + "..."
        raise error_type(path, f"cannot read ({type(exc).__name__}: {message})") from exc


def require_file(path: PathLike, error_type: type = InputFileError) -> Path:
    """``Path(path)`` if it is an existing, non-empty regular file; else ``error_type``."""
    path = Path(path)
    if not path.exists():
        raise error_type(path, "file does not exist")
    if not path.is_file():
        raise error_type(path, "is not a regular file")
    if path.stat().st_size == 0:
        raise error_type(path, "file is empty")
    return path


def require_dir(path: PathLike, error_type: type = InputFileError) -> Path:
    path = Path(path)
    if not path.exists():
        raise error_type(path, "folder does not exist")
    if not path.is_dir():
        raise error_type(path, "is not a folder")
    return path


def check_finite(array: np.ndarray, path: PathLike) -> None:
    """Raise if ``array`` holds NaN or infinite values."""
    if np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.complexfloating):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise InputFileError(path, f"contains {bad} NaN or infinite voxel values")


def checked_geometry(matrix: np.ndarray, path: PathLike) -> np.ndarray:
    """Validated IJK->RAS (see :func:`check_ijk_to_ras`); a :class:`GeometryError` becomes an
    :class:`InputFileError` naming the file."""
    try:
        return check_ijk_to_ras(matrix)
    except GeometryError as exc:
        raise InputFileError(path, f"invalid voxel geometry: {exc}") from None


def check_voxel_budget(path: PathLike, shape: Sequence[int], itemsize: int, compressed: bool) -> None:
    """Refuse headers that promise more voxel bytes than the file can hold (see
    :data:`MAX_INFLATION`), or non-positive sizes."""
    shape = [int(s) for s in shape]
    if any(s <= 0 for s in shape):
        raise InputFileError(path, f"invalid image size {tuple(shape)}")
    n_bytes = int(np.prod(np.asarray(shape, dtype=object))) * int(itemsize)
    size = Path(path).stat().st_size
    limit = size * (MAX_INFLATION if compressed else 1)
    if n_bytes > limit:
        raise InputFileError(
            path, f"header promises {n_bytes} bytes of voxels but the file has only {size} bytes"
        )


def labels_from_array(array: np.ndarray, path: PathLike, allowed: Optional[Sequence[int]] = (0, 1, 2, 3),
                      require_nonempty: bool = True) -> np.ndarray:
    """Check a label array (integer values, within ``allowed``, not all background) and return it as
    ``uint8``."""
    array = np.asarray(array)
    check_finite(array, path)
    if np.issubdtype(array.dtype, np.floating):
        rounded = np.rint(array)
        if not np.array_equal(rounded, array):
            raise InputFileError(path, "label map has non-integer values")
        array = rounded
    if array.size and (array.min() < 0 or array.max() > 255):
        raise InputFileError(path, f"label values outside 0..255 (min {array.min()}, max {array.max()})")
    labels = array.astype(np.uint8)
    if allowed is not None:
        extra = sorted(set(np.unique(labels).tolist()) - set(int(a) for a in allowed))
        if extra:
            raise InputFileError(path, f"unknown label values {extra}; expected a subset of {list(allowed)} "
                                       "(0 background, then the dataset's label convention)")
    if require_nonempty and not np.any(labels):
        raise InputFileError(path, "label map is empty (no non-zero voxel)")
    return labels


def output_error(path: PathLike, problem: str) -> CardiacMotionAtlasError:
    """Error for an invalid output request (unsupported extension, unwritable data)."""
    return CardiacMotionAtlasError(f"{os.fspath(path)}: {problem}")


def lower_name(path: PathLike) -> str:
    return Path(path).name.lower()


__all__ = [
    "KNOWN_LABELS",
    "MAX_INFLATION",
    "reading",
    "require_file",
    "require_dir",
    "check_finite",
    "checked_geometry",
    "check_voxel_budget",
    "labels_from_array",
    "output_error",
    "lower_name",
]
