"""NIfTI (.nii / .nii.gz) <-> :class:`ImageSequence`, with nibabel.

NIfTI is already RAS: the IJK->RAS matrix is nibabel's best affine (sform if set, else qform).
A 3D file is one frame; a 4D file ``(x, y, z, t)`` becomes ``(t, z, y, x)``. ``pixdim[4]`` (the time
step) gives trigger times ``arange(t) * dt`` when it is positive. Phases are not stored in NIfTI: a
read sequence gets evenly spaced phases ``index / n`` (the layouts keep exact phases in a sidecar).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import nibabel as nib
import numpy as np

from ..data.image_sequence import ImageSequence
from ..errors import InputFileError
from .atomic import atomic_path
from .geometry_checks import check_plausible_geometry
from .size_budget import GZIP, check_declared_size, declared_bytes
from ._common import (
    KNOWN_LABELS,
    PathLike,
    check_finite,
    checked_geometry,
    labels_from_array,
    lower_name,
    output_error,
    reading,
    require_file,
)

NIFTI_SUFFIXES = (".nii", ".nii.gz")

_TIME_UNIT_S = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
_SPACE_UNIT_MM = {"mm": 1.0, "meter": 1000.0, "micron": 1e-3, "unknown": 1.0}


def is_nifti_path(path: PathLike) -> bool:
    return lower_name(path).endswith(NIFTI_SUFFIXES)


def _time_step_s(header, n_frames: int) -> Optional[float]:
    """Frame interval in seconds from ``pixdim[4]`` (unknown units: > 1 is taken as ms), or None."""
    zooms = header.get_zooms()
    if n_frames < 2 or len(zooms) < 4:
        return None
    step = float(zooms[3])
    if not np.isfinite(step) or step <= 0:
        return None
    unit = header.get_xyzt_units()[1]
    if unit in _TIME_UNIT_S:
        return step * _TIME_UNIT_S[unit]
    return step * 1e-3 if step > 1.0 else step


def _to_tzyx(data: np.ndarray, path: PathLike) -> np.ndarray:
    """``(x[, y[, z[, t]]])`` -> ``(t, z, y, x)``; trailing singleton dimensions beyond 4 are dropped."""
    shape = data.shape
    while len(shape) > 4 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 4 or len(shape) < 2:
        raise InputFileError(path, f"{len(data.shape)}-D image of shape {data.shape}; expected a 3D or 4D "
                                   "scalar image")
    data = data.reshape(shape + (1,) * (4 - len(shape)))
    native = data.dtype.newbyteorder("=")
    return np.ascontiguousarray(np.transpose(data, (3, 2, 1, 0)), dtype=native)


def _check_size(path: Path, header, shape: Sequence[int]) -> None:
    """Refuse a header declaring more voxel bytes than the (uncompressed) file holds or than the memory
    budget, before nibabel allocates them (:mod:`.size_budget`)."""
    itemsize = header.get_data_dtype().itemsize
    slope, inter = header.get_slope_inter()
    scaled = (slope is not None and slope != 1) or (inter is not None and inter != 0)
    n_bytes = declared_bytes(shape, itemsize, path)
    copies = 2 + (8 // max(itemsize, 1) if scaled else 0)  # file buffer, (t, z, y, x) copy, float scaling
    offset = max(0, int(header["vox_offset"])) or int(getattr(header, "single_vox_offset", 352))
    if lower_name(path).endswith(".gz"):
        check_declared_size(path, n_bytes, encoding=GZIP, skip=offset, copies=copies)
    else:
        check_declared_size(path, n_bytes, offset=offset, copies=copies)


def read_nifti(path: PathLike, labels: bool = False, allowed_labels: Optional[Sequence[int]] = KNOWN_LABELS,
               require_labels: bool = False, name: Optional[str] = None) -> ImageSequence:
    """Read a 3D or 4D NIfTI as an :class:`ImageSequence` (RAS mm, ``(t, z, y, x)``).

    With ``labels=True`` the voxels must be integers within ``allowed_labels`` (default the values of
    the known label conventions, 0..3; None: any 0..255) and are returned as ``uint8``; ``require_labels`` also refuses an all-background map.
    Raises :class:`InputFileError` naming the file for any unreadable or invalid input.
    """
    path = require_file(path)
    if not is_nifti_path(path):
        raise InputFileError(path, f"not a NIfTI file (expected one of {NIFTI_SUFFIXES})")
    with reading(path):
        image = nib.load(str(path), mmap=False)
        if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
            raise InputFileError(path, f"not a NIfTI image ({type(image).__name__})")
        header = image.header
        shape = tuple(int(s) for s in header.get_data_shape())
        unit = header.get_xyzt_units()[0]
        affine = np.array(image.affine, dtype=float)
        affine[:3, :] *= _SPACE_UNIT_MM.get(unit, 1.0)
        ijk_to_ras = checked_geometry(affine, path)
        check_plausible_geometry(ijk_to_ras, shape[:3], path)
        _check_size(path, header, shape)
        data = np.asanyarray(image.dataobj)
        array = _to_tzyx(np.asarray(data), path)
        check_finite(array, path)
        step = _time_step_s(header, array.shape[0])
    if labels:
        array = labels_from_array(array, path, allowed=allowed_labels, require_nonempty=require_labels)
    n_frames = array.shape[0]
    return ImageSequence(
        array=array,
        ijk_to_ras=ijk_to_ras,
        trigger_times_s=None if step is None else np.arange(n_frames) * step,
        name=name if name is not None else _stem(path),
        metadata={"source": str(path), "time_step_s": step},
    )


def read_nifti_data(path: PathLike) -> np.ndarray:
    """The raw voxel array ``(x, y, z[, t])`` of a NIfTI file after the same header checks as
    :func:`read_nifti` (plausible geometry, declared size vs data and memory budget), for callers that
    need the data without an :class:`ImageSequence` (the cohort pre-flight)."""
    path = require_file(path)
    with reading(path):
        image = nib.load(str(path), mmap=False)
        shape = tuple(int(s) for s in image.header.get_data_shape())
        affine = np.array(image.affine, dtype=float)
        affine[:3, :] *= _SPACE_UNIT_MM.get(image.header.get_xyzt_units()[0], 1.0)
        check_plausible_geometry(checked_geometry(affine, path), shape[:3], path)
        _check_size(path, image.header, shape)
        return np.asanyarray(image.dataobj)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _writable_array(array: np.ndarray, labels: bool, path: PathLike) -> np.ndarray:
    if labels:
        if array.size and (np.nanmin(array) < 0 or np.nanmax(array) > 255):
            raise output_error(path, "label values must lie in 0..255")
        return np.rint(array).astype(np.uint8) if np.issubdtype(array.dtype, np.floating) else array.astype(np.uint8)
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype == np.float16:
        return array.astype(np.float32)
    if array.dtype in (np.int64, np.uint64):
        info = np.iinfo(np.int32)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return array.astype(np.int32)
        return array.astype(np.float64)
    return array


def _uniform_step(image: ImageSequence) -> float:
    """Frame interval (s) to store in ``pixdim[4]``; 0 when unknown."""
    times = image.trigger_times_s
    if times is not None and len(times) >= 2:
        steps = np.diff(times)
        if np.all(steps > 0) and np.allclose(steps, steps[0], rtol=1e-3, atol=1e-6):
            return float(steps[0])
    if image.cycle_length_s and image.n_frames >= 2:
        return float(image.cycle_length_s) / image.n_frames
    return 0.0


def write_nifti(image: ImageSequence, path: PathLike, labels: bool = False,
                label_convention: Optional[str] = "product") -> Path:
    """Write ``image`` atomically as NIfTI-1 (3D if one frame, else 4D ``(x, y, z, t)``), with the
    IJK->RAS matrix in both sform and qform (code 1, scanner), units mm and s, and the frame interval
    in ``pixdim[4]``. ``labels=True`` stores ``uint8`` and stamps the label convention of the values
    (``label_convention``: ``product`` unless told otherwise, None: no stamp) in the header (intent
    ``label``, intent name ``cma:<convention>``), so that the product reads its own label files without
    being told their convention (:func:`~.label_conventions.convention_of_label_file`). Returns the path."""
    path = Path(path)
    if not is_nifti_path(path):
        raise output_error(path, f"NIfTI output must end with one of {NIFTI_SUFFIXES}")
    array = _writable_array(np.asarray(image.array), labels, path)
    data = np.transpose(array, (3, 2, 1, 0))  # (x, y, z, t)
    if data.shape[3] == 1:
        data = data[..., 0]
    affine = np.asarray(image.ijk_to_ras, dtype=float)
    nifti = nib.Nifti1Image(data, affine)
    nifti.set_sform(affine, code=1)
    nifti.set_qform(affine, code=1)
    header = nifti.header
    header.set_data_dtype(data.dtype)
    header.set_xyzt_units("mm", "sec")
    if labels and label_convention is not None:
        from .label_conventions import STAMP_PREFIX, check_convention

        header.set_intent("label", name=STAMP_PREFIX + check_convention(label_convention, path))
    if data.ndim == 4:
        header.set_zooms(tuple(header.get_zooms()[:3]) + (_uniform_step(image),))
    if image.name:
        header["descrip"] = image.name.encode("ascii", "replace")[:79]
    with atomic_path(path) as tmp:
        nib.save(nifti, str(tmp))
    return path


__all__ = ["NIFTI_SUFFIXES", "is_nifti_path", "read_nifti", "read_nifti_data", "write_nifti"]
