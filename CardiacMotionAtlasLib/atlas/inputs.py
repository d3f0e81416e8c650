"""Atlas inputs from files -> :class:`SubjectData`: phantom subject folders, cine study folders of any
layout, and bare 4D label maps.

- A phantom subject folder (written by ``cardiac-atlas phantom``) holds ``ground_truth/labels_iso.nii.gz``
  (one frame per ground-truth phase, product labels) and ``phantom.json`` with those phases
  (``gt_phases``) and the ES frame (``gt_es_index``).
- A study folder (UK Biobank-style, ACDC, M&Ms; read by :func:`~CardiacMotionAtlasLib.io.layouts.read_study`,
  which converts each layout's label convention to the product's) gives its SAX labels at the labelled
  frames that hold myocardium, stacked on the SAX grid (k spacing = slice spacing) with one empty slice
  added above and below, so that the myocardium's distance field closes at the base and the apex; phases
  are the study's, relative to its ED frame.
- A bare label file (NIfTI/NRRD, one frame per phase) carries no convention: it must be given
  (``label_convention``) or written in its sidecar ``<stem>.json`` (``label_convention``; optionally
  ``phases`` and ``es_frame``) or the product's header stamp, never guessed from its values. A file that
  sits inside a study folder of a known layout (an ACDC patient's ``*_gt.nii.gz``) defaults to that
  layout's convention (:func:`layout_label_convention`); elsewhere the convention must be given. Phases
  default to ``index / n`` and ES to the smallest LV blood pool.

Every label map is checked by :func:`~CardiacMotionAtlasLib.io.label_conventions.check_label_anatomy`
after conversion (an ACDC map read as the product's is refused). Subject ids come from the study folder
(:func:`~CardiacMotionAtlasLib.io.cohort.subject_id_for`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from ..data.image_sequence import ImageSequence
from ..errors import CineStudyError, InputFileError
from .config import SamplingConfig
from .frame import MYOCARDIUM_LABEL
from .sampling import SubjectData, subject_from_labels

PHANTOM_SIDECAR = "phantom.json"
PHANTOM_LABELS = Path("ground_truth") / "labels_iso.nii.gz"


def _read_label_file(path: Path) -> ImageSequence:
    from ..io.itk_images import read_itk_image
    from ..io.nifti import is_nifti_path, read_nifti

    if not path.exists():
        raise InputFileError(path, "no such file")
    reader = read_nifti if is_nifti_path(path) else read_itk_image
    return reader(path, labels=True, require_labels=True)


def layout_label_convention(path: Path) -> Optional[Tuple[str, str]]:
    """(convention, layout) that a bare label file inherits from the study folder it sits in (ACDC:
    ``acdc``, M&Ms: ``mnms``, UK Biobank-style: its ``study.json``'s), or None when the file carries its
    own (sidecar, header stamp) or its folder is no study layout with labels."""
    from ..io.label_conventions import LAYOUT_CONVENTIONS, SIDECAR_KEY, check_convention, read_sidecar, stamped_convention
    from ..io.layouts import detect_layout

    path = Path(path)
    if not path.is_file() or read_sidecar(path).get(SIDECAR_KEY) is not None or stamped_convention(path) is not None:
        return None
    try:
        layout = detect_layout(path.parent)
    except (CineStudyError, OSError):
        return None
    convention = LAYOUT_CONVENTIONS.get(layout)
    if layout == "ukbb":
        from ..io.layout_common import read_json

        study_json = path.parent / "study.json"
        stored = read_json(study_json).get(SIDECAR_KEY, "product") if study_json.is_file() else "product"
        convention = check_convention(stored, study_json)
    return None if convention is None else (convention, layout)


def read_label_input(path: Path, label_convention: Optional[str] = None
                     ) -> Tuple[ImageSequence, Optional[List[float]], Optional[int]]:
    """(product labels, phases or None, ES frame or None) from a bare label file (its convention given or
    in its sidecar) or a phantom subject folder (the product's convention)."""
    from ..io.label_conventions import check_label_anatomy, convention_of_label_file, read_sidecar, to_product

    path = Path(path)
    if path.is_dir():
        sidecar, file = path / PHANTOM_SIDECAR, path / PHANTOM_LABELS
        if not file.is_file():
            raise InputFileError(path, f"not a label file nor a phantom subject folder (no {PHANTOM_LABELS})")
        es_frame, phases = None, None
        if sidecar.is_file():
            try:
                info = json.loads(sidecar.read_text())
                phases, es_frame = [float(p) for p in info["gt_phases"]], int(info["gt_es_index"])
            except (ValueError, KeyError, TypeError) as error:
                raise InputFileError(sidecar, f"unreadable phantom sidecar ({error})") from error
        labels = _read_label_file(file)
        check_label_anatomy(labels.array, file)
        return labels, phases, es_frame
    if label_convention is None:
        inherited = layout_label_convention(path)
        label_convention = None if inherited is None else inherited[0]
    convention = convention_of_label_file(path, label_convention)
    labels = _read_label_file(path)
    labels.array = to_product(labels.array, convention, path)
    check_label_anatomy(labels.array, path, convention)
    info = read_sidecar(path)
    phases = info.get("phases")
    es_frame = info.get("es_frame")
    try:
        phases = None if phases is None else [float(p) for p in phases]
        es_frame = None if es_frame is None else int(es_frame)
    except (TypeError, ValueError) as error:
        raise InputFileError(path, f"sidecar phases / es_frame unreadable ({error})") from None
    return labels, phases, es_frame


def study_label_sequence(study, source: Optional[Path] = None) -> Tuple[ImageSequence, np.ndarray, int, Optional[int]]:
    """(labels ``(F, z + 2, y, x)`` of the labelled frames with myocardium, padded by one empty slice at
    each end of the stack; their phases relative to ED; ED index; ES index or None) of a cine study."""
    from ..io.layout_common import sax_volume

    source = source or study.metadata.get("source") or study.subject_id
    if not study.sax or any(s.labels is None for s in study.sax):
        raise CineStudyError(source, "no SAX segmentation (the atlas needs LV myocardium labels)")
    labels = sax_volume(study.sax, labels=True, name=study.subject_id)
    array = np.asarray(labels.array)
    frames = [t for t in range(labels.n_frames) if np.any(array[t] == MYOCARDIUM_LABEL)]
    if not frames:
        raise CineStudyError(source, f"the SAX segmentation has no LV myocardium (label {MYOCARDIUM_LABEL}) in any frame")
    if study.ed_frame not in frames:
        raise CineStudyError(source, f"no myocardium labels at the ED frame {study.ed_frame} (labelled: {frames})")
    padded = np.pad(array[frames], ((0, 0), (1, 1), (0, 0), (0, 0)))
    matrix = labels.ijk_to_ras.copy()
    matrix[:3, 3] -= matrix[:3, 2]  # one slice below the first
    phases = np.mod(np.asarray(labels.phases, float)[frames] - float(labels.phases[study.ed_frame]), 1.0)
    phases[frames.index(study.ed_frame)] = 0.0
    sequence = ImageSequence(padded, matrix, phases, labels.cycle_length_s, name=study.subject_id)
    es = frames.index(study.es_frame) if study.es_frame in frames else None
    return sequence, phases, frames.index(study.ed_frame), es


def subject_from_entry(entry, sampling: Optional[SamplingConfig] = None, seed: int = 0) -> SubjectData:
    """SDF samples of one cohort entry (:class:`~CardiacMotionAtlasLib.io.cohort.StudyEntry`): a phantom
    folder's ground truth, a study's SAX labels, or a bare label file; the subject id is the entry's."""
    from ..io.label_conventions import check_label_anatomy
    from ..io.layouts import read_study

    if entry.layout == "labels" or entry.ground_truth:
        labels, phases, es_frame = read_label_input(entry.path, entry.label_convention)
        return subject_from_labels(labels, sampling, seed=seed, es_frame=es_frame, subject_id=entry.subject_id,
                                   phases=phases)
    study = read_study(entry.path, entry.layout)
    study.subject_id = entry.subject_id
    labels, phases, ed, es = study_label_sequence(study, entry.path)
    check_label_anatomy(labels.array, entry.path, entry.label_convention or "product")
    return subject_from_labels(labels, sampling, seed=seed, ed_frame=ed, es_frame=es, subject_id=entry.subject_id,
                               phases=phases)


def subject_from_label_input(path: Path, sampling: Optional[SamplingConfig] = None, seed: int = 0,
                             label_convention: Optional[str] = None) -> SubjectData:
    """SDF samples of one subject given as a phantom subject folder, a study folder or a bare label file
    (``label_convention`` or its sidecar required for the latter)."""
    from ..io.cohort import entry_for

    return subject_from_entry(entry_for(path, label_convention, bare_files_are_labels=True), sampling, seed)


__all__ = ["layout_label_convention", "read_label_input", "study_label_sequence", "subject_from_entry", "subject_from_label_input",
           "PHANTOM_LABELS", "PHANTOM_SIDECAR"]
