"""NRRD and other SimpleITK formats <-> :class:`ImageSequence`; LPS <-> RAS conversion of geometry.

SimpleITK/ITK geometry is LPS; it is converted to the library's RAS IJK->RAS matrix here and nowhere
else (:func:`sitk_to_ijk_to_ras`, :func:`ijk_to_ras_to_sitk`).

4D sequences: a sequence of ``t > 1`` frames is written as one 4D image whose time axis is the slowest
(``sitk.JoinSeries``): NRRD ``sizes: I J K T``. This is the layout of Slicer's volume sequence file
(``.seq.nrrd``, list axis 3), so Slicer loads it as a volume sequence; the phases are also written as
``axis 3 index values`` (Slicer's sequence index) and in ``cma_*`` key/value fields that this reader
uses to restore phases, trigger times, cycle length and name. A 3-D NRRD whose first axis has kind
``list`` (older Slicer sequences) is read as frames too.

Detached-header formats (``.nhdr``, ``.mhd``) are written into a temporary folder next to the target
and moved into place data file first, header last.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..data.image_sequence import ImageSequence
from ..errors import InputFileError
from ..geometry.affine import RAS_FROM_LPS, decompose_ijk_to_ras
from .atomic import atomic_path
from .detached_headers import DataLayout, inspect_header
from .geometry_checks import check_plausible_geometry
from .size_budget import RAW, check_declared_size, check_memory_budget, declared_bytes
from ._common import (
    KNOWN_LABELS,
    MAX_INFLATION,
    PathLike,
    check_finite,
    checked_geometry,
    labels_from_array,
    lower_name,
    output_error,
    reading,
    require_file,
)

DETACHED_SUFFIXES = (".nhdr", ".mhd", ".hdr")
FOUR_D_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".nii", ".nii.gz")

_BYTES_PER_COMPONENT = {
    sitk.sitkUInt8: 1, sitk.sitkInt8: 1, sitk.sitkUInt16: 2, sitk.sitkInt16: 2,
    sitk.sitkUInt32: 4, sitk.sitkInt32: 4, sitk.sitkUInt64: 8, sitk.sitkInt64: 8,
    sitk.sitkFloat32: 4, sitk.sitkFloat64: 8,
    sitk.sitkVectorUInt8: 1, sitk.sitkVectorInt8: 1, sitk.sitkVectorUInt16: 2, sitk.sitkVectorInt16: 2,
    sitk.sitkVectorUInt32: 4, sitk.sitkVectorInt32: 4, sitk.sitkVectorUInt64: 8, sitk.sitkVectorInt64: 8,
    sitk.sitkVectorFloat32: 4, sitk.sitkVectorFloat64: 8,
}


# --------------------------------------------------------------------------- geometry (LPS <-> RAS)

def sitk_to_ijk_to_ras(image: sitk.Image) -> np.ndarray:
    """4x4 IJK->RAS (mm) of a 2D, 3D or 4D SimpleITK image (spatial part only; a 2D image gets a unit
    k axis along the in-plane normal)."""
    dim = image.GetDimension()
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(dim, dim)
    spacing = np.asarray(image.GetSpacing(), dtype=float)
    origin = np.asarray(image.GetOrigin(), dtype=float)
    lps = np.eye(4)
    if dim == 2:
        d3 = np.eye(3)
        d3[:2, :2] = direction
        lps[:3, :3] = d3 @ np.diag([spacing[0], spacing[1], 1.0])
        lps[:2, 3] = origin
    else:
        lps[:3, :3] = direction[:3, :3] @ np.diag(spacing[:3])
        lps[:3, 3] = origin[:3]
    return RAS_FROM_LPS @ lps


def ijk_to_ras_to_sitk(image: sitk.Image, matrix: np.ndarray) -> sitk.Image:
    """Set origin, spacing and direction of a 3D (or the spatial part of a 4D) SimpleITK image from a
    RAS IJK->RAS matrix; returns ``image``."""
    origin, direction, spacing = decompose_ijk_to_ras(RAS_FROM_LPS @ np.asarray(matrix, dtype=float))
    dim = image.GetDimension()
    if dim == 3:
        image.SetOrigin(tuple(float(v) for v in origin))
        image.SetSpacing(tuple(float(v) for v in spacing))
        image.SetDirection(tuple(float(v) for v in direction.ravel()))
    elif dim == 4:
        full = np.eye(4)
        full[:3, :3] = direction
        image.SetOrigin(tuple(float(v) for v in origin) + (image.GetOrigin()[3],))
        image.SetSpacing(tuple(float(v) for v in spacing) + (image.GetSpacing()[3],))
        image.SetDirection(tuple(float(v) for v in full.ravel()))
    else:
        raise ValueError(f"expected a 3D or 4D image, got {dim}D")
    return image


def sitk_from_volume(volume_zyx: np.ndarray, ijk_to_ras: np.ndarray, is_vector: bool = False) -> sitk.Image:
    """A 3D SimpleITK image from a ``(z, y, x)`` (or ``(z, y, x, c)`` with ``is_vector``) array."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume_zyx), isVector=is_vector)
    return ijk_to_ras_to_sitk(image, ijk_to_ras)


