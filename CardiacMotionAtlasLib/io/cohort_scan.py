"""Pre-flight of a cohort: what every study holds (frames, SAX slices, labelled frames, ED/ES, layout,
label convention), read from headers and metadata only, and its input problems, reported all at once
BEFORE any heavy preprocessing.

Headers: NIfTI headers through nibabel's lazy proxy (no voxel data), ``study.json``, ``Info.cfg``, the
ground-truth file names. Voxel data is read only where the labelled frames are not written anywhere
else (a 4D ``seg_sa.nii.gz`` without a sidecar, an M&Ms ``_sa_gt``; label maps are small). DICOM
folders and single stacks are read whole (their headers are the data's).

Problems found: unreadable or missing files, label maps whose frame count or grid differ from the
image, an ED/ES outside the frames, an unknown convention of a bare label file, and what a method needs
and a study lacks (``needs``: ``labels`` = some labelled frame; ``ed_es_labels`` = labels at ED and ES;
``es`` = a known ES frame; ``ct`` = ``ct_ED``/``ct_ES`` volumes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import CardiacMotionAtlasError
from ._common import reading
from .cohort import StudyEntry
from .geometry_checks import check_plausible_geometry
from .label_conventions import convention_of_label_file
from .nifti import read_nifti_data

NEEDS = ("labels", "ed_es_labels", "es", "ct")
_GT = re.compile(r"^(?P<patient>.+)_frame(?P<frame>\d+)_gt\.nii(\.gz)?$", re.IGNORECASE)


@dataclass
class StudyScan:
    """What the pre-flight found for one study (frames are 0-based indices)."""

    entry: StudyEntry
    n_frames: Optional[int] = None
    n_slices: Optional[int] = None
    labelled_frames: List[int] = field(default_factory=list)
    ed_frame: Optional[int] = None
    es_frame: Optional[int] = None
    has_ct: bool = False
    problems: List[str] = field(default_factory=list)
    label_files: List[Path] = field(default_factory=list)
    convention: Optional[str] = None


class _Problem(Exception):
    def __init__(self, path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def _header(path: Path) -> Tuple[Tuple[int, int, int, int], np.ndarray]:
    """``((t, z, y, x), IJK->RAS)`` of a NIfTI file from its header alone."""
    import nibabel as nib

    if not path.is_file():
        raise _Problem(path, "missing")
    with reading(path):
        image = nib.load(str(path))
        shape = tuple(int(s) for s in image.header.get_data_shape())
        affine = np.asarray(image.affine, float)
        check_plausible_geometry(affine, shape[:3], path)
    while len(shape) > 4 and shape[-1] == 1:
        shape = shape[:-1]
    if not 3 <= len(shape) <= 4:
        raise _Problem(path, f"{len(shape)}-D image {shape}; expected 3D or 4D")
    x, y, z = shape[:3]
    t = shape[3] if len(shape) == 4 else 1
    return (t, z, y, x), affine


def _cine_header(path: Path, layout: str) -> Tuple[Tuple[int, int, int, int], np.ndarray]:
    """:func:`_header` of a layout's cine, which must have several frames (a 3D file is not a cine)."""
    header = _header(path)
    if header[0][0] < 2:
        raise _Problem(path, f"3D image (one time frame); the {layout} layout needs a 4D cine (x, y, z, t)")
    return header


def _labelled_from_data(path: Path) -> List[int]:
    data = read_nifti_data(path)
    data = data.reshape(data.shape[:3] + (-1,))
    return [int(t) for t in range(data.shape[3]) if np.any(data[..., t])]


def _same_grid(image: Tuple, other: Tuple, path: Path, frames: Optional[int]) -> None:
    (shape, affine), (other_shape, other_affine) = image, other
    if other_shape[1:] != shape[1:]:
        raise _Problem(path, f"label grid {other_shape[1:]} (z, y, x) differs from the image {shape[1:]}")
    if not np.allclose(other_affine, affine, atol=1e-3):
        raise _Problem(path, "label geometry differs from the image geometry")
    if frames is not None and other_shape[0] != frames:
        raise _Problem(path, f"{other_shape[0]} label frames, the image has {frames} (inconsistent frames)")


