"""Cine and volume DICOM (pydicom) -> :class:`CineStudy` / :class:`ImageSequence`, and the writers.

Cine: files are grouped by (SeriesInstanceUID, ImagePositionPatient, ImageOrientationPatient); each group
is one 2D+t slice sorted by TriggerTime (fallback InstanceNumber), an ``(t, 1, y, x)`` sequence with its
own RAS geometry (i along the row cosine, j along the column cosine, k = row x column with the slice
thickness as spacing). Phases are ``trigger_time / RR`` (RR = NominalInterval, else the last trigger time
plus one frame step), else ``index / n``.

Views come from SeriesDescription keywords (``sa``/``sax``/``short`` -> SAX; ``2ch``, ``3ch``, ``4ch``,
``lax``/``long`` -> 4CH) or else from orientation: slices parallel (within 20 deg) to the stack normal (the
orientation shared by most slices) are SAX; other orientations become 4CH, 2CH, 3CH in order of
appearance (a guess, recorded as ``metadata["view_from"] = "orientation"``). SAX slices are ordered
base -> apex assuming the apex points left-anterior-inferior (RAS ``(-1, 1, -1)``), as in standard
cardiac imaging.

A folder holds one subject (one PatientID, StudyInstanceUID and FrameOfReferenceUID) and every slice has
the study's frame count; a truncated image file is an error naming it. ``drop_incomplete=True`` leaves
unreadable files and incomplete slices out and reports them (:mod:`.dicom_consistency`).

Only uncompressed or pydicom-decodable transfer syntaxes are supported; multi-frame (enhanced) files are
refused with a clear error.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..data.cine_study import CineSlice, CineStudy
from ..data.image_sequence import ImageSequence
from ..errors import CineStudyError, InputFileError
from ._common import PathLike
from .dicom_consistency import check_one_subject, complete_groups, log_dropped, unreadable_dropped
from .dicom_scan import DicomFrame, frame_ijk_to_ras, scan_dicom
from .dicom_write import write_dicom_cine, write_dicom_series

_APEX_DIRECTION_RAS = np.array([-1.0, 1.0, -1.0]) / np.sqrt(3.0)
_LAX_ORDER = ("4CH", "2CH", "3CH")


def view_from_description(text: str) -> Optional[str]:
    """View name from a SeriesDescription (case-insensitive keywords), or None if none matches."""
    text = text.lower()
    compact = "".join(ch for ch in text if ch.isalnum())
    for view, keys in (("2CH", ("2ch", "2chamber", "twochamber", "vla")),
                       ("3CH", ("3ch", "3chamber", "threechamber", "lvot")),
                       ("4CH", ("4ch", "4chamber", "fourchamber", "hla"))):
        if any(key in compact for key in keys):
            return view
    tokens = set("".join(ch if ch.isalnum() else " " for ch in text).split())
    if tokens & {"sa", "sax", "short", "shortaxis", "shortaxis"} or "shortax" in compact:
        return "SAX"
    if tokens & {"la", "lax", "long", "longaxis"} or "longax" in compact:
        return "4CH"
    return None


# --------------------------------------------------------------------------- cine


def _group_frames(frames: List[DicomFrame]) -> List[List[DicomFrame]]:
    groups: Dict[Tuple, List[DicomFrame]] = {}
    for frame in frames:
        key = (frame.series_uid,
               tuple(np.round(frame.position_lps, 2).tolist()),
               tuple(np.round(np.concatenate([frame.row_cosine_lps, frame.col_cosine_lps]), 3).tolist()))
        groups.setdefault(key, []).append(frame)
    ordered = []
    for group in groups.values():
        if all(f.trigger_ms is not None for f in group):
            group.sort(key=lambda f: (f.trigger_ms, f.instance, str(f.path)))
        else:
            group.sort(key=lambda f: (f.instance, str(f.path)))
        ordered.append(group)
    ordered.sort(key=lambda g: str(g[0].path))
    return ordered


def _check_group(group: List[DicomFrame]) -> None:
    ref = group[0]
    for frame in group[1:]:
        if frame.shape != ref.shape or not np.allclose(frame.spacing_ij, ref.spacing_ij, atol=1e-4):
            raise CineStudyError(frame.path, f"image size {frame.shape} / spacing {frame.spacing_ij.tolist()} "
                                             f"differs from {ref.path.name} ({ref.shape} / {ref.spacing_ij.tolist()})")


def _timing(group: List[DicomFrame]) -> Tuple[np.ndarray, Optional[np.ndarray], Optional[float]]:
    """(phases, trigger times s, RR s) of one sorted group."""
    n = len(group)
    index_phases = np.arange(n, dtype=float) / n
    if not all(f.trigger_ms is not None for f in group):
        return index_phases, None, None
    times = np.array([f.trigger_ms for f in group], dtype=float) / 1000.0
    nominal = [f.nominal_interval_ms for f in group if f.nominal_interval_ms and f.nominal_interval_ms > 0]
    rr = max(nominal) / 1000.0 if nominal else None
    if rr is None or rr <= times.max():
        steps = np.diff(times)
        rr = times.max() + float(np.median(steps)) if n >= 2 and np.median(steps) > 0 else None
    if rr is None or rr <= 0:
        return index_phases, times, None
    phases = np.mod(times / rr, 1.0)
    return phases, times, rr


def _slice_image(group: List[DicomFrame], view: str) -> ImageSequence:
    ref = group[0]
    phases, times, rr = _timing(group)
    array = np.stack([f.pixels for f in group])[:, None]
    return ImageSequence(
        array=array,
        ijk_to_ras=frame_ijk_to_ras(ref),
        phases=phases,
        cycle_length_s=rr,
        trigger_times_s=times,
        name=ref.description or view,
        metadata={"source": str(ref.path.parent), "series_uid": ref.series_uid,
                  "series_description": ref.description, "files": [str(f.path) for f in group]},
    )


def _cluster_normals(normals: List[np.ndarray], cos_tol: float = np.cos(np.radians(10))) -> List[int]:
    centres: List[np.ndarray] = []
    labels = []
    for normal in normals:
        for index, centre in enumerate(centres):
            if abs(float(normal @ centre)) >= cos_tol:
                labels.append(index)
                break
        else:
            centres.append(normal)
            labels.append(len(centres) - 1)
    return labels


def _assign_views(groups: List[List[DicomFrame]]) -> Tuple[List[str], List[str], np.ndarray]:
    """(view per group, how it was decided, stack normal in RAS)."""
    normals = [np.diag([-1.0, -1.0, 1.0]) @ g[0].normal_lps for g in groups]
    described = [view_from_description(g[0].description) for g in groups]
    clusters = _cluster_normals(normals)
    sax_clusters = [clusters[i] for i, v in enumerate(described) if v == "SAX"]
    pool = sax_clusters if sax_clusters else clusters
    stack_cluster = Counter(pool).most_common(1)[0][0]
    stack_normal = normals[clusters.index(stack_cluster)]
    views, sources = [], []
    lax_clusters: List[int] = []
    for index, view in enumerate(described):
        if view is not None:
            views.append(view)
            sources.append("description")
            continue
        if abs(float(normals[index] @ stack_normal)) >= np.cos(np.radians(20)):
            views.append("SAX")
        else:
            if clusters[index] not in lax_clusters:
                lax_clusters.append(clusters[index])
            views.append(_LAX_ORDER[lax_clusters.index(clusters[index]) % len(_LAX_ORDER)])
        sources.append("orientation")
    return views, sources, stack_normal


def read_dicom_cine(path: PathLike, subject_id: Optional[str] = None, drop_incomplete: bool = False) -> CineStudy:
    """Read a folder of single-frame cine DICOM files of one subject as a :class:`CineStudy` (RAS mm).

    Every file must be readable and every slice must have the study's frame count; otherwise
    :class:`InputFileError` / :class:`CineStudyError` names the files. With ``drop_incomplete=True``
    unreadable files and incomplete slices are left out instead, and reported: logged as warnings and
    listed in ``study.metadata["dropped"]`` (dicts ``{"files", "reason"}``, printable with
    :func:`~.dicom_consistency.format_dropped`). Images of more than one PatientID / StudyInstanceUID /
    FrameOfReferenceUID are refused (:func:`~.dicom_consistency.check_one_subject`)."""
    folder = Path(path)
    failures: List[InputFileError] = []
    frames = scan_dicom(folder, failures if drop_incomplete else None)
    check_one_subject(frames, folder)
    groups = _group_frames(frames)
    for group in groups:
        _check_group(group)
    groups, dropped = complete_groups(groups, folder, drop_incomplete)
    dropped = unreadable_dropped(failures) + dropped
    log_dropped(dropped, folder)
    views, sources, stack_normal = _assign_views(groups)
    apex = stack_normal if float(stack_normal @ _APEX_DIRECTION_RAS) >= 0 else -stack_normal
    slices: List[CineSlice] = []
    entries = []
    for group, view, source in zip(groups, views, sources):
        image = _slice_image(group, view)
        image.metadata["view_from"] = source
        centre = image.ijk_to_ras[:3, :3] @ (np.array(image.array.shape[:0:-1], dtype=float) - 1) / 2 \
            + image.ijk_to_ras[:3, 3]
        order = float(centre @ apex) if view == "SAX" else float(centre @ image.direction[:, 2])
        entries.append(((0 if view == "SAX" else 1 + ("2CH", "3CH", "4CH").index(view)), order, view, image))
    entries.sort(key=lambda e: (e[0], e[1]))
    per_view: Counter = Counter()
    for _, _, view, image in entries:
        slices.append(CineSlice(image=image, view=view, slice_index=per_view[view]))
        per_view[view] += 1
    cycles = [s.image.cycle_length_s for s in slices if s.image.cycle_length_s]
    return CineStudy(
        subject_id=subject_id or frames[0].patient_id or folder.name,
        slices=slices,
        ed_frame=0,
        cycle_length_s=float(np.median(cycles)) if cycles else None,
        metadata={"source": str(folder), "layout": "dicom", "dropped": [d.to_dict() for d in dropped]},
    )


# --------------------------------------------------------------------------- 3D series


def read_dicom_series(path: PathLike, series_uid: Optional[str] = None) -> ImageSequence:
    """Read a plain 3D DICOM series (a file or a folder; the series ``series_uid`` or else the one with
    most files) as a one-frame :class:`ImageSequence` (RAS mm). Slices must be parallel, one per
    position and equally spaced (the k spacing is their distance; one slice: its thickness)."""
    path = Path(path)
    frames = scan_dicom(path)
    check_one_subject(frames, path)
    by_series: Dict[str, List[DicomFrame]] = {}
    for frame in frames:
        by_series.setdefault(frame.series_uid, []).append(frame)
    if series_uid is not None:
        if series_uid not in by_series:
            raise InputFileError(path, f"no series with SeriesInstanceUID {series_uid}")
        series = by_series[series_uid]
    else:
        series = max(by_series.values(), key=len)
    ref = series[0]
    normal = ref.normal_lps
    for frame in series[1:]:
        if (np.abs(frame.row_cosine_lps - ref.row_cosine_lps).max() > 1e-3
                or np.abs(frame.col_cosine_lps - ref.col_cosine_lps).max() > 1e-3):
            raise InputFileError(frame.path, "slice orientation differs within the series")
        if frame.shape != ref.shape or not np.allclose(frame.spacing_ij, ref.spacing_ij, atol=1e-4):
            raise InputFileError(frame.path, "image size or pixel spacing differs within the series")
    series = sorted(series, key=lambda f: float(f.position_lps @ normal))
    positions = np.array([float(f.position_lps @ normal) for f in series])
    k_spacing = ref.thickness
    if len(series) > 1:
        gaps = np.diff(positions)
        if gaps.min() < 1e-3:
            duplicate = series[int(np.argmin(gaps)) + 1]
            raise InputFileError(duplicate.path, "several files share one slice position: this looks like a "
                                                 "cine series (use read_dicom_cine)")
        if not np.allclose(gaps, gaps.mean(), rtol=1e-2, atol=1e-2):
            raise InputFileError(path, f"slices are not equally spaced (gaps {gaps.min():.3f}..{gaps.max():.3f} mm)")
        k_spacing = float(gaps.mean())
        in_plane = series[-1].position_lps - ref.position_lps - normal * (positions[-1] - positions[0])
        if np.linalg.norm(in_plane) > 1e-2 * max(1.0, positions[-1] - positions[0]):
            raise InputFileError(path, "slice positions are not along the slice normal (sheared stack)")
    array = np.stack([f.pixels for f in series])[None]
    first = series[0]
    return ImageSequence(
        array=array,
        ijk_to_ras=frame_ijk_to_ras(first, k_spacing=k_spacing, k_direction_lps=normal),
        name=first.description or path.name,
        metadata={"source": str(path), "series_uid": first.series_uid, "files": [str(f.path) for f in series]},
    )


__all__ = ["view_from_description", "read_dicom_cine", "read_dicom_series", "write_dicom_cine",
           "write_dicom_series"]
