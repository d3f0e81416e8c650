"""Scan DICOM files with pydicom into :class:`DicomFrame` records (geometry in LPS, pixels rescaled).

Only this module and :mod:`.dicom_write` touch DICOM tags; geometry is converted to RAS by
:func:`frame_ijk_to_ras`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue

from ..errors import InputFileError
from ..geometry.affine import RAS_FROM_LPS
from ._common import MAX_INFLATION, PathLike, check_finite, reading, require_dir, require_file


@dataclass
class DicomFrame:
    """One single-frame DICOM image: LPS geometry, timing, and its pixels (``(rows, cols)`` float32)."""

    path: Path
    series_uid: str
    position_lps: np.ndarray
    row_cosine_lps: np.ndarray  # direction of increasing column index (i)
    col_cosine_lps: np.ndarray  # direction of increasing row index (j)
    spacing_ij: np.ndarray  # (column spacing, row spacing) mm = (PixelSpacing[1], PixelSpacing[0])
    thickness: float
    trigger_ms: Optional[float]
    instance: int
    nominal_interval_ms: Optional[float]
    description: str
    patient_id: str
    pixels: np.ndarray

    @property
    def normal_lps(self) -> np.ndarray:
        return np.cross(self.row_cosine_lps, self.col_cosine_lps)

    @property
    def shape(self) -> tuple:
        return tuple(self.pixels.shape)


def frame_ijk_to_ras(frame: DicomFrame, k_spacing: Optional[float] = None,
                     k_direction_lps: Optional[np.ndarray] = None) -> np.ndarray:
    """IJK->RAS of one frame: i along the row cosine, j along the column cosine, k along the normal
    (row x column, or ``k_direction_lps``) with ``k_spacing`` (default the slice thickness)."""
    k_dir = frame.normal_lps if k_direction_lps is None else np.asarray(k_direction_lps, dtype=float)
    lps = np.eye(4)
    lps[:3, 0] = frame.row_cosine_lps * frame.spacing_ij[0]
    lps[:3, 1] = frame.col_cosine_lps * frame.spacing_ij[1]
    lps[:3, 2] = k_dir * (frame.thickness if k_spacing is None else k_spacing)
    lps[:3, 3] = frame.position_lps
    return RAS_FROM_LPS @ lps


def _floats(ds, keyword: str, count: int, path: Path) -> np.ndarray:
    if keyword not in ds or ds[keyword].value is None:
        raise InputFileError(path, f"missing {keyword}")
    values = ds[keyword].value
    values = [values] if count == 1 and not isinstance(values, (list, tuple, MultiValue)) else values
    if len(values) != count:
        raise InputFileError(path, f"{keyword} has {len(values)} values, expected {count}")
    array = np.asarray([float(v) for v in values], dtype=float)
    if not np.all(np.isfinite(array)):
        raise InputFileError(path, f"{keyword} has non-finite values")
    return array


def _optional_float(ds, keyword: str) -> Optional[float]:
    value = ds.get(keyword, None)
    if value is None or value == "":
        return None
    value = float(value)
    return value if np.isfinite(value) else None


def _pixels(ds, path: Path) -> np.ndarray:
    rows, cols = int(ds.Rows), int(ds.Columns)
    bits = int(ds.get("BitsAllocated", 16) or 16)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if rows <= 0 or cols <= 0:
        raise InputFileError(path, f"invalid image size {rows} x {cols}")
    if samples != 1:
        raise InputFileError(path, f"{samples} samples per pixel; expected a greyscale image")
    expected = rows * cols * max(bits // 8, 1)
    if expected > MAX_INFLATION * path.stat().st_size:
        raise InputFileError(path, f"header promises {expected} bytes of pixels for a {path.stat().st_size}-byte file")
    pixels = np.asarray(ds.pixel_array)
    if pixels.shape != (rows, cols):
        raise InputFileError(path, f"pixel array shape {pixels.shape}, expected ({rows}, {cols})")
    slope = _optional_float(ds, "RescaleSlope")
    intercept = _optional_float(ds, "RescaleIntercept")
    pixels = pixels.astype(np.float32)
    if slope is not None and slope != 1.0:
        pixels = pixels * np.float32(slope)
    if intercept is not None and intercept != 0.0:
        pixels = pixels + np.float32(intercept)
    check_finite(pixels, path)
    return pixels


def read_frame(path: PathLike, skip_non_dicom: bool = False) -> Optional[DicomFrame]:
    """Parse one DICOM image file. Returns None for DICOM files without pixel data (reports,
    DICOMDIR) and, with ``skip_non_dicom``, for files that are not DICOM at all and do not end with
    ``.dcm``. Raises :class:`InputFileError` for broken or unsupported image files."""
    path = require_file(path)
    with reading(path), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pydicom's notes on non-conforming values
        try:
            ds = pydicom.dcmread(str(path))
        except InvalidDicomError:
            if skip_non_dicom and path.suffix.lower() != ".dcm":
                return None
            raise InputFileError(path, "not a DICOM file (no DICM preamble)") from None
        if "PixelData" not in ds:
            return None
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if frames != 1:
            raise InputFileError(path, f"multi-frame DICOM ({frames} frames) is not supported; "
                                       "export single-frame images")
        position = _floats(ds, "ImagePositionPatient", 3, path)
        orientation = _floats(ds, "ImageOrientationPatient", 6, path)
        spacing = _floats(ds, "PixelSpacing", 2, path)
        row, col = orientation[:3], orientation[3:]
        if (abs(np.linalg.norm(row) - 1) > 1e-3 or abs(np.linalg.norm(col) - 1) > 1e-3
                or abs(float(row @ col)) > 1e-3):
            raise InputFileError(path, f"ImageOrientationPatient {orientation.tolist()} is not orthonormal")
        if np.any(spacing <= 0):
            raise InputFileError(path, f"invalid PixelSpacing {spacing.tolist()}")
        thickness = _optional_float(ds, "SliceThickness")
        if thickness is None or thickness <= 0:
            thickness = _optional_float(ds, "SpacingBetweenSlices") or 1.0
        instance = ds.get("InstanceNumber", None)
        return DicomFrame(
            path=path,
            series_uid=str(ds.get("SeriesInstanceUID", "")),
            position_lps=position,
            row_cosine_lps=row / np.linalg.norm(row),
            col_cosine_lps=col / np.linalg.norm(col),
            spacing_ij=np.array([spacing[1], spacing[0]]),
            thickness=abs(float(thickness)),
            trigger_ms=_optional_float(ds, "TriggerTime"),
            instance=int(instance) if instance not in (None, "") else 0,
            nominal_interval_ms=_optional_float(ds, "NominalInterval"),
            description=str(ds.get("SeriesDescription", "") or ""),
            patient_id=str(ds.get("PatientID", "") or ""),
            pixels=_pixels(ds, path),
        )


def scan_dicom(path: PathLike) -> List[DicomFrame]:
    """All DICOM image frames of a file or of a folder (recursively; hidden files ignored)."""
    path = Path(path)
    if path.is_file():
        frame = read_frame(path)
        if frame is None:
            raise InputFileError(path, "DICOM file has no image")
        return [frame]
    folder = require_dir(path)
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    frames = [f for f in (read_frame(p, skip_non_dicom=True) for p in files) if f is not None]
    if not frames:
        raise InputFileError(folder, "no DICOM image files found")
    return frames


__all__ = ["DicomFrame", "frame_ijk_to_ras", "read_frame", "scan_dicom"]