def _frame(value, n: int, path: Path, what: str, one_based: bool = False) -> Optional[int]:
    if value is None or value == "":
        return None
    try:
        index = int(float(value)) - (1 if one_based else 0)
    except (TypeError, ValueError):
        raise _Problem(path, f"{what} {value!r} is not a frame number") from None
    if not 0 <= index < n:
        raise _Problem(path, f"{what} {value} outside the {n} frames" + (" (1-based)" if one_based else ""))
    return index


def _scan_ukbb(scan: StudyScan) -> None:
    from .layout_common import read_json

    folder = scan.entry.path
    image = _cine_header(folder / "sa.nii.gz", "UK Biobank")
    (n, nz, _, _), _ = image
    scan.n_frames, scan.n_slices = n, nz
    try:
        sidecar = read_json(folder / "study.json")
    except CardiacMotionAtlasError as error:
        raise _Problem(folder / "study.json", str(error).split(": ", 1)[-1]) from None
    scan.ed_frame = _frame(sidecar.get("ed_frame"), n, folder / "study.json", "ed_frame") or 0
    scan.es_frame = _frame(sidecar.get("es_frame"), n, folder / "study.json", "es_frame")
    stored = (sidecar.get("labelled_frames") or {}).get("sa") if isinstance(sidecar.get("labelled_frames"), dict) else None
    full = folder / "seg_sa.nii.gz"
    if full.is_file():
        _same_grid(image, _header(full), full, n)
        scan.label_files.append(full)
        scan.labelled_frames = sorted(int(f) for f in stored) if stored is not None else _labelled_from_data(full)
    else:
        for tag, index in (("ED", scan.ed_frame), ("ES", scan.es_frame)):
            path = folder / f"seg_sa_{tag}.nii.gz"
            if path.is_file():
                _same_grid(image, _header(path), path, 1)
                if index is None:
                    raise _Problem(path, f"{tag} labels but the {tag} frame is unknown (es_frame in study.json)")
                scan.labelled_frames.append(index)
                scan.label_files.append(path)
    scan.has_ct = (folder / "ct_ED.nii.gz").is_file() and (folder / "ct_ES.nii.gz").is_file()
    if scan.entry.ground_truth:
        scan.label_files.append(folder / "ground_truth" / "labels_iso.nii.gz")
    if scan.entry.ground_truth and not scan.labelled_frames:
        scan.labelled_frames = list(range(_header(folder / "ground_truth" / "labels_iso.nii.gz")[0][0]))


def _scan_acdc(scan: StudyScan) -> None:
    from .layout_acdc import read_info_cfg

    folder = scan.entry.path
    found = sorted(folder.glob("*_4d.nii.gz")) or sorted(folder.glob("*_4d.nii"))
    if len(found) != 1:
        raise _Problem(folder, f"expected one <patient>_4d.nii.gz, found {[p.name for p in found]}")
    image = _cine_header(found[0], "ACDC")
    (n, nz, _, _), _ = image
    scan.n_frames, scan.n_slices = n, nz
    patient = found[0].name[: found[0].name.lower().rindex("_4d.nii")]
    info_path = folder / "Info.cfg"
    info = {}
    if info_path.is_file():
        try:
            info = read_info_cfg(info_path)
        except CardiacMotionAtlasError as error:
            raise _Problem(info_path, str(error).split(": ", 1)[-1]) from None
    if "NbFrame" in info and _frame(info["NbFrame"], 10**9, info_path, "NbFrame") != n:
        raise _Problem(found[0], f"{n} time frames, Info.cfg says NbFrame: {info['NbFrame']} (inconsistent frames)")
    scan.ed_frame = _frame(info.get("ED"), n, info_path, "ED", one_based=True) or 0
    scan.es_frame = _frame(info.get("ES"), n, info_path, "ES", one_based=True)
    for path in sorted(folder.iterdir()):
        match = _GT.match(path.name)
        if match and match.group("patient") == patient:
            frame = _frame(match.group("frame"), n, path, "frame", one_based=True)
            _same_grid(image, _header(path), path, 1)
            scan.labelled_frames.append(frame)
            scan.label_files.append(path)