# --------------------------------------------------------------------------- low-level read/write

def _sibling_bytes(path: Path) -> int:
    """Bytes of a detached header and the data files beside it that share its stem (Analyze ``.hdr``)."""
    stem = path.name.split(".")[0]
    total = 0
    for candidate in path.parent.glob(stem + ".*"):
        if candidate.is_file():
            total += candidate.stat().st_size
    return max(total, path.stat().st_size)


def _check_data_size(path: Path, layout: Optional[DataLayout], n_bytes: int) -> None:
    """Refuse a header declaring more voxel bytes than its data holds, or than the memory budget
    (:mod:`.size_budget`), before SimpleITK allocates them."""
    if layout is None:  # other SimpleITK formats: bounded by the deflate ratio of the files
        limit = (_sibling_bytes(path) if lower_name(path).endswith(DETACHED_SUFFIXES) else path.stat().st_size)
        check_memory_budget(path, n_bytes, copies=2)
        if n_bytes > limit * MAX_INFLATION:
            raise InputFileError(path, f"header declares {n_bytes} bytes of voxels but the file has only {limit} bytes")
        return
    if len(layout.data_files) == 1 and layout.offset is not None:
        check_declared_size(path, n_bytes, layout.data_files[0], layout.offset, layout.encoding, copies=2)
        return
    check_memory_budget(path, n_bytes, copies=2)
    total = sum(f.stat().st_size for f in layout.data_files)
    if n_bytes > total * (1 if layout.encoding == RAW else MAX_INFLATION):
        raise InputFileError(path, f"header declares {n_bytes} bytes of voxels but its {len(layout.data_files)} "
                                   f"data files hold only {total} bytes")


def read_sitk_checked(path: PathLike) -> sitk.Image:
    """``sitk.ReadImage`` behind the library's checks: the file exists; a MetaImage/NRRD header's data
    files are regular files in its own folder (:mod:`.detached_headers`); the header does not declare
    more voxels than the data holds or memory allows (:mod:`.size_budget`); the geometry is plausible
    for a heart (:mod:`.geometry_checks`). Every failure becomes :class:`InputFileError`."""
    path = require_file(path)
    with reading(path):
        layout = inspect_header(path)
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        size = reader.GetSize()
        direction = np.asarray(reader.GetDirection(), dtype=float)
        spacing = np.asarray(reader.GetSpacing(), dtype=float)
        origin = np.asarray(reader.GetOrigin(), dtype=float)
        if not (np.all(np.isfinite(direction)) and np.all(np.abs(direction) <= 1.0 + 1e-6)):
            raise InputFileError(path, "invalid direction cosines in the header")
        if not (np.all(np.isfinite(spacing)) and np.all(spacing > 0) and np.all(np.isfinite(origin))):
            raise InputFileError(path, f"invalid spacing {spacing.tolist()} or origin in the header")
        n_components = reader.GetNumberOfComponents()
        pixel_id = reader.GetPixelID()
        if pixel_id not in _BYTES_PER_COMPONENT:
            raise InputFileError(path, f"unsupported pixel type {sitk.GetPixelIDValueAsString(pixel_id)}")
        itemsize = _BYTES_PER_COMPONENT[pixel_id] * max(int(n_components), 1)
        _check_data_size(path, layout, declared_bytes(size, itemsize, path))
        dim = len(size)
        lps = np.eye(4)
        lps[:min(dim, 3), :min(dim, 3)] = (direction.reshape(dim, dim)[:3, :3] @ np.diag(spacing[:3]))
        lps[:min(dim, 3), 3] = origin[:3]
        check_plausible_geometry(lps, size[:3], path, spacing_mm=spacing[:3] if dim >= 3 else
                                 np.concatenate([spacing[:2], [1.0]]))
        return reader.Execute()


