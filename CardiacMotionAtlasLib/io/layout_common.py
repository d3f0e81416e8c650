"""Shared pieces of the study layouts: SAX stack <-> per-slice cines, label checks, sidecars.

A SAX stack ``(t, z, y, x)`` with IJK->RAS ``M`` is split into ``z`` cine slices; slice ``k`` has its own
IJK->RAS with the same i, j axes and origin at the stack voxel ``(0, 0, k)``; its k axis is along the
stack's k axis (negated if ``normal_flipped``) with the slice thickness as spacing (default: the
stack spacing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..data.cine_study import CineSlice, stack_slices  # stack_slices re-exported (it lives with the data model)
from ..data.image_sequence import ImageSequence
from ..errors import CardiacMotionAtlasError, CineStudyError
from ._common import PathLike, reading, require_file


def _with_geometry(image: ImageSequence, array: np.ndarray, ijk_to_ras: np.ndarray, name: str) -> ImageSequence:
    return ImageSequence(array=array, ijk_to_ras=ijk_to_ras, phases=image.phases.copy(),
                         cycle_length_s=image.cycle_length_s,
                         trigger_times_s=None if image.trigger_times_s is None else image.trigger_times_s.copy(),
                         name=name, metadata=dict(image.metadata))


def slice_ijk_to_ras(stack_ijk_to_ras: np.ndarray, k: int, thickness: Optional[float] = None,
                     normal_flipped: bool = False) -> np.ndarray:
    """IJK->RAS of slice ``k`` of a stack (see module docstring)."""
    stack = np.asarray(stack_ijk_to_ras, dtype=float)
    matrix = stack.copy()
    matrix[:3, 3] = stack[:3, :3] @ np.array([0.0, 0.0, float(k)]) + stack[:3, 3]
    k_axis = stack[:3, 2] / np.linalg.norm(stack[:3, 2])
    spacing = float(np.linalg.norm(stack[:3, 2])) if thickness is None else float(thickness)
    matrix[:3, 2] = (-k_axis if normal_flipped else k_axis) * spacing
    return matrix


def split_stack(image: ImageSequence, labels: Optional[ImageSequence] = None,
                labelled_frames: Optional[Sequence[int]] = None, view: str = "SAX",
                thickness: Optional[float] = None, normal_flipped: bool = False) -> List[CineSlice]:
    """Cine slices of a stack ``(t, z, y, x)``, in stack order (``slice_index = k``)."""
    slices = []
    for k in range(image.array.shape[1]):
        matrix = slice_ijk_to_ras(image.ijk_to_ras, k, thickness, normal_flipped)
        slice_image = _with_geometry(image, image.array[:, k:k + 1].copy(), matrix, f"{view} {k}")
        slice_labels = None
        if labels is not None:
            slice_labels = _with_geometry(labels, labels.array[:, k:k + 1].copy(), matrix,
                                          f"{view} {k} labels")
        slices.append(CineSlice(image=slice_image, view=view, labels=slice_labels,
                                labelled_frames=None if labels is None else list(labelled_frames or []),
                                slice_index=k))
    return slices


def sax_volume(slices: Sequence[CineSlice], labels: bool = False, name: str = "sax") -> ImageSequence:
    """The SAX ``slices`` (parallel, equally spaced; see :func:`stack_slices`) as one ``(t, z, y, x)``
    sequence on the stack grid (k spacing = the slice *spacing*); ``labels=True`` stacks their labels
    (``uint8``, 0 in frames a slice has no labels for). Raises :class:`CardiacMotionAtlasError`."""
    if not slices:
        raise CardiacMotionAtlasError(f"{name}: no SAX slice")
    matrix, _, _ = stack_slices(slices)
    first = slices[0].image
    if labels:
        if any(s.labels is None for s in slices):
            raise CardiacMotionAtlasError(f"{name}: some SAX slices have no labels")
        parts = []
        for s in slices:
            part = np.zeros(s.labels.array.shape, np.uint8)
            frames = list(s.labelled_frames if s.labelled_frames is not None else range(s.n_frames))
            part[frames] = np.asarray(s.labels.array)[frames]
            parts.append(part)
        array = np.concatenate(parts, axis=1)
    else:
        array = np.concatenate([s.image.array for s in slices], axis=1)
    return ImageSequence(array, matrix, phases=first.phases.copy(), cycle_length_s=first.cycle_length_s,
                         trigger_times_s=first.trigger_times_s, name=name)


def check_same_grid(reference: ImageSequence, other: ImageSequence, path: PathLike, what: str) -> None:
    """``other`` (read from ``path``) must have the voxel grid of ``reference``."""
    if other.array.shape[1:] != reference.array.shape[1:]:
        raise CineStudyError(path, f"{what} size {other.array.shape[1:]} (z, y, x) differs from the image "
                                   f"{reference.array.shape[1:]}")
    if not np.allclose(other.ijk_to_ras, reference.ijk_to_ras, atol=1e-3):
        raise CineStudyError(path, f"{what} geometry differs from the image geometry")


def check_cine(image: ImageSequence, path: PathLike, layout: str) -> None:
    """A layout's cine file must have several time frames: a 3D file (one frame) is named as such."""
    if image.n_frames < 2:
        raise CineStudyError(path, f"3D image (one time frame, shape {image.array.shape[1:]} z, y, x); the {layout} "
                                   "layout needs a 4D cine (x, y, z, t)")


