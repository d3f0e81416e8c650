"""A user's cohort: which studies, under which subject ids, in which layout and label convention, and
which of them train and which are held out (test).

Sources (:func:`find_studies`): a study folder (any layout of :mod:`.layouts`), a cohort root whose
sub-folders are studies (for DICOM: sub-folders of different patients / study UIDs; one study whose
series sit in sub-folders stays one study), a phantom subject folder (UK Biobank-style plus ``ground_truth/``), or a bare
label file (``layout == "labels"``: its convention must be given, see :mod:`.label_conventions`).

Subject ids come from the study *folder*, never from a file name that every study shares: a folder is
its own id (``.../1000001/`` -> ``1000001``, ``.../phantom003/`` -> ``phantom003``), and a file takes
its parent folder's name when its stem is a generic one (``.../1000001/labels.nii.gz`` -> ``1000001``),
else its stem. Duplicate ids are refused before anything is read, listing the paths.

A manifest (:func:`read_cohort_manifest`) is a CSV with a header or a JSON list of objects with
``subject`` (or ``subject_id``), ``path`` (or ``study``; relative to the manifest's folder) and
``split`` (``train`` or ``test``; default ``train``), optionally ``label_convention``.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

from ..errors import CineStudyError, InputFileError
from ._common import PathLike
from .label_conventions import LAYOUT_CONVENTIONS, check_convention

SPLITS = ("train", "test")
GENERIC_STEMS = frozenset({"labels", "label", "seg", "segmentation", "seg_sa", "sa", "mask", "gt", "labels_iso",
                           "image", "cine", "labelmap", "label_map", "seg_sa_ed", "seg_sa_es"})
"""File stems that name *what* a file is, not *whose* it is: such a file's subject is its folder."""
PHANTOM_LABELS = Path("ground_truth") / "labels_iso.nii.gz"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")


class CohortError(InputFileError):
    """A cohort (its folders, manifest or split) is inconsistent; the message names the paths."""


@dataclass(frozen=True)
class StudyEntry:
    """One study of a cohort.

    Attributes:
        subject_id: the id outputs and models use (from the study folder, see the module docstring).
        path: the study folder (or the bare label / stack file).
        layout: ``ukbb``, ``acdc``, ``mnms``, ``dicom``, ``stack``, ``labels`` (a bare label file) or
            ``ct`` (a folder of CT phases ``ct_ED.nii.gz``, ``ct_ES.nii.gz`` without a cine study), or
            ``ground_truth`` (a phantom subject folder with its ground truth only).
        label_convention: the convention its label files are in (None: unknown or no labels).
        split: ``train`` or ``test``.
        ground_truth: a phantom subject folder with ``ground_truth/labels_iso.nii.gz``.
    """

    subject_id: str
    path: Path
    layout: str
    label_convention: Optional[str] = None
    split: str = "train"
    ground_truth: bool = False

    def to_dict(self) -> Dict:
        record = asdict(self)
        record["path"] = str(self.path)
        return record


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def subject_id_for(path: PathLike) -> str:
    """The subject id of a study folder or file (module docstring)."""
    path = Path(path).absolute()
    if path.is_dir():
        return path.name
    stem = _stem(path)
    if stem.lower() in GENERIC_STEMS and path.parent.name:
        parent = path.parent
        if parent.name == "ground_truth" and parent.parent.name:  # phantom: <subject>/ground_truth/labels_iso
            parent = parent.parent
        return parent.name
    return stem


def _is_label_file(path: Path) -> bool:
    from .nifti import is_nifti_path

    return path.is_file() and (is_nifti_path(path) or path.name.lower().endswith((".nrrd", ".nhdr", ".mha", ".mhd")))


