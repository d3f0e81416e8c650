"""DisplacementField <-> vector image files that 3D Slicer loads as a grid (displacement field) transform.

Direction convention: the field maps a point ``x`` at ``source_phase`` to ``x + u(x)`` at
``target_phase`` (it is sampled on the source grid). Slicer loads such a file as a grid transform
*from parent* (ITK resampling convention: it maps points of the fixed/output space), i.e. the inverse
of "move source points to target points"; :mod:`CardiacMotionAtlasLib.mrml.transforms` creates the
node as *to parent* (``x -> x + u(x)``) and reads either direction back correctly.

On disk the vectors follow ITK: components are **LPS** millimetres, so R and A are negated on write and
negated back on read; the grid geometry is LPS too (SimpleITK). Files: vector NIfTI (``.nii[.gz]``,
intent vector, dim5 = 3), NRRD (``.nrrd``/``.nhdr``, first axis kind ``vector``) or MetaImage (``.mha``).
The phases are stored as ``cma_source_phase``/``cma_target_phase`` key/values (NRRD, MetaImage) and in
``ITK_FileNotes`` (the NIfTI ``descrip`` field). The optional uncertainty is a separate scalar volume
next to the field: ``<stem>_uncertainty<ext>``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from ..data.displacement_field import DisplacementField
from ..data.image_sequence import ImageSequence
from ..errors import InputFileError
from .itk_images import (
    read_itk_image,
    read_sitk_checked,
    sitk_from_volume,
    sitk_to_ijk_to_ras,
    write_itk_image,
    write_sitk_atomic,
)
from ._common import PathLike, check_finite, checked_geometry, lower_name, output_error, reading

FIELD_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
_LPS_FLIP = np.array([-1.0, -1.0, 1.0], dtype=np.float32)
_NOTES = re.compile(r"source_phase=([^;\s]+);\s*target_phase=([^;\s]+)")


def _split_suffix(path: Path) -> tuple:
    name = path.name
    for suffix in FIELD_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    raise output_error(path, f"displacement field files must end with one of {FIELD_SUFFIXES}")


def uncertainty_path_for(path: PathLike) -> Path:
    """``dir/stem_uncertainty<ext>`` for a field stored at ``dir/stem<ext>``."""
    path = Path(path)
    stem, suffix = _split_suffix(path)
    return path.with_name(f"{stem}_uncertainty{suffix}")


def write_displacement_field(field: DisplacementField, path: PathLike,
                             uncertainty_path: Optional[PathLike] = None, compress: bool = True) -> Path:
    """Write ``field`` atomically as an ITK vector image (LPS components, see module docstring) and,
    if it has one, its uncertainty as a scalar volume at ``uncertainty_path`` (default
    :func:`uncertainty_path_for`). Returns the field's path."""
    path = Path(path)
    _split_suffix(path)
    vectors_lps = np.moveaxis(np.asarray(field.vectors, dtype=np.float32), 0, -1) * _LPS_FLIP
    image = sitk_from_volume(vectors_lps, field.ijk_to_ras, is_vector=True)
    source, target = float(field.source_phase), float(field.target_phase)
    image.SetMetaData("cma_source_phase", repr(source))
    image.SetMetaData("cma_target_phase", repr(target))
    image.SetMetaData("ITK_FileNotes", f"source_phase={source:.9g};target_phase={target:.9g}")
    if field.name:
        image.SetMetaData("cma_name", field.name.replace("\n", " "))
    if field.uncertainty is not None:
        sequence = ImageSequence(np.asarray(field.uncertainty)[None], field.ijk_to_ras,
                                 name=f"{field.name}_uncertainty" if field.name else "uncertainty")
        write_itk_image(sequence, uncertainty_path or uncertainty_path_for(path), compress=compress)
    return write_sitk_atomic(image, path, compress)


def _phase(text: str, path: Path, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputFileError(path, f"invalid {what} {text!r}") from None
    if not np.isfinite(value) or value < 0 or value >= 1:
        raise InputFileError(path, f"{what} {value} outside [0, 1)")
    return value


def read_displacement_field(path: PathLike, uncertainty_path: Optional[PathLike] = None) -> DisplacementField:
    """Read a displacement field written by :func:`write_displacement_field` (or any ITK/Slicer
    displacement field image: 3-component vectors in LPS) as RAS vectors ``(3, z, y, x)``. The
    uncertainty is read from ``uncertainty_path`` or, if that is None, from
    :func:`uncertainty_path_for` when that file exists."""
    path = Path(path)
    image = read_sitk_checked(path)
    with reading(path):
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 3:
            raise InputFileError(path, f"{image.GetDimension()}-D image with "
                                       f"{image.GetNumberOfComponentsPerPixel()} components per voxel; "
                                       "a displacement field is 3D with 3 components")
        array = sitk.GetArrayFromImage(image)
        if np.iscomplexobj(array):
            raise InputFileError(path, "complex vectors are not supported")
        check_finite(array, path)
        vectors = np.moveaxis(array.astype(np.float32) * _LPS_FLIP, -1, 0)
        ijk_to_ras = checked_geometry(sitk_to_ijk_to_ras(image), path)
        source = target = 0.0
        meta = {k: image.GetMetaData(k) for k in image.GetMetaDataKeys()}
        if "cma_source_phase" in meta:
            source = _phase(meta["cma_source_phase"], path, "source phase")
            target = _phase(meta.get("cma_target_phase", "0"), path, "target phase")
        elif "ITK_FileNotes" in meta:
            match = _NOTES.search(meta["ITK_FileNotes"])
            if match:
                source = _phase(match.group(1), path, "source phase")
                target = _phase(match.group(2), path, "target phase")
        name = meta.get("cma_name", path.name.split(".")[0])
    uncertainty = None
    if uncertainty_path is None:
        default = uncertainty_path_for(path) if lower_name(path).endswith(FIELD_SUFFIXES) else None
        if default is not None and default.exists():
            uncertainty_path = default
    if uncertainty_path is not None:
        sequence = read_itk_image(uncertainty_path)
        if sequence.shape_zyx != vectors.shape[1:] or sequence.n_frames != 1:
            raise InputFileError(uncertainty_path, f"uncertainty grid {sequence.array.shape[1:]} does not match "
                                                   f"the field grid {vectors.shape[1:]}")
        if not np.allclose(sequence.ijk_to_ras, ijk_to_ras, atol=1e-3):
            raise InputFileError(uncertainty_path, "uncertainty geometry differs from the field geometry")
        uncertainty = sequence.array[0].astype(np.float32)
    return DisplacementField(vectors=vectors, ijk_to_ras=ijk_to_ras, uncertainty=uncertainty,
                             source_phase=source, target_phase=target, name=name,
                             metadata={"source": str(path)})


__all__ = ["FIELD_SUFFIXES", "uncertainty_path_for", "write_displacement_field", "read_displacement_field"]