def write_sitk_atomic(image: sitk.Image, path: PathLike, compress: bool = True) -> Path:
    """``sitk.WriteImage`` without partial output: a temporary file (or, for detached headers, a
    temporary folder) next to ``path`` is renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if lower_name(path).endswith(DETACHED_SUFFIXES):
            tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmpdir", dir=path.parent))
            try:
                target = tmp_dir / path.name
                sitk.WriteImage(image, str(target), compress)
                for produced in sorted(tmp_dir.iterdir()):
                    if produced.name != path.name:
                        os.replace(produced, path.parent / produced.name)
                os.replace(target, path)
            finally:
                shutil.rmtree(tmp_dir, ignore_errors=True)
        else:
            with atomic_path(path) as tmp:
                sitk.WriteImage(image, str(tmp), compress)
    except RuntimeError as exc:
        raise output_error(path, f"SimpleITK cannot write it: {' '.join(str(exc).split())[:300]}") from exc
    return path


# --------------------------------------------------------------------------- ImageSequence

def _floats(text: str) -> List[float]:
    return [float(v) for v in text.replace(",", " ").split()]


def _meta(image: sitk.Image, key: str) -> Optional[str]:
    return image.GetMetaData(key) if image.HasMetaDataKey(key) else None


def _is_list_axis(image: sitk.Image) -> bool:
    """Whether the component axis is a NRRD ``list`` axis (older Slicer volume sequences)."""
    return (_meta(image, "NRRD_kinds[pixel]") or "").strip().lower() == "list"


def image_sequence_from_sitk(image: sitk.Image, path: PathLike, labels: bool = False,
                             allowed_labels: Optional[Sequence[int]] = KNOWN_LABELS, require_labels: bool = False,
                             name: Optional[str] = None) -> ImageSequence:
    """Convert a 2D/3D/4D scalar SimpleITK image (or a 3D image with a ``list`` component axis) read
    from ``path`` into an :class:`ImageSequence`."""
    dim = image.GetDimension()
    n_comp = image.GetNumberOfComponentsPerPixel()
    array = sitk.GetArrayFromImage(image)
    if n_comp > 1:
        if dim == 3 and _is_list_axis(image):
            array = np.moveaxis(array, -1, 0)  # (z, y, x, t) -> (t, z, y, x)
        else:
            raise InputFileError(path, f"{n_comp}-component pixels; expected a scalar image")
    elif dim == 2:
        array = array[None, None]
    elif dim == 3:
        array = array[None]
    elif dim != 4:
        raise InputFileError(path, f"{dim}-D image; expected 2D, 3D or 4D")
    if np.iscomplexobj(array):
        raise InputFileError(path, "complex pixels are not supported")
    array = np.ascontiguousarray(array)
    check_finite(array, path)
    ijk_to_ras = checked_geometry(sitk_to_ijk_to_ras(image), path)
    if labels:
        array = labels_from_array(array, path, allowed=allowed_labels, require_nonempty=require_labels)
    n_frames = array.shape[0]
    phases = trigger = cycle = None
    text = _meta(image, "cma_phases")
    if text:
        phases = np.asarray(_floats(text))
        if phases.shape[0] != n_frames or not np.all((phases >= 0) & (phases < 1)):
            raise InputFileError(path, f"cma_phases has {phases.shape[0]} values in [0, 1) for {n_frames} frames")
    text = _meta(image, "cma_trigger_times_s")
    if text:
        trigger = np.asarray(_floats(text))
        if trigger.shape[0] != n_frames or not np.all(np.isfinite(trigger)):
            raise InputFileError(path, f"cma_trigger_times_s has {trigger.shape[0]} values for {n_frames} frames")
    text = _meta(image, "cma_cycle_length_s")
    if text:
        cycle = float(text)
        if not np.isfinite(cycle) or cycle <= 0:
            raise InputFileError(path, f"invalid cma_cycle_length_s {text!r}")
    stored_name = _meta(image, "cma_name")
    if name is None:
        name = stored_name if stored_name is not None else Path(path).name.split(".")[0]
    return ImageSequence(array=array, ijk_to_ras=ijk_to_ras, phases=phases, cycle_length_s=cycle,
                         trigger_times_s=trigger, name=name, metadata={"source": str(path)})


def read_itk_image(path: PathLike, labels: bool = False, allowed_labels: Optional[Sequence[int]] = KNOWN_LABELS,
                   require_labels: bool = False, name: Optional[str] = None) -> ImageSequence:
    """Read NRRD (``.nrrd``/``.nhdr``, 3D or 4D) or any SimpleITK format as an :class:`ImageSequence`
    (RAS mm). Raises :class:`InputFileError` naming the file on any problem."""
    image = read_sitk_checked(path)
    with reading(path):
        return image_sequence_from_sitk(image, path, labels, allowed_labels, require_labels, name)


def _join(values: Sequence[float]) -> str:
    return " ".join(repr(float(v)) for v in values)


def sitk_from_image_sequence(image: ImageSequence, labels: bool = False) -> sitk.Image:
    """3D (one frame) or 4D (time slowest) SimpleITK image with LPS geometry and ``cma_*`` metadata."""
    array = np.asarray(image.array)
    if labels:
        array = np.rint(array).astype(np.uint8) if np.issubdtype(array.dtype, np.floating) else array.astype(np.uint8)
    elif array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.float16:
        array = array.astype(np.float32)
    frames = [sitk_from_volume(frame, image.ijk_to_ras) for frame in array]
    step = 1.0
    times = image.trigger_times_s
    if times is not None and len(times) >= 2 and np.all(np.diff(times) > 0):
        step = float(np.mean(np.diff(times)))
    out = frames[0] if len(frames) == 1 else sitk.JoinSeries(frames, 0.0, step)
    out.SetMetaData("cma_phases", _join(image.phases))
    if image.trigger_times_s is not None:
        out.SetMetaData("cma_trigger_times_s", _join(image.trigger_times_s))
    if image.cycle_length_s:
        out.SetMetaData("cma_cycle_length_s", repr(float(image.cycle_length_s)))
    if image.name:
        out.SetMetaData("cma_name", image.name.replace("\n", " "))
    out.SetMetaData("DataNodeClassName", "vtkMRMLLabelMapVolumeNode" if labels else "vtkMRMLScalarVolumeNode")
    if len(frames) > 1:
        out.SetMetaData("axis 3 index type", "numeric")
        out.SetMetaData("axis 3 index values", _join(image.phases))
    return out


def write_itk_image(image: ImageSequence, path: PathLike, labels: bool = False, compress: bool = True) -> Path:
    """Write ``image`` atomically with SimpleITK, format from the extension (``.nrrd``, ``.seq.nrrd``,
    ``.nhdr``, ``.mha``, ...). One frame -> 3D image; several -> 4D image with time slowest (see the
    module docstring). ``labels=True`` writes ``uint8``. Returns the path written."""
    path = Path(path)
    if image.n_frames > 1 and not lower_name(path).endswith(FOUR_D_SUFFIXES):
        raise output_error(path, f"{image.n_frames} frames need a 4D-capable format {FOUR_D_SUFFIXES}")
    return write_sitk_atomic(sitk_from_image_sequence(image, labels), path, compress)


read_nrrd = read_itk_image
write_nrrd = write_itk_image

__all__ = [
    "sitk_to_ijk_to_ras",
    "ijk_to_ras_to_sitk",
    "sitk_from_volume",
    "read_sitk_checked",
    "write_sitk_atomic",
    "image_sequence_from_sitk",
    "sitk_from_image_sequence",
    "read_itk_image",
    "write_itk_image",
    "read_nrrd",
    "write_nrrd",
]