def entry_for(path: PathLike, label_convention: Optional[str] = None, bare_files_are_labels: bool = False,
              subject_id: Optional[str] = None, split: str = "train") -> StudyEntry:
    """The entry of one study folder or file. ``bare_files_are_labels``: a file is a label map (the
    atlas' ``--labels``), else a SAX stack study. ``label_convention`` applies to bare label files and
    stacks only; a layout's own convention wins for study folders (and a contradiction is refused)."""
    from .layouts import detect_layout

    path = Path(path)
    if not path.exists():
        raise CineStudyError(path, "does not exist")
    sid = subject_id or subject_id_for(path)
    if path.is_file() and bare_files_are_labels:
        return StudyEntry(sid, path, "labels", label_convention, split)
    ground_truth = path.is_dir() and (path / PHANTOM_LABELS).is_file()
    try:
        layout = detect_layout(path)
    except CineStudyError:
        if ground_truth:  # a phantom subject folder reduced to its ground truth
            return StudyEntry(sid, path, "ground_truth", "product", split, True)
        if not (path.is_dir() and all((path / f"ct_{tag}.nii.gz").is_file() for tag in ("ED", "ES"))):
            raise
        layout = "ct"  # CT phases only (ct_ED/ct_ES.nii.gz): the CT motion model's input
    convention = LAYOUT_CONVENTIONS.get(layout)
    if layout == "ukbb":
        from .layout_common import read_json
        from .label_conventions import SIDECAR_KEY

        convention = check_convention(read_json(path / "study.json").get(SIDECAR_KEY, "product"), path / "study.json")
    if convention is not None and label_convention is not None and label_convention != convention:
        raise CohortError(path, f"a {layout} study's labels are in the {convention} convention; "
                                f"--label-convention {label_convention} contradicts it")
    return StudyEntry(sid, path, layout, convention or label_convention, split, ground_truth)


def _first_dicom_study(folder: Path, limit: int = 200) -> Optional[str]:
    """``PatientID/StudyInstanceUID`` of the first DICOM file under ``folder`` (headers only), or None."""
    import pydicom

    for count, path in enumerate(sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))):
        if count >= limit:
            break
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True, specific_tags=["PatientID", "StudyInstanceUID"])
        except Exception:  # noqa: BLE001 - not a DICOM file: look further
            continue
        return f"{getattr(ds, 'PatientID', '')}/{getattr(ds, 'StudyInstanceUID', '')}"
    return None


def _is_dicom_cohort_root(path: Path) -> bool:
    """A folder detected as DICOM whose files all lie in sub-folders of different studies (patient or
    study UID): a cohort root, not one study whose series sit in sub-folders."""
    if any(p.is_file() and not p.name.startswith(".") for p in path.iterdir()):
        return False
    studies = {_first_dicom_study(child) for child in path.iterdir() if child.is_dir() and not child.name.startswith(".")}
    studies.discard(None)
    return len(studies) > 1


def find_studies(paths: Sequence[PathLike], label_convention: Optional[str] = None,
                 bare_files_are_labels: bool = False) -> List[StudyEntry]:
    """Entries of every study under ``paths``: each a study folder / file, or a cohort root whose
    sub-folders (not starting with ``.``) are studies. A root without any study raises
    :class:`CineStudyError`; sub-folders with no recognised layout are skipped."""
    entries: List[StudyEntry] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise CineStudyError(path, "does not exist")
        try:
            entry = entry_for(path, label_convention, bare_files_are_labels)
            if not (entry.layout == "dicom" and _is_dicom_cohort_root(path)):
                entries.append(entry)
                continue
        except CohortError:
            raise
        except CineStudyError:
            if not path.is_dir():
                raise
        found = []
        for child in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                found.append(entry_for(child, label_convention, bare_files_are_labels))
            except CohortError:
                raise
            except CineStudyError:
                continue
        if not found:
            raise CineStudyError(path, "neither a study folder (UK Biobank-style, ACDC, M&Ms, DICOM, phantom) nor a "
                                       "folder of study folders")
        entries.extend(found)
    check_unique_ids(entries)
    return entries


def check_unique_ids(entries: Iterable[StudyEntry]) -> None:
    """Refuse duplicate or unsafe subject ids, listing the paths that share an id."""
    by_id: Dict[str, List[str]] = {}
    for entry in entries:
        if not _SAFE_ID.match(entry.subject_id):
            raise CohortError(entry.path, f"subject id {entry.subject_id!r} is not a safe name (letters, digits, "
                                          "'-', '_', '.')")
        by_id.setdefault(entry.subject_id, []).append(str(entry.path))
    duplicates = {sid: paths for sid, paths in by_id.items() if len(paths) > 1}
    if duplicates:
        lines = "; ".join(f"{sid!r}: {', '.join(paths)}" for sid, paths in sorted(duplicates.items()))
        raise CohortError(None, f"duplicate subject ids (ids come from the study folders; give each study its own "
                                f"folder, or a manifest with a subject column): {lines}")


