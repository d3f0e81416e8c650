"""Scan DICOM files with pydicom into :class:`DicomFrame` records (geometry in LPS, pixels rescaled).

Only this module and :mod:`.dicom_write` touch DICOM tags; geometry is converted to RAS by
:func:`frame_ijk_to_ras`.
"""

from __future__ import annotations

import os
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
from .geometry_checks import MAX_FOV_MM, MAX_ORIGIN_MM, check_plausible_spacing
from ._common import MAX_INFLATION, PathLike, check_finite, reading, require_dir, require_file


_IMAGE_KEYS = ("Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
"""Tags of an image header: a file with them but no PixelData is a truncated image, not a report."""


def _is_image(ds) -> bool:
    """Whether a dataset is (the start of) an image: image tags, or an image storage SOP class."""
    if any(key in ds for key in _IMAGE_KEYS):
        return True
    meta = getattr(ds, "file_meta", None)
    sop = ds.get("SOPClassUID", None) or (meta.get("MediaStorageSOPClassUID", None) if meta is not None else None)
    try:
        return bool(sop) and "Image Storage" in pydicom.uid.UID(str(sop)).name
    except Exception:  # noqa: BLE001 - an unparsable UID says nothing
        return False


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
    study_uid: str = ""
    frame_of_reference_uid: str = ""

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
            if _is_image(ds):
                raise InputFileError(path, "image header without pixel data: the file is truncated or damaged")
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
        check_plausible_spacing(spacing, path, "PixelSpacing")
        check_plausible_spacing([abs(thickness)], path, "slice thickness")
        if np.any(np.abs(position) > MAX_ORIGIN_MM):
            raise InputFileError(path, f"implausible ImagePositionPatient {position.tolist()} mm")
        fov = np.array([int(ds.Columns), int(ds.Rows)]) * spacing[::-1]
        if np.any(fov > MAX_FOV_MM):
            raise InputFileError(path, f"implausible field of view {fov.tolist()} mm (at most {MAX_FOV_MM:g} mm)")
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
            study_uid=str(ds.get("StudyInstanceUID", "") or ""),
            frame_of_reference_uid=str(ds.get("FrameOfReferenceUID", "") or ""),
        )


def _unreadable(failures: List[InputFileError], folder: Path) -> InputFileError:
    """One error naming every unreadable file (the first with its problem, then up to 5 more names)."""
    first = failures[0]
    more = [os.path.relpath(f.path, folder) for f in failures[1:]]
    extra = ""
    if more:
        extra = f"; {len(more)} more unreadable file(s) in {folder}: " + ", ".join(more[:5]) \
            + (", ..." if len(more) > 5 else "")
    return InputFileError(first.path, f"{first.problem}{extra}")


def scan_dicom(path: PathLike, failures: Optional[List[InputFileError]] = None) -> List[DicomFrame]:
    """All DICOM image frames of a file or of a folder (recursively; hidden files ignored).

    A broken image file raises one :class:`InputFileError` naming it (and the other broken files); with a
    ``failures`` list, their errors are appended to it instead and the readable frames returned."""
    path = Path(path)
    if path.is_file():
        frame = read_frame(path)
        if frame is None:
            raise InputFileError(path, "DICOM file has no image")
        return [frame]
    folder = require_dir(path)
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    frames: List[DicomFrame] = []
    errors: List[InputFileError] = []
    for file in files:
        try:
            frame = read_frame(file, skip_non_dicom=True)
        except InputFileError as error:
            errors.append(error)
            continue
        if frame is not None:
            frames.append(frame)
    if errors:
        if failures is None:
            raise _unreadable(errors, folder)
        failures.extend(errors)
    if not frames:
        if errors:
            raise _unreadable(errors, folder)
        raise InputFileError(folder, "no DICOM image files found")
    return frames


__all__ = ["DicomFrame", "frame_ijk_to_ras", "read_frame", "scan_dicom"]
