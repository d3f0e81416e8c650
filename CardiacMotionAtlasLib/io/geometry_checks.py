"""Plausibility of the voxel geometry a reader gets from a file header (RAS or LPS mm, world frame).

A header can be valid for its format and still absurd for a heart: a NIfTI with 1e9 mm voxels reads
fine and gives an LV volume of 1e27 ml downstream. The readers call :func:`check_plausible_geometry`
(or :func:`check_plausible_spacing` for DICOM pixel spacing) and refuse such files, naming them.

The limits (chosen for cardiac cine CMR and cardiac CT, documented here and in the errors):

- voxel size (every spatial axis, mm): :data:`MIN_VOXEL_MM` = 0.1 to :data:`MAX_VOXEL_MM` = 20
  (CMR pixels are 1-4 mm, slices 5-10 mm with gaps up to ~12 mm; CT voxels 0.3-5 mm);
- field of view (voxel count x voxel size, every spatial axis): at most :data:`MAX_FOV_MM` = 1000 mm
  (a whole torso; a heart is ~120 mm). No lower bound on the field of view is enforced: a single cine
  slice is one voxel (its thickness) deep and thumbnails / test volumes of a few voxels are legitimate;
  the voxel-size bounds already refuse a "heart" 1e-6 mm wide;
- origin: finite and within :data:`MAX_ORIGIN_MM` = 1e5 mm (100 m) of the scanner origin;
- direction: finite (orthonormality is checked by :func:`~CardiacMotionAtlasLib.geometry.affine.check_ijk_to_ras`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import InputFileError
from ._common import PathLike

MIN_VOXEL_MM = 0.1
MAX_VOXEL_MM = 20.0
MAX_FOV_MM = 1000.0
MAX_ORIGIN_MM = 1e5


def _fmt(values: Sequence[float]) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


def check_plausible_spacing(spacing_mm: Sequence[float], path: PathLike, what: str = "voxel size") -> None:
    """Every value of ``spacing_mm`` (mm) must be finite and within [MIN_VOXEL_MM, MAX_VOXEL_MM]."""
    spacing = np.asarray(spacing_mm, dtype=float).reshape(-1)
    if not np.all(np.isfinite(spacing)) or np.any(spacing < MIN_VOXEL_MM) or np.any(spacing > MAX_VOXEL_MM):
        raise InputFileError(path, f"implausible {what} {_fmt(spacing)} mm: every axis must be "
                                   f"{MIN_VOXEL_MM:g}-{MAX_VOXEL_MM:g} mm for a cardiac image (corrupt header "
                                   "or wrong units?)")


def check_plausible_geometry(ijk_to_ras: np.ndarray, shape_ijk: Sequence[int], path: PathLike,
                             spacing_mm: Optional[Sequence[float]] = None) -> None:
    """Refuse a 4x4 IJK->RAS (or IJK->LPS) matrix of an image of ``shape_ijk`` voxels (``(i, j, k)``;
    fewer entries are padded with 1) whose voxel size, field of view, origin or direction is not
    plausible for a heart (module docstring). ``spacing_mm`` overrides the column norms (for a 2D slice
    whose k column is a nominal thickness). Raises :class:`InputFileError` naming ``path``."""
    matrix = np.asarray(ijk_to_ras, dtype=float)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise InputFileError(path, "voxel-to-world matrix has non-finite entries (direction or origin)")
    spacing = np.linalg.norm(matrix[:3, :3], axis=0) if spacing_mm is None else np.asarray(spacing_mm, float)
    check_plausible_spacing(spacing, path)
    shape = [int(s) for s in shape_ijk][:3]
    shape += [1] * (3 - len(shape))
    fov = np.asarray(shape, dtype=float) * spacing
    if np.any(fov > MAX_FOV_MM):
        raise InputFileError(path, f"implausible field of view {_fmt(fov)} mm ({shape} voxels of {_fmt(spacing)} "
                                   f"mm): at most {MAX_FOV_MM:g} mm per axis for a cardiac image")
    origin = matrix[:3, 3]
    if np.any(np.abs(origin) > MAX_ORIGIN_MM):
        raise InputFileError(path, f"implausible origin {_fmt(origin)} mm (more than {MAX_ORIGIN_MM:g} mm from "
                                   "the scanner origin)")


__all__ = ["MIN_VOXEL_MM", "MAX_VOXEL_MM", "MAX_FOV_MM", "MAX_ORIGIN_MM", "check_plausible_spacing",
           "check_plausible_geometry"]
