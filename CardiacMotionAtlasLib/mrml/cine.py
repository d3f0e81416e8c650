"""CineStudy <-> one volume sequence per cine slice, all played by one sequence browser.

Each slice's ``(t, 1, y, x)`` image becomes a volume sequence (index ``phase``) named after the slice,
with its nominal IJK->RAS (RAS mm) exactly as in the study; its labels (if any) a label map volume
sequence ``<slice> labels``. Node attributes keep the view, the slice position in its stack, the
labelled frames and the subject, so that :func:`cine_study_from_browser` rebuilds the study. The first
slice's sequence is the browser's master; every other sequence is synchronised by phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import vtk

from ..data.cine_study import CineSlice, CineStudy
from .common import MRMLBridgeError, get_attribute, set_attribute
from .volumes import create_sequence_browser, image_sequence_to_sequence_node, sequence_node_to_image_sequence


@dataclass
class CineStudyNodes:
    """The nodes made for one cine study."""

    browser: Any
    image_sequences: Dict[str, Any] = field(default_factory=dict)
    label_sequences: Dict[str, Any] = field(default_factory=dict)

    def proxy(self, slice_name: str, labels: bool = False) -> Any:
        """The displayed volume node of a slice (its labels with ``labels``)."""
        sequences = self.label_sequences if labels else self.image_sequences
        return self.browser.GetProxyNode(sequences[slice_name])

    def all_sequences(self) -> List[Any]:
        return list(self.image_sequences.values()) + list(self.label_sequences.values())


def cine_study_to_nodes(scene: Any, study: CineStudy, include_labels: bool = True,
                        browser_name: Optional[str] = None, prefix: str = "") -> CineStudyNodes:
    """Volume sequences for every slice of ``study`` (and its labels with ``include_labels``) and one
    browser ``<subject> cine`` playing them in sync at real-time speed when the cycle length is known."""
    image_sequences: Dict[str, Any] = {}
    label_sequences: Dict[str, Any] = {}
    for index, cine_slice in enumerate(study.slices):
        slice_name = cine_slice.image.name or f"slice_{index:02d}"
        if slice_name in image_sequences:
            slice_name = f"{slice_name}_{index:02d}"
        sequence = image_sequence_to_sequence_node(scene, cine_slice.image, f"{prefix}{slice_name}")
        _tag_slice(sequence, study, cine_slice, slice_name, "image")
        image_sequences[slice_name] = sequence
        if include_labels and cine_slice.labels is not None:
            labels = image_sequence_to_sequence_node(scene, cine_slice.labels, f"{prefix}{slice_name} labels",
                                                     labels=True)
            _tag_slice(labels, study, cine_slice, slice_name, "labels")
            label_sequences[slice_name] = labels
    cycle = study.cycle_length_s or study.slices[0].image.cycle_length_s
    fps = study.n_frames / cycle if cycle else None
    browser = create_sequence_browser(scene, list(image_sequences.values()) + list(label_sequences.values()),
                                      browser_name or f"{study.subject_id} cine", fps)
    set_attribute(browser, "Kind", "CineStudy")
    set_attribute(browser, "Subject", study.subject_id)
    set_attribute(browser, "EDFrame", study.ed_frame)
    set_attribute(browser, "ESFrame", study.es_frame)
    set_attribute(browser, "CycleLength_s", study.cycle_length_s)
    return CineStudyNodes(browser, image_sequences, label_sequences)


def _tag_slice(sequence: Any, study: CineStudy, cine_slice: CineSlice, slice_name: str, role: str) -> None:
    set_attribute(sequence, "Subject", study.subject_id)
    set_attribute(sequence, "Slice", slice_name)
    set_attribute(sequence, "SliceRole", role)
    set_attribute(sequence, "View", cine_slice.view)
    set_attribute(sequence, "SliceIndex", int(cine_slice.slice_index))
    if cine_slice.labelled_frames is not None:
        set_attribute(sequence, "LabelledFrames", [int(f) for f in cine_slice.labelled_frames])


def cine_study_from_browser(browser: Any) -> CineStudy:
    """Rebuild the CineStudy of a browser made by :func:`cine_study_to_nodes` (voxels, IJK->RAS,
    phases, views, labels)."""
    if browser is None or not browser.IsA("vtkMRMLSequenceBrowserNode"):
        raise MRMLBridgeError(f"{browser and browser.GetName()!r} is not a sequence browser node")
    images: Dict[str, Any] = {}
    labels: Dict[str, Any] = {}
    collection = vtk.vtkCollection()
    browser.GetSynchronizedSequenceNodes(collection, True)
    for index in range(collection.GetNumberOfItems()):
        sequence = collection.GetItemAsObject(index)
        slice_name = get_attribute(sequence, "Slice")
        role = get_attribute(sequence, "SliceRole")
        if slice_name is None or role not in ("image", "labels"):
            continue
        (images if role == "image" else labels)[slice_name] = sequence
    if not images:
        raise MRMLBridgeError(f"browser {browser.GetName()!r} holds no cine slice sequences")
    slices = []
    for slice_name, sequence in images.items():
        label_sequence = labels.get(slice_name)
        slices.append(CineSlice(
            sequence_node_to_image_sequence(sequence, slice_name),
            view=get_attribute(sequence, "View", "SAX"),
            labels=None if label_sequence is None else sequence_node_to_image_sequence(label_sequence),
            labelled_frames=None if label_sequence is None else get_attribute(label_sequence, "LabelledFrames"),
            slice_index=int(get_attribute(sequence, "SliceIndex", 0)),
        ))
    return CineStudy(get_attribute(browser, "Subject") or browser.GetName(), slices,
                     ed_frame=int(get_attribute(browser, "EDFrame", 0) or 0),
                     es_frame=get_attribute(browser, "ESFrame"),
                     cycle_length_s=get_attribute(browser, "CycleLength_s"),
                     metadata={"source": f"MRML browser {browser.GetName()}"})


__all__ = ["CineStudyNodes", "cine_study_from_browser", "cine_study_to_nodes"]
