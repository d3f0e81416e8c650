"""Consistency of a DICOM cine folder: one subject, and every slice with its full frame count.

- One subject per folder: all images must share one PatientID, one StudyInstanceUID and one
  FrameOfReferenceUID (empty values are ignored). Two patients' series in one folder are refused with
  an :class:`InputFileError` naming one file of each (:func:`check_one_subject`).
- Complete slices: every 2D+t slice must have the frame count of the study (the count most slices
  have). A slice with missing frames is a :class:`CineStudyError` naming its files, unless the caller
  asks ``drop_incomplete=True``: then the slice is dropped and the drop *reported*
  (:class:`DroppedFiles`, stored by the reader in ``study.metadata["dropped"]``, logged as a warning,
  and printable with :func:`format_dropped`). Unreadable files are reported the same way.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

from ..errors import CineStudyError, InputFileError
from .dicom_scan import DicomFrame

LOG = logging.getLogger(__name__)
_IDENTITY = (("patient_id", "PatientID"), ("study_uid", "StudyInstanceUID"),
             ("frame_of_reference_uid", "FrameOfReferenceUID"))


@dataclass
class DroppedFiles:
    """Files a reader left out on request (``drop_incomplete``), and why."""

    files: List[str]
    reason: str

    def to_dict(self) -> Dict:
        return asdict(self)


def check_one_subject(frames: Sequence[DicomFrame], folder: Path) -> None:
    """Refuse frames of more than one PatientID / StudyInstanceUID / FrameOfReferenceUID."""
    for attribute, tag in _IDENTITY:
        first: Dict[str, Path] = {}
        for frame in frames:
            value = getattr(frame, attribute)
            if value and value not in first:
                first[value] = frame.path
        if len(first) > 1:
            (a, path_a), (b, path_b) = list(first.items())[:2]
            raise InputFileError(folder, f"images of more than one subject: {tag} {a!r} in {path_a} but {b!r} in "
                                         f"{path_b} ({len(first)} different values); put each subject's "
                                         "series in its own folder")


def _names(group: Sequence[DicomFrame], limit: int = 4) -> str:
    names = [f.path.name for f in group]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} files)" if len(names) > limit else "")


def complete_groups(groups: List[List[DicomFrame]], folder: Path, drop_incomplete: bool = False
                    ) -> Tuple[List[List[DicomFrame]], List[DroppedFiles]]:
    """Slices with the study's frame count (the most common count; ties: the larger). A slice with fewer
    frames raises :class:`CineStudyError` naming its files, or with ``drop_incomplete`` is dropped and
    reported; a slice with more frames (duplicates) is always an error."""
    counts = Counter(len(g) for g in groups)
    expected = max(counts.items(), key=lambda item: (item[1], item[0]))[0]
    kept: List[List[DicomFrame]] = []
    dropped: List[DroppedFiles] = []
    for group in groups:
        where = f"slice at {np.round(group[0].position_lps, 2).tolist()} (LPS mm)"
        if len(group) == expected:
            kept.append(group)
            continue
        problem = f"{len(group)} time frames, expected {expected}: {where}, files {_names(group)}"
        if len(group) > expected or not drop_incomplete:
            hint = "" if len(group) > expected else " (drop_incomplete=True leaves such slices out)"
            raise CineStudyError(group[0].path, problem + hint)
        dropped.append(DroppedFiles([str(f.path) for f in group],
                                    f"incomplete slice: {len(group)} of {expected} time frames ({where})"))
    if not kept:
        raise CineStudyError(folder, "no complete slice left")
    return kept, dropped


def unreadable_dropped(failures: Sequence[InputFileError]) -> List[DroppedFiles]:
    """Reports of unreadable files left out (``drop_incomplete``)."""
    return [DroppedFiles([str(f.path)], f"unreadable: {f.problem}") for f in failures]


def log_dropped(dropped: Sequence[DroppedFiles], folder: Path) -> None:
    for item in dropped:
        LOG.warning("%s: dropped %d file(s) (%s): %s", folder, len(item.files), item.reason,
                    ", ".join(Path(f).name for f in item.files[:4]))


def format_dropped(dropped: Sequence[Dict]) -> List[str]:
    """Lines a CLI can print for ``study.metadata["dropped"]`` (dicts of :class:`DroppedFiles`)."""
    lines = []
    for item in dropped:
        files = [Path(f).name for f in item["files"]]
        shown = ", ".join(files[:4]) + (f", ... ({len(files)} files)" if len(files) > 4 else "")
        lines.append(f"dropped {len(files)} file(s): {item['reason']}: {shown}")
    return lines


__all__ = ["DroppedFiles", "check_one_subject", "complete_groups", "unreadable_dropped", "log_dropped",
           "format_dropped"]