def check_frame_count(image: ImageSequence, expected: int, path: PathLike) -> None:
    if image.n_frames != expected:
        raise CineStudyError(path, f"{image.n_frames} time frames, expected {expected}")


def read_json(path: PathLike) -> Dict:
    """A JSON object from ``path`` ({} if it does not exist); invalid JSON raises CineStudyError."""
    path = Path(path)
    if not path.exists():
        return {}
    require_file(path, CineStudyError)
    with reading(path, CineStudyError):
        value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise CineStudyError(path, "expected a JSON object")
    return value


def frame_index(value, n_frames: int, path: PathLike, what: str) -> Optional[int]:
    """Validate an optional frame index from a sidecar."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < n_frames:
        raise CineStudyError(path, f"{what} = {value!r} is not a frame index in 0..{n_frames - 1}")
    return int(value)


def float_list(value, n: int, path: PathLike, what: str, low: float = -np.inf,
               high: float = np.inf) -> Optional[np.ndarray]:
    """Validate an optional list of ``n`` finite numbers in ``[low, high)`` from a sidecar."""
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise CineStudyError(path, f"{what} is not a list of numbers") from None
    if array.shape[0] != n or not np.all(np.isfinite(array)) or np.any(array < low) or np.any(array >= high):
        raise CineStudyError(path, f"{what} must be {n} finite numbers in [{low}, {high})")
    return array


def labelled_frames_of(labels: np.ndarray) -> List[int]:
    """Frames of a ``(t, ...)`` label array holding any non-zero voxel."""
    return [int(t) for t in np.flatnonzero(labels.reshape(labels.shape[0], -1).any(axis=1))]


def lv_volume_es(labels: np.ndarray, frames: Sequence[int]) -> Optional[int]:
    """The labelled frame with the smallest LV blood pool (label 1), as an ES estimate."""
    counts = [(int(np.count_nonzero(labels[t] == 1)), t) for t in frames]
    counts = [c for c in counts if c[0] > 0]
    return min(counts)[1] if len(counts) >= 2 else None


__all__ = [
    "slice_ijk_to_ras",
    "split_stack",
    "stack_slices",
    "sax_volume",
    "check_same_grid",
    "check_cine",
    "check_frame_count",
    "read_json",
    "frame_index",
    "float_list",
    "labelled_frames_of",
    "lv_volume_es",
]