def _manifest_rows(path: Path) -> List[Dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            value = json.loads(text)
        except ValueError as error:
            raise CohortError(path, f"invalid JSON ({error})") from None
        if isinstance(value, dict):
            value = value.get("studies", value.get("subjects"))
        if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
            raise CohortError(path, "a JSON manifest is a list of objects {subject, path, split} "
                                    "(or {\"studies\": [...]})")
        return [{str(k): "" if v is None else str(v) for k, v in row.items()} for row in value]
    rows = list(csv.DictReader(text.splitlines()))
    return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in rows]


def _column(row: Dict[str, str], names: Sequence[str]) -> str:
    for name in names:
        if row.get(name):
            return row[name]
    return ""


def read_cohort_manifest(path: PathLike, label_convention: Optional[str] = None,
                         bare_files_are_labels: bool = False) -> List[StudyEntry]:
    """Entries of a manifest (module docstring), in file order; problems name the manifest and the row."""
    path = Path(path)
    if not path.is_file():
        raise CohortError(path, "manifest does not exist")
    try:
        rows = _manifest_rows(path)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CohortError(path, f"unreadable manifest ({error})") from None
    if not rows:
        raise CohortError(path, "manifest lists no study")
    entries = []
    for number, row in enumerate(rows, 1):
        where = f"row {number}"
        subject, study = _column(row, ("subject", "subject_id")), _column(row, ("path", "study", "study_path"))
        if not study:
            raise CohortError(path, f"{where}: no 'path' (or 'study') value; columns are {sorted(row)}")
        split = (row.get("split") or "train").lower()
        if split not in SPLITS:
            raise CohortError(path, f"{where}: split {split!r}; expected one of {', '.join(SPLITS)}")
        convention = row.get("label_convention") or label_convention
        if convention:
            check_convention(convention, path)
        study_path = Path(study) if Path(study).is_absolute() else path.parent / study
        if not study_path.exists():
            raise CohortError(path, f"{where}: study {study_path} does not exist")
        try:
            entry = entry_for(study_path, convention or None, bare_files_are_labels, subject or None, split)
        except CineStudyError as error:
            raise CohortError(path, f"{where}: {error}") from None
        entries.append(entry)
    check_unique_ids(entries)
    return entries


def apply_split(entries: Sequence[StudyEntry], test_ids: Optional[Sequence[str]] = None,
                train_fraction: Optional[float] = None) -> List[StudyEntry]:
    """``entries`` with their split set: ``test_ids`` held out (each must exist), or the first
    ``ceil(train_fraction * n)`` subjects in id order train and the rest are held out."""
    entries = list(entries)
    if test_ids:
        known = {e.subject_id for e in entries}
        missing = [sid for sid in test_ids if sid not in known]
        if missing:
            raise CohortError(None, f"--test subjects {missing} are not in the cohort (subjects: {sorted(known)})")
        entries = [replace(e, split="test" if e.subject_id in set(test_ids) else "train") for e in entries]
    if train_fraction is not None:
        if not 0 < train_fraction <= 1:
            raise CohortError(None, f"--train-split must lie in (0, 1], got {train_fraction}")
        order = sorted(e.subject_id for e in entries)
        n_train = max(1, math.ceil(train_fraction * len(order)))
        train = set(order[:n_train])
        entries = [replace(e, split="train" if e.subject_id in train else "test") for e in entries]
    if not any(e.split == "train" for e in entries):
        raise CohortError(None, "no training subject left after the split")
    return entries


def write_cohort_record(path: PathLike, entries: Sequence[StudyEntry], extra: Optional[Dict] = None) -> Path:
    """Write the split a model was trained with (JSON, atomic): every entry with its split."""
    from .atomic import atomic_write_text

    record = {"format": "CardiacMotionAtlas cohort record", "version": 1,
              "train": [e.subject_id for e in entries if e.split == "train"],
              "test": [e.subject_id for e in entries if e.split == "test"],
              "studies": [e.to_dict() for e in entries], **(extra or {})}
    atomic_write_text(Path(path), json.dumps(record, indent=1) + "\n")
    return Path(path)


__all__ = ["CohortError", "GENERIC_STEMS", "SPLITS", "StudyEntry", "apply_split", "check_unique_ids", "entry_for",
           "find_studies", "read_cohort_manifest", "subject_id_for", "write_cohort_record"]