def _scan_mnms(scan: StudyScan) -> None:
    folder = scan.entry.path
    found = sorted(folder.glob("*_sa.nii.gz"))
    if len(found) != 1:
        raise _Problem(folder, f"expected one <code>_sa.nii.gz, found {[p.name for p in found]}")
    image = _cine_header(found[0], "M&Ms")
    scan.n_frames, scan.n_slices = image[0][0], image[0][1]
    gt = found[0].with_name(found[0].name[: -len("_sa.nii.gz")] + "_sa_gt.nii.gz")
    if gt.is_file():
        _same_grid(image, _header(gt), gt, scan.n_frames)
        scan.labelled_frames = _labelled_from_data(gt)
        scan.label_files.append(gt)
    scan.ed_frame = scan.labelled_frames[0] if scan.labelled_frames else 0
    scan.es_frame = scan.labelled_frames[1] if len(scan.labelled_frames) == 2 else None


def _scan_labels(scan: StudyScan) -> None:
    path = scan.entry.path
    try:
        scan.convention = convention_of_label_file(path, scan.entry.label_convention)
    except CardiacMotionAtlasError as error:
        raise _Problem(path, str(error).split(": ", 1)[-1]) from None
    scan.label_files.append(path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        (n, nz, _, _), _ = _header(path)
        scan.n_frames, scan.n_slices = n, nz
        scan.labelled_frames = list(range(n))
    scan.ed_frame = 0


def _scan_by_reading(scan: StudyScan) -> None:
    from .layouts import read_study

    study = read_study(scan.entry.path, scan.entry.layout)
    scan.n_frames, scan.n_slices = study.n_frames, len(study.sax)
    scan.ed_frame, scan.es_frame = study.ed_frame, study.es_frame
    frames = set()
    for s in study.sax:
        if s.labels is not None:
            frames.update(s.labelled_frames or [])
    scan.labelled_frames = sorted(frames)


def _scan_ct(scan: StudyScan) -> None:
    folder = scan.entry.path
    ed = _header(folder / "ct_ED.nii.gz")
    _same_grid(ed, _header(folder / "ct_ES.nii.gz"), folder / "ct_ES.nii.gz", 1)
    scan.n_frames, scan.n_slices, scan.ed_frame, scan.es_frame, scan.has_ct = 2, ed[0][1], 0, 1, True


def _scan_ground_truth(scan: StudyScan) -> None:
    (n, nz, _, _), _ = _header(scan.entry.path / "ground_truth" / "labels_iso.nii.gz")
    scan.label_files.append(scan.entry.path / "ground_truth" / "labels_iso.nii.gz")
    scan.n_frames, scan.n_slices, scan.labelled_frames, scan.ed_frame = n, nz, list(range(n)), 0


_SCANNERS = {"ground_truth": _scan_ground_truth, "ukbb": _scan_ukbb, "acdc": _scan_acdc, "mnms": _scan_mnms,
             "labels": _scan_labels, "ct": _scan_ct}


def _check_label_maps(scan: StudyScan) -> None:
    """Read the label maps found (small) and refuse one that looks read in the wrong convention."""
    from .label_conventions import MEANINGS, check_label_anatomy, to_product

    convention = scan.convention or scan.entry.label_convention or "product"
    for path in scan.label_files:
        if not path.name.lower().endswith((".nii", ".nii.gz")):
            continue
        data = read_nifti_data(path)
        if data.size == 0 or not np.issubdtype(data.dtype, np.number):
            raise _Problem(path, "label map is empty or not numeric")
        values = np.unique(data)
        unknown = [v for v in values.tolist() if v not in (0, 1, 2, 3)]
        if unknown:
            shown = ", ".join(f"{v:g}" for v in unknown[:8]) + (", ..." if len(unknown) > 8 else "")
            raise _Problem(path, f"unknown label values [{shown}]: the {convention} convention has 0 background, "
                                 f"{MEANINGS[convention]}")
        volume = np.moveaxis(data.reshape(data.shape[:3] + (-1,)), (3, 2), (0, 1))  # (t, z, y, x)
        try:
            check_label_anatomy(to_product(volume, convention, path), path, convention)
        except CardiacMotionAtlasError as error:
            raise _Problem(path, str(error).split(": ", 1)[-1]) from None


def scan_study(entry: StudyEntry, needs: Iterable[str] = (), check_labels: bool = True) -> StudyScan:
    """Pre-flight of one study (module docstring); never raises for a bad study: its problems are listed.
    ``check_labels``: also read the label maps found and refuse one that looks read in the wrong
    convention (:func:`~CardiacMotionAtlasLib.io.label_conventions.check_label_anatomy`)."""
    scan = StudyScan(entry)
    try:
        _SCANNERS.get(entry.layout, _scan_by_reading)(scan)
        if check_labels:
            _check_label_maps(scan)
    except _Problem as problem:
        scan.problems.append(str(problem))
        return scan
    except CardiacMotionAtlasError as error:
        scan.problems.append(str(error))
        return scan
    except OSError as error:
        scan.problems.append(f"{entry.path}: unreadable ({error})")
        return scan
    scan.labelled_frames = sorted(set(scan.labelled_frames))
    needs = set(needs)
    if needs - set(NEEDS):
        raise ValueError(f"unknown needs {sorted(needs - set(NEEDS))}; expected some of {NEEDS}")
    if "labels" in needs and not scan.labelled_frames:
        scan.problems.append(f"{entry.path}: missing labels (no labelled frame)")
    if needs & {"es", "ed_es_labels"} and scan.es_frame is None:
        scan.problems.append(f"{entry.path}: the ES frame is unknown")
    if "ed_es_labels" in needs and scan.es_frame is not None:
        missing = [tag for tag, f in (("ED", scan.ed_frame), ("ES", scan.es_frame)) if f not in scan.labelled_frames]
        if missing:
            scan.problems.append(f"{entry.path}: missing labels at {' and '.join(missing)} "
                                 f"(labelled frames {scan.labelled_frames})")
    if "ct" in needs and not scan.has_ct:
        scan.problems.append(f"{entry.path}: no CT phases (ct_ED.nii.gz and ct_ES.nii.gz)")
    return scan


def scan_cohort(entries: Sequence[StudyEntry], needs: Iterable[str] = ()) -> List[StudyScan]:
    """Pre-flight of every study (see :func:`scan_study`)."""
    needs = tuple(needs)
    return [scan_study(entry, needs) for entry in entries]


def _frames_text(frames: Sequence[int], limit: int = 6) -> str:
    if not frames:
        return "-"
    text = ",".join(str(f) for f in frames[:limit])
    return text + (f",... ({len(frames)})" if len(frames) > limit else "")


def format_scan(scans: Sequence[StudyScan], title: str = "cohort") -> str:
    """A table of what was found (one row per study), then the problems."""
    n_train = sum(s.entry.split == "train" for s in scans)
    count = f"{len(scans)} stud{'y' if len(scans) == 1 else 'ies'}"
    lines = [f"{title}: {count}" + (f" ({n_train} train, {len(scans) - n_train} test)" if n_train < len(scans) or
                                    len(scans) > 1 else "")]
    header = ("subject", "split", "layout", "labels", "frames", "slices", "labelled frames", "ED", "ES", "path")
    rows = [header]
    for s in scans:
        convention = s.entry.label_convention or "-"
        layout = s.entry.layout + ("+gt" if s.entry.ground_truth else "")
        rows.append((s.entry.subject_id, s.entry.split, layout, convention, str(s.n_frames or "?"),
                     str(s.n_slices or "?"), _frames_text(s.labelled_frames),
                     "?" if s.ed_frame is None else str(s.ed_frame), "?" if s.es_frame is None else str(s.es_frame),
                     str(s.entry.path)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    problems = [p for s in scans for p in s.problems]
    if problems:
        lines.append(f"{len(problems)} input problem(s):")
        lines.extend(f"  {p}" for p in problems)
    return "\n".join(lines)


def raise_problems(scans: Sequence[StudyScan]) -> None:
    """Raise one :class:`~CardiacMotionAtlasLib.io.cohort.CohortError` listing every study's problems."""
    from .cohort import CohortError

    problems = [p for s in scans for p in s.problems]
    if problems:
        raise CohortError(None, f"{len(problems)} input problem(s), nothing was trained:\n  " + "\n  ".join(problems))


__all__ = ["NEEDS", "StudyScan", "format_scan", "raise_problems", "scan_cohort", "scan_study"]
