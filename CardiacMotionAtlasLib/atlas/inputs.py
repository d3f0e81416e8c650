"""Atlas inputs from files: 4D label maps (NIfTI/NRRD) or phantom subject folders -> :class:`SubjectData`.

A phantom subject folder (written by ``cardiac-atlas phantom``) holds ``ground_truth/labels_iso.nii.gz``
(one frame per ground-truth phase) and ``phantom.json`` with those phases (``gt_phases``) and the ES frame
(``gt_es_index``); any other label file is read with its own geometry, phases equally spaced over the cycle
and ES at the smallest LV blood pool.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple

from ..data.image_sequence import ImageSequence
from ..errors import InputFileError
from .config import SamplingConfig
from .sampling import SubjectData, subject_from_labels

PHANTOM_SIDECAR = "phantom.json"
PHANTOM_LABELS = Path("ground_truth") / "labels_iso.nii.gz"


def read_label_input(path: Path) -> Tuple[ImageSequence, Optional[List[float]], Optional[int]]:
    """(labels, phases or None, ES frame or None) from a label file or a phantom subject folder."""
    from ..io.itk_images import read_itk_image
    from ..io.nifti import is_nifti_path, read_nifti

    path = Path(path)
    es_frame, phases = None, None
    if path.is_dir():
        sidecar = path / PHANTOM_SIDECAR
        file = path / PHANTOM_LABELS
        if not file.is_file():
            raise InputFileError(path, f"not a label file nor a phantom subject folder (no {PHANTOM_LABELS})")
        if sidecar.is_file():
            try:
                info = json.loads(sidecar.read_text())
                phases, es_frame = [float(p) for p in info["gt_phases"]], int(info["gt_es_index"])
            except (ValueError, KeyError, TypeError) as error:
                raise InputFileError(sidecar, f"unreadable phantom sidecar ({error})") from error
        path = file
    if not path.exists():
        raise InputFileError(path, "no such file")
    reader = read_nifti if is_nifti_path(path) else read_itk_image
    labels = reader(path, labels=True, require_labels=True)
    return labels, phases, es_frame


def subject_from_label_input(path: Path, sampling: Optional[SamplingConfig] = None, seed: int = 0) -> SubjectData:
    """SDF samples of one subject given as a label file or a phantom subject folder."""
    path = Path(path)
    labels, phases, es_frame = read_label_input(path)
    name = path.name if path.is_dir() else labels.name
    return subject_from_labels(labels, sampling, seed=seed, es_frame=es_frame, subject_id=name, phases=phases)


__all__ = ["read_label_input", "subject_from_label_input", "PHANTOM_LABELS", "PHANTOM_SIDECAR"]
