"""Builders shared by the io tests: oblique geometries, small sequences, synthetic cine studies."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np

from CardiacMotionAtlasLib.data import CineSlice, CineStudy, ImageSequence
from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError, InputFileError
from CardiacMotionAtlasLib.geometry.affine import make_ijk_to_ras, rotation_matrix

GEOMETRY_TOL = 1e-4


def oblique(origin=(12.5, -30.25, 41.0), spacing=(1.4, 1.6, 8.0), axis=(1.0, 2.0, 3.0), angle=0.6) -> np.ndarray:
    """A right-handed oblique IJK->RAS matrix (RAS mm)."""
    return make_ijk_to_ras(origin, rotation_matrix(axis, angle), spacing)


def image_sequence(shape=(5, 4, 6, 7), matrix=None, seed=0, integer=False, **kwargs) -> ImageSequence:
    rng = np.random.default_rng(seed)
    if integer:
        array = rng.integers(0, 4000, size=shape).astype(np.int16)
    else:
        array = rng.normal(100.0, 20.0, size=shape).astype(np.float32)
    return ImageSequence(array, oblique() if matrix is None else matrix, **kwargs)


def random_labels(rng, shape, frames) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.uint8)
    for t in frames:
        labels[t] = rng.integers(0, 4, size=shape[1:])
    return labels


def make_study(n_frames: int = 6, n_sax: int = 4, ny: int = 10, nx: int = 12, gap: float = 10.0,
               thickness: float = 8.0, flipped: bool = False, labelled: Optional[List[int]] = (0, 3),
               lax_views=("2CH", "4CH"), seed: int = 1, integer: bool = False) -> CineStudy:
    """A synthetic cine study: ``n_sax`` parallel, equally spaced SAX slices (origins stepping along
    +normal, or -normal if ``flipped``) and one slice per LAX view; labels at ``labelled`` frames."""
    rng = np.random.default_rng(seed)
    rotation = rotation_matrix([0.3, -0.5, 0.8], 0.9)
    normal = rotation[:, 2]
    origin0 = np.array([-20.0, 15.5, 60.25])
    cycle = 0.96
    phases = np.arange(n_frames) / n_frames
    times = phases * cycle
    slices = []
    for k in range(n_sax):
        origin = origin0 + (-1 if flipped else 1) * k * gap * normal
        matrix = make_ijk_to_ras(origin, rotation, (1.5, 1.25, thickness))
        values = rng.normal(200, 40, size=(n_frames, 1, ny, nx))
        array = np.rint(values).astype(np.int16) if integer else values.astype(np.float32)
        labels = None
        if labelled:
            labels = ImageSequence(random_labels(rng, (n_frames, 1, ny, nx), labelled), matrix, phases=phases)
        image = ImageSequence(array, matrix, phases=phases, cycle_length_s=cycle, trigger_times_s=times,
                              name=f"SAX {k}")
        slices.append(CineSlice(image, "SAX", labels, list(labelled) if labelled else None, k))
    for index, view in enumerate(lax_views):
        lax_rotation = rotation_matrix([1.0, 0.2, -0.4], 1.1 + 0.5 * index)
        matrix = make_ijk_to_ras([5.0 * index, -12.0, 33.0], lax_rotation, (1.3, 1.3, 6.0))
        values = rng.normal(150, 30, size=(n_frames, 1, ny + 2, nx - 1))
        array = np.rint(values).astype(np.int16) if integer else values.astype(np.float32)
        labels = None
        if labelled:
            labels = ImageSequence(random_labels(rng, (n_frames, 1, ny + 2, nx - 1), labelled), matrix, phases=phases)
        image = ImageSequence(array, matrix, phases=phases, cycle_length_s=cycle, trigger_times_s=times, name=view)
        slices.append(CineSlice(image, view, labels, list(labelled) if labelled else None, 0))
    es = labelled[-1] if labelled else None
    return CineStudy("subject_007", slices, ed_frame=0, es_frame=es, cycle_length_s=cycle)


def assert_names_file(error: BaseException, path) -> None:
    """The error is the library's and its message starts with the offending path."""
    assert isinstance(error, InputFileError), type(error)
    assert str(error).startswith(str(path)), str(error)


def read_or_library_error(read, path):
    """Run ``read(path)``; a library error is fine (and returned), anything else propagates."""
    try:
        return read(path)
    except CardiacMotionAtlasError as exc:
        return exc


def files_in(folder: Path) -> List[str]:
    return sorted(p.name for p in Path(folder).iterdir())
