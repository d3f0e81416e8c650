"""CT phase volumes (3D NIfTI/NRRD, one file per cardiac phase, HU) -> a volume sequence indexed by phase,
with a browser and, when label files are given, a segmentation of the first phase and a label sequence."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..data.image_sequence import ImageSequence
from .common import MRMLBridgeError
from .segmentations import labels_to_segmentation_node
from .volumes import create_sequence_browser, image_sequence_to_sequence_node

PathLike = Union[str, os.PathLike]
PHASE_NAMES = {"ED": 0.0}


@dataclass
class CTPhaseNodes:
    """What :func:`ct_phases_to_nodes` put in the scene."""

    image_sequence: Any
    browser: Any
    label_sequence: Any = None
    segmentation: Any = None
    files: List[Path] = field(default_factory=list)


def _read_volume(path: Path, labels: bool) -> ImageSequence:
    from ..io.itk_images import read_itk_image
    from ..io.nifti import is_nifti_path, read_nifti

    image = (read_nifti if is_nifti_path(path) else read_itk_image)(path, labels=labels)
    if image.n_frames != 1:
        raise MRMLBridgeError(f"{path}: {image.n_frames} frames; a CT phase is one 3D volume (for cine CMR use "
                              f"'Load study folder')")
    return image


def read_ct_phases(files: Sequence[PathLike], phases: Optional[Sequence[float]] = None,
                   label_files: Optional[Sequence[PathLike]] = None, name: str = "CT"):
    """(intensities, labels or None) as ImageSequences of the given 3D phase volumes (same grid required).
    ``phases`` default to equally spaced values, except files named ``*_ED``/``*_ES`` (ED = 0)."""
    paths = [Path(f) for f in files]
    if not paths:
        raise MRMLBridgeError("no CT phase files given")
    volumes = [_read_volume(p, labels=False) for p in paths]
    reference = volumes[0]
    for path, volume in zip(paths[1:], volumes[1:]):
        if volume.shape_zyx != reference.shape_zyx or not np.allclose(volume.ijk_to_ras, reference.ijk_to_ras,
                                                                      atol=1e-4):
            raise MRMLBridgeError(f"{path}: grid differs from {paths[0]} (all CT phases must share one grid)")
    if phases is None:
        phases = [i / len(paths) for i in range(len(paths))]
    phases = [float(p) for p in phases]
    if len(phases) != len(paths) or len(set(phases)) != len(phases):
        raise MRMLBridgeError(f"need {len(paths)} distinct phases for {len(paths)} CT files, got {phases}")
    order = np.argsort(phases)
    image = ImageSequence(np.stack([volumes[i].array[0] for i in order]), reference.ijk_to_ras,
                          np.asarray(phases)[order], name=name)
    labels = None
    if label_files:
        label_paths = [Path(f) for f in label_files]
        if len(label_paths) != len(paths):
            raise MRMLBridgeError(f"{len(label_paths)} label files for {len(paths)} CT phases")
        maps = [_read_volume(p, labels=True) for p in label_paths]
        for path, labelled in zip(label_paths, maps):
            if labelled.shape_zyx != reference.shape_zyx:
                raise MRMLBridgeError(f"{path}: label grid {labelled.shape_zyx} differs from the CT's "
                                      f"{reference.shape_zyx}")
        labels = ImageSequence(np.stack([maps[i].array[0] for i in order]), reference.ijk_to_ras,
                               np.asarray(phases)[order], name=f"{name} labels")
    return image, labels


def ct_phases_to_nodes(scene: Any, image: ImageSequence, labels: Optional[ImageSequence] = None,
                       name: str = "CT") -> CTPhaseNodes:
    """Volume sequence (+ label sequence and first-phase segmentation) in one browser."""
    sequence = image_sequence_to_sequence_node(scene, image, name)
    sequences = [sequence]
    label_sequence = segmentation = None
    if labels is not None:
        label_sequence = image_sequence_to_sequence_node(scene, labels, f"{name} labels", labels=True)
        sequences.append(label_sequence)
        segmentation = labels_to_segmentation_node(scene, labels.array[0], labels.ijk_to_ras,
                                                   name=f"{name} segmentation (phase {labels.phases[0]:g})")
    browser = create_sequence_browser(scene, sequences, f"{name} phases")
    return CTPhaseNodes(sequence, browser, label_sequence, segmentation)


def phantom_ct_files(folder: PathLike) -> Dict[str, List[Path]]:
    """``{"images": [...], "labels": [...], "phases": [...]}`` of a phantom subject folder's CT phases
    (``ct_ED.nii.gz``, ``ct_ES.nii.gz`` and their ``seg_ct_*``), ED first; ES phase from ``phantom.json``."""
    import json

    folder = Path(folder)
    images = sorted(folder.glob("ct_*.nii.gz"), key=lambda p: (p.name != "ct_ED.nii.gz", p.name))
    if not images:
        raise MRMLBridgeError(f"{folder}: no CT phase files (ct_*.nii.gz)")
    es = None
    sidecar = folder / "phantom.json"
    if sidecar.is_file():
        es = json.loads(sidecar.read_text()).get("es_phase")
    phases = []
    for index, path in enumerate(images):
        tag = re.sub(r"^ct_|\.nii\.gz$", "", path.name)
        phases.append(0.0 if tag == "ED" else (float(es) if tag == "ES" and es is not None else index / len(images)))
    labels = [folder / f"seg_{p.name}" for p in images]
    return {"images": images, "labels": labels if all(p.is_file() for p in labels) else [], "phases": phases}


__all__ = ["CTPhaseNodes", "ct_phases_to_nodes", "phantom_ct_files", "read_ct_phases"]
