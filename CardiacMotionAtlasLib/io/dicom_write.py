"""Write cine slices and volumes as single-frame MR DICOM series (pydicom), one file per image, each
written atomically.

Geometry: ImagePositionPatient = LPS position of voxel (i, j) = (0, 0) of the slice, ImageOrientationPatient
= LPS unit i (row) and j (column) axes, PixelSpacing = (j spacing, i spacing), SliceThickness = k spacing.
The reader rebuilds k as row x column, so a left-handed IJK->RAS comes back with k flipped.
Pixels: integer-valued images within uint16/int16 are stored exactly; others are scaled to uint16 with
RescaleSlope/RescaleIntercept (error <= slope / 2). Timing: TriggerTime (ms) from the trigger times, else
``phase * RR``; NominalInterval = RR in whole ms (the cycle length, or 1 s when unknown), so phases come back
(to the ms rounding of RR).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, PYDICOM_IMPLEMENTATION_UID, generate_uid
from pydicom.valuerep import format_number_as_ds

from ..data.cine_study import CineSlice
from ..data.image_sequence import ImageSequence
from ..geometry.affine import RAS_FROM_LPS, decompose_ijk_to_ras
from .atomic import atomic_path
from ._common import PathLike, output_error


def _ds(value: float) -> str:
    return format_number_as_ds(float(value))


def _encode(array: np.ndarray, path: PathLike) -> Tuple[np.ndarray, float, float]:
    """(stored pixels uint16/int16, slope, intercept) for a whole series."""
    array = np.asarray(array, dtype=float)
    if not np.all(np.isfinite(array)):
        raise output_error(path, "image has NaN or infinite values")
    lo, hi = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if np.array_equal(array, np.rint(array)):
        if lo >= 0 and hi <= 65535:
            return array.astype(np.uint16), 1.0, 0.0
        if lo >= -32768 and hi <= 32767:
            return array.astype(np.int16), 1.0, 0.0
    slope = (hi - lo) / 65535.0 if hi > lo else 1.0
    slope = float(_ds(slope))
    intercept = float(_ds(lo))
    stored = np.clip(np.rint((array - intercept) / slope), 0, 65535).astype(np.uint16)
    return stored, slope, intercept


def _base_dataset(sop_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.Modality = "MR"
    return ds


def _write_images(
    images: Sequence[np.ndarray],
    positions_lps: Sequence[np.ndarray],
    ijk_to_ras: np.ndarray,
    folder: Path,
    prefix: str,
    extra: Sequence[dict],
    series: dict,
) -> List[Path]:
    """Write one file per 2D image (``(rows, cols)``) with shared geometry and series tags."""
    lps = RAS_FROM_LPS @ np.asarray(ijk_to_ras, dtype=float)
    _, direction, spacing = decompose_ijk_to_ras(lps)
    stored, slope, intercept = _encode(np.stack(images), folder)
    now = datetime.datetime.now()
    paths = []
    for index, (pixels, position, tags) in enumerate(zip(stored, positions_lps, extra)):
        ds = _base_dataset(generate_uid())
        ds.PatientName = series["patient_id"]
        ds.PatientID = series["patient_id"]
        ds.StudyInstanceUID = series["study_uid"]
        ds.SeriesInstanceUID = series["series_uid"]
        ds.FrameOfReferenceUID = series["frame_of_reference_uid"]
        ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = now.strftime("%H%M%S")
        ds.SeriesDescription = series["description"]
        ds.SeriesNumber = int(series["series_number"])
        ds.InstanceNumber = index + 1
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
        ds.PixelSpacing = [_ds(spacing[1]), _ds(spacing[0])]
        ds.SliceThickness = _ds(spacing[2])
        ds.SliceLocation = _ds(float(np.asarray(position) @ direction[:, 2]))
        for keyword, value in tags.items():
            setattr(ds, keyword, value)
        ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
        ds.RescaleSlope = _ds(slope)
        ds.RescaleIntercept = _ds(intercept)
        ds.PixelData = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
        path = folder / f"{prefix}_{index:04d}.dcm"
        with atomic_path(path) as tmp:
            ds.save_as(str(tmp), enforce_file_format=True)
        paths.append(path)
    return paths


def _series_tags(patient_id: str, study_uid: Optional[str], series_uid: Optional[str],
                 frame_of_reference_uid: Optional[str], series_number: int, description: str) -> dict:
    # default study and frame of reference: derived from the patient (and study), so that the slices of
    # one subject written by separate calls form one study (the cine reader refuses mixed subjects)
    study_uid = study_uid or generate_uid(entropy_srcs=["cma-study", patient_id])
    return {
        "patient_id": patient_id,
        "study_uid": study_uid,
        "series_uid": series_uid or generate_uid(),
        "frame_of_reference_uid": frame_of_reference_uid or generate_uid(entropy_srcs=["cma-for", study_uid]),
        "series_number": series_number,
        "description": description,
    }


def write_dicom_cine(
    cine_slice: CineSlice,
    folder: PathLike,
    prefix: Optional[str] = None,
    patient_id: str = "ANONYMOUS",
    study_uid: Optional[str] = None,
    series_uid: Optional[str] = None,
    frame_of_reference_uid: Optional[str] = None,
    series_number: int = 1,
    series_description: Optional[str] = None,
) -> List[Path]:
    """Write one cine slice as an MR DICOM series: one file ``<prefix>_<frame>.dcm`` per frame (default
    prefix ``<view>_<slice index>``), SeriesDescription ``cine <view>`` unless given. The study and frame
    of reference UIDs default to ones derived from ``patient_id`` (and the study UID), so the slices of one
    subject written by separate calls share them. Returns the paths written."""
    folder = Path(folder)
    image = cine_slice.image
    n = image.n_frames
    rr = float(image.cycle_length_s) if image.cycle_length_s else 1.0
    times = image.trigger_times_s if image.trigger_times_s is not None else np.asarray(image.phases) * rr
    if len(times) and float(np.max(times)) >= rr:
        rr = float(np.max(times)) + (float(np.median(np.diff(times))) if n > 1 else 1.0)
    extra = [{"TriggerTime": _ds(1000.0 * t), "NominalInterval": str(int(round(1000.0 * rr))),
              "CardiacNumberOfImages": n} for t in times]
    origin = (RAS_FROM_LPS @ image.ijk_to_ras)[:3, 3]
    series = _series_tags(patient_id, study_uid, series_uid, frame_of_reference_uid, series_number,
                          series_description or f"cine {cine_slice.view} {cine_slice.slice_index}")
    return _write_images([frame[0] for frame in image.array], [origin] * n, image.ijk_to_ras, folder,
                         prefix or f"{cine_slice.view.lower()}_{cine_slice.slice_index:02d}", extra, series)


def write_dicom_series(
    image: ImageSequence,
    folder: PathLike,
    frame: int = 0,
    prefix: str = "slice",
    patient_id: str = "ANONYMOUS",
    study_uid: Optional[str] = None,
    series_uid: Optional[str] = None,
    series_number: int = 1,
    series_description: Optional[str] = None,
) -> List[Path]:
    """Write frame ``frame`` of ``image`` as a plain 3D MR DICOM series, one file per k slice."""
    folder = Path(folder)
    lps = RAS_FROM_LPS @ image.ijk_to_ras
    volume = image.array[frame]
    positions = [lps[:3, 3] + k * lps[:3, 2] for k in range(volume.shape[0])]
    series = _series_tags(patient_id, study_uid, series_uid, None, series_number,
                          series_description or image.name or "volume")
    return _write_images(list(volume), positions, image.ijk_to_ras, folder, prefix,
                         [{} for _ in positions], series)


__all__ = ["write_dicom_cine", "write_dicom_series"]
