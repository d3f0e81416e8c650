"""ACDC and M&Ms study folders <-> :class:`CineStudy` (SAX stacks only).

ACDC (one folder per patient)::

    patient001_4d.nii.gz            cine SAX stack (x, y, z, t)
    patient001_frame01.nii.gz       the ED / ES frames (not needed: the 4D file holds them)
    patient001_frame01_gt.nii.gz    labels of frame 1 (1-based): ACDC 1 RV, 2 myocardium, 3 LV
    Info.cfg                        "ED: 1", "ES: 12", "NbFrame: 30", ... (1-based frames)

ACDC labels are mapped to the project's (1 LV blood pool, 2 LV myocardium, 3 RV blood pool) on read, and
back on write (:func:`write_acdc_study`), by :mod:`.label_conventions`.

M&Ms (one folder per subject)::

    A0S9V9_sa.nii.gz                cine SAX stack (x, y, z, t)
    A0S9V9_sa_gt.nii.gz             labels (x, y, z, t), 1 LV, 2 myocardium, 3 RV (the product's convention;
                                    source: the M&Ms challenge description, see :mod:`.label_conventions`),
                                    at ED and ES

M&Ms keeps ED/ES frame numbers in a dataset-wide CSV: pass them, otherwise the labelled frame with the
larger LV blood pool is ED and the other ES.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from ..data.cine_study import CineStudy
from ..data.image_sequence import ImageSequence
from ..errors import CineStudyError
from ._common import PathLike, reading, require_dir, require_file
from .label_conventions import to_product
from .layout_common import check_cine, check_frame_count, check_same_grid, labelled_frames_of, split_stack
from .nifti import read_nifti

ACDC_TO_PROJECT = np.array([0, 3, 2, 1], dtype=np.uint8)
"""Lookup table: ACDC label (0 bg, 1 RV, 2 myo, 3 LV) -> project label (0 bg, 1 LV, 2 myo, 3 RV)
(kept for callers; the readers use :func:`.label_conventions.to_product`)."""

_GT = re.compile(r"^(?P<patient>.+)_frame(?P<frame>\d+)_gt\.nii(\.gz)?$", re.IGNORECASE)


def read_info_cfg(path: PathLike) -> Dict[str, str]:
    """``key: value`` lines of an ACDC ``Info.cfg``."""
    path = require_file(path, CineStudyError)
    with reading(path, CineStudyError):
        text = path.read_text(encoding="utf-8")
    info = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise CineStudyError(path, f"line {number}: expected 'key: value', got {line.strip()[:60]!r}")
        key, value = line.split(":", 1)
        info[key.strip()] = value.strip()
    return info


def _info_frame(info: Dict[str, str], key: str, n: int, path: Path) -> Optional[int]:
    if key not in info:
        return None
    try:
        value = int(float(info[key]))
    except ValueError:
        raise CineStudyError(path, f"{key}: {info[key]!r} is not a frame number") from None
    if not 1 <= value <= n:
        raise CineStudyError(path, f"{key}: {value} outside 1..{n} (ACDC frames are 1-based)")
    return value - 1


def _single(folder: Path, pattern: str, what: str) -> Optional[Path]:
    matches = sorted(p for p in folder.glob(pattern) if not p.name.startswith("."))
    if len(matches) > 1:
        raise CineStudyError(folder, f"several {what} files: {[m.name for m in matches]}")
    return matches[0] if matches else None


def read_acdc_study(folder: PathLike, subject_id: Optional[str] = None) -> CineStudy:
    """Read an ACDC patient folder (module docstring) as a :class:`CineStudy` of SAX slices with the
    ground-truth labels (mapped to project labels) at their frames."""
    folder = require_dir(folder, CineStudyError)
    path_4d = _single(folder, "*_4d.nii.gz", "*_4d.nii.gz") or _single(folder, "*_4d.nii", "*_4d.nii")
    if path_4d is None:
        raise CineStudyError(folder / f"{folder.name}_4d.nii.gz", "missing: ACDC needs the cine <patient>_4d.nii.gz")
    patient = path_4d.name[: path_4d.name.lower().rindex("_4d.nii")]
    image = read_nifti(path_4d, name="SAX")
    check_cine(image, path_4d, "ACDC")
    n = image.n_frames
    info_path = folder / "Info.cfg"
    info = read_info_cfg(info_path) if info_path.exists() else {}
    if "NbFrame" in info:
        try:
            expected = int(float(info["NbFrame"]))
        except ValueError:
            raise CineStudyError(info_path, f"NbFrame: {info['NbFrame']!r} is not a number") from None
        check_frame_count(image, expected, path_4d)
    ed = _info_frame(info, "ED", n, info_path)
    es = _info_frame(info, "ES", n, info_path)
    labels = np.zeros(image.array.shape, dtype=np.uint8)
    frames: List[int] = []
    for gt_path in sorted(folder.iterdir()):
        match = _GT.match(gt_path.name)
        if not match or gt_path.name.startswith(".") or match.group("patient") != patient:
            continue
        frame = int(match.group("frame")) - 1
        if not 0 <= frame < n:
            raise CineStudyError(gt_path, f"frame {frame + 1} outside 1..{n} of {path_4d.name}")
        gt = read_nifti(gt_path, labels=True, allowed_labels=(0, 1, 2, 3), require_labels=True)
        check_frame_count(gt, 1, gt_path)
        check_same_grid(image, gt, gt_path, "ground truth")
        labels[frame] = to_product(gt.array[0], "acdc", gt_path)
        frames.append(frame)
    label_seq = ImageSequence(labels, image.ijk_to_ras, phases=image.phases, name="labels") if frames else None
    slices = split_stack(image, label_seq, sorted(frames) if frames else None, "SAX")
    return CineStudy(subject_id=subject_id or patient, slices=slices, ed_frame=ed if ed is not None else 0,
                     es_frame=es, metadata={"source": str(folder), "layout": "acdc", "info": info,
                                              "label_convention": "acdc"})


def read_mnms_study(folder: PathLike, ed_frame: Optional[int] = None, es_frame: Optional[int] = None,
                    subject_id: Optional[str] = None) -> CineStudy:
    """Read an M&Ms subject folder (module docstring); ``ed_frame``/``es_frame`` are 0-based."""
    folder = require_dir(folder, CineStudyError)
    image_path = _single(folder, "*_sa.nii.gz", "*_sa.nii.gz")
    if image_path is None:
        raise CineStudyError(folder / f"{folder.name}_sa.nii.gz", "missing: M&Ms needs the cine <code>_sa.nii.gz")
    code = image_path.name[: -len("_sa.nii.gz")]
    image = read_nifti(image_path, name="SAX")
    check_cine(image, image_path, "M&Ms")
    n = image.n_frames
    for value, what in ((ed_frame, "ed_frame"), (es_frame, "es_frame")):
        if value is not None and not 0 <= value < n:
            raise CineStudyError(image_path, f"{what} {value} outside 0..{n - 1}")
    gt_path = folder / f"{code}_sa_gt.nii.gz"
    label_seq, frames = None, None
    if gt_path.exists():
        label_seq = read_nifti(gt_path, labels=True, allowed_labels=(0, 1, 2, 3), require_labels=True)
        label_seq.array = to_product(label_seq.array, "mnms", gt_path)
        check_frame_count(label_seq, n, gt_path)
        check_same_grid(image, label_seq, gt_path, "ground truth")
        frames = labelled_frames_of(label_seq.array)
        if (ed_frame is None or es_frame is None) and len(frames) == 2:
            by_lv = sorted(frames, key=lambda t: -int(np.count_nonzero(label_seq.array[t] == 1)))
            ed_frame = by_lv[0] if ed_frame is None else ed_frame
            es_frame = by_lv[1] if es_frame is None else es_frame
    slices = split_stack(image, label_seq, frames, "SAX")
    return CineStudy(subject_id=subject_id or code, slices=slices, ed_frame=ed_frame or 0, es_frame=es_frame,
                     metadata={"source": str(folder), "layout": "mnms", "label_convention": "mnms"})


# --------------------------------------------------------------------------- writer


def _sax_labels_at(study: CineStudy, frame: int) -> Optional[np.ndarray]:
    """Product labels ``(z, y, x)`` of the SAX stack at ``frame`` when every SAX slice has labels there
    (and some voxel is labelled), else None."""
    sax = study.sax
    if any(s.labels is None or frame not in (s.labelled_frames or []) for s in sax):
        return None
    volume = np.concatenate([np.asarray(s.labels.array[frame], dtype=np.uint8) for s in sax], axis=0)
    return volume if volume.any() else None


def write_info_cfg(path: PathLike, info: Dict[str, object]) -> Path:
    """Write ``key: value`` lines (ACDC's ``Info.cfg``) atomically."""
    from .atomic import atomic_write_text

    atomic_write_text(Path(path), "".join(f"{key}: {value}\n" for key, value in info.items()))
    return Path(path)


def write_acdc_study(study: CineStudy, folder: PathLike, patient: Optional[str] = None, group: str = "NOR",
                     height_cm: float = 175.0, weight_kg: float = 75.0) -> Path:
    """Write ``study``'s SAX stack in the ACDC layout (module docstring) into the patient ``folder``:
    ``<patient>_4d.nii.gz`` (cine, ``(x, y, z, t)``), ``<patient>_frameNN.nii.gz`` at ED and ES (NN 1-based)
    with ``_gt.nii.gz`` labels in the ACDC convention (1 RV, 2 myocardium, 3 LV) where the SAX slices are
    labelled, and ``Info.cfg`` (ED, ES 1-based, Group, Height cm, NbFrame, Weight kg), written last.
    ``patient`` defaults to the folder name. The SAX slices must be parallel, share one pixel grid and be
    equally spaced (slice thickness and a flipped normal are not representable in ACDC and are dropped).
    :func:`read_acdc_study` gives back the image and the product labels at ED and ES exactly."""
    from ..errors import CardiacMotionAtlasError
    from .label_conventions import from_product
    from .layout_common import stack_slices
    from .nifti import write_nifti

    folder = Path(folder)
    patient = patient or folder.name
    sax = study.sax
    if not sax:
        raise CardiacMotionAtlasError(f"{folder}: study {study.subject_id!r} has no SAX slice to write")
    if study.es_frame is None:
        raise CardiacMotionAtlasError(f"{folder}: study {study.subject_id!r} has no ES frame; ACDC's Info.cfg needs it")
    stack, _, _ = stack_slices(sax)
    first = sax[0].image
    folder.mkdir(parents=True, exist_ok=True)
    cine = ImageSequence(np.concatenate([s.image.array for s in sax], axis=1), stack, phases=first.phases,
                         cycle_length_s=study.cycle_length_s or first.cycle_length_s,
                         trigger_times_s=first.trigger_times_s, name=f"{patient}_4d")
    write_nifti(cine, folder / f"{patient}_4d.nii.gz")
    for frame in sorted({int(study.ed_frame), int(study.es_frame)}):
        stem = f"{patient}_frame{frame + 1:02d}"
        write_nifti(ImageSequence(cine.array[frame:frame + 1], stack, name=stem), folder / f"{stem}.nii.gz")
        labels = _sax_labels_at(study, frame)
        if labels is not None:
            write_nifti(ImageSequence(from_product(labels, "acdc")[None], stack, name=f"{stem}_gt"),
                        folder / f"{stem}_gt.nii.gz", labels=True, label_convention="acdc")
    write_info_cfg(folder / "Info.cfg", {"ED": int(study.ed_frame) + 1, "ES": int(study.es_frame) + 1,
                                         "Group": group, "Height": float(height_cm),
                                         "NbFrame": int(cine.n_frames), "Weight": float(weight_kg)})
    return folder


__all__ = ["ACDC_TO_PROJECT", "read_info_cfg", "read_acdc_study", "read_mnms_study", "write_acdc_study",
           "write_info_cfg"]
