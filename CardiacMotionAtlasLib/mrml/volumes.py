"""ImageSequence <-> volume nodes, volume sequence nodes and sequence browsers.

Frames: MRML volume nodes store voxel -> RAS mm directly (``SetIJKToRASMatrix``/``GetIJKToRASMatrix``),
the same matrix as ``ImageSequence.ijk_to_ras``; the ``vtkImageData`` keeps the neutral origin, spacing
and direction, so the whole geometry lives in the node. Voxels keep their type (int16 stays int16).

A 3D+t image becomes a ``vtkMRMLSequenceNode`` whose data nodes are ``vtkMRMLScalarVolumeNode``
(``vtkMRMLLabelMapVolumeNode`` for labels), index name ``phase``, no unit, numeric index type, index
values = the phases as round-trip strings (``"0.125"``). A ``vtkMRMLSequenceBrowserNode`` plays the
sequences; its proxy nodes (created by the Sequences module logic) are what views display.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence

import numpy as np
import slicer
import vtk

from ..data.image_sequence import ImageSequence
from .common import (
    MRMLBridgeError,
    array_from_image_data,
    array_from_vtk_matrix,
    configure_phase_sequence,
    get_attribute,
    image_data_from_array,
    phase_index_value,
    phases_from_index_values,
    sequence_index_values,
    set_attribute,
    vtk_matrix_from_array,
)
from .scene import module_logic

LABEL_COLOR_TABLE_NAME = "CardiacMotionAtlas labels"
LABEL_COLORS = {
    0: ("background", (0.0, 0.0, 0.0, 0.0)),
    1: ("LV blood pool", (0.86, 0.24, 0.24, 1.0)),
    2: ("LV myocardium", (0.95, 0.78, 0.30, 1.0)),
    3: ("RV blood pool", (0.27, 0.47, 0.90, 1.0)),
}
"""Label value -> (name, RGBA) of the project's labels (0 bg, 1 LV BP, 2 LV myo, 3 RV BP)."""


# ---------------------------------------------------------------------------------------- single volumes
def new_volume_node(array: np.ndarray, ijk_to_ras: np.ndarray, labels: bool = False, name: str = "") -> Any:
    """A volume node (not added to any scene) holding a ``(z, y, x)`` array and its IJK->RAS (RAS mm)."""
    array = np.asarray(array)
    if array.ndim != 3:
        raise MRMLBridgeError(f"volume {name!r}: expected a (z, y, x) array, got shape {array.shape}")
    node = slicer.vtkMRMLLabelMapVolumeNode() if labels else slicer.vtkMRMLScalarVolumeNode()
    if name:
        node.SetName(name)
    node.SetAndObserveImageData(image_data_from_array(array))
    node.SetIJKToRASMatrix(vtk_matrix_from_array(ijk_to_ras))
    return node


def volume_node_ijk_to_ras(node: Any) -> np.ndarray:
    """The 4x4 IJK->RAS (mm) of a volume node."""
    out = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(out)
    return array_from_vtk_matrix(out)


def volume_node_to_array(node: Any) -> np.ndarray:
    """The ``(z, y, x)`` voxels of a volume node (a copy)."""
    if node is None or not node.IsA("vtkMRMLVolumeNode"):
        raise MRMLBridgeError(f"{_describe(node)} is not a volume node")
    return array_from_image_data(node.GetImageData())


def add_volume_node(scene: Any, array: np.ndarray, ijk_to_ras: np.ndarray, name: str,
                    labels: bool = False) -> Any:
    """A volume node in ``scene`` with display nodes (the project's label colours for labels)."""
    node = scene.AddNode(new_volume_node(array, ijk_to_ras, labels, name))
    node.CreateDefaultDisplayNodes()
    if labels:
        _use_label_colors(scene, node)
    return node


# ---------------------------------------------------------------------------------------- sequences
def image_sequence_to_sequence_node(scene: Any, image: ImageSequence, name: Optional[str] = None,
                                    labels: bool = False) -> Any:
    """A ``vtkMRMLSequenceNode`` in ``scene`` with one volume node per frame of ``image``
    (``vtkMRMLLabelMapVolumeNode`` frames with ``labels``). Node attributes keep the cycle length (s),
    the trigger times (s) and the name."""
    name = name or image.name or "image"
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    configure_phase_sequence(sequence)
    for frame, phase in enumerate(image.phases):
        node = new_volume_node(image.array[frame], image.ijk_to_ras, labels, f"{name} {phase_index_value(phase)}")
        sequence.SetDataNodeAtValue(node, phase_index_value(phase))
    set_attribute(sequence, "Kind", "LabelSequence" if labels else "ImageSequence")
    set_attribute(sequence, "Name", image.name)
    if image.cycle_length_s is not None:
        set_attribute(sequence, "CycleLength_s", float(image.cycle_length_s))
    if image.trigger_times_s is not None:
        set_attribute(sequence, "TriggerTimes_s", [float(t) for t in image.trigger_times_s])
    return sequence


def sequence_node_to_image_sequence(sequence: Any, name: Optional[str] = None) -> ImageSequence:
    """The ImageSequence of a volume sequence node: voxels ``(t, z, y, x)`` and IJK->RAS exactly as
    stored, phases from the index values. All frames must share shape, voxel type and geometry."""
    count = sequence.GetNumberOfDataNodes() if sequence is not None else 0
    if count == 0:
        raise MRMLBridgeError(f"{_describe(sequence)} has no data nodes")
    phases = phases_from_index_values(sequence_index_values(sequence), sequence.GetName())
    frames: List[np.ndarray] = []
    matrix = None
    for index in range(count):
        node = sequence.GetNthDataNode(index)
        frames.append(volume_node_to_array(node))
        this = volume_node_ijk_to_ras(node)
        if matrix is None:
            matrix = this
        elif not np.allclose(this, matrix, atol=1e-6):
            raise MRMLBridgeError(f"sequence {sequence.GetName()!r}: frame {index} has another IJK->RAS")
        if frames[-1].shape != frames[0].shape or frames[-1].dtype != frames[0].dtype:
            raise MRMLBridgeError(f"sequence {sequence.GetName()!r}: frame {index} has shape "
                                  f"{frames[-1].shape} {frames[-1].dtype}, frame 0 {frames[0].shape} {frames[0].dtype}")
    is_labels = sequence.GetNthDataNode(0).IsA("vtkMRMLLabelMapVolumeNode")
    trigger = get_attribute(sequence, "TriggerTimes_s")
    return ImageSequence(
        np.stack(frames), matrix, phases,
        cycle_length_s=get_attribute(sequence, "CycleLength_s"),
        trigger_times_s=None if trigger is None else np.asarray(trigger, float),
        name=name or get_attribute(sequence, "Name") or sequence.GetName(),
        metadata={"labels": True} if is_labels else {},
    )


def create_sequence_browser(scene: Any, sequences: Sequence[Any], name: str,
                            frames_per_second: Optional[float] = None) -> Any:
    """A ``vtkMRMLSequenceBrowserNode`` playing ``sequences`` in sync (the first one is the master),
    looping, with proxy nodes (display nodes created; label maps get the project's label colours).
    ``frames_per_second`` sets real-time playback (frames / cycle length). Needs the Sequences logic."""
    if not sequences:
        raise MRMLBridgeError(f"browser {name!r}: no sequences to browse")
    browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", name)
    browser.SetAndObserveMasterSequenceNodeID(sequences[0].GetID())
    for sequence in sequences[1:]:
        browser.AddSynchronizedSequenceNodeID(sequence.GetID())
    browser.SetPlaybackLooped(True)
    if frames_per_second:
        browser.SetPlaybackRateFps(float(frames_per_second))
    logic = module_logic(scene, "Sequences")
    if logic is not None:
        logic.UpdateProxyNodesFromSequences(browser)
    browser.SetSelectedItemNumber(0)
    for sequence in sequences:
        proxy = browser.GetProxyNode(sequence)
        if proxy is None:
            raise MRMLBridgeError(
                f"browser {name!r}: no proxy node for {sequence.GetName()!r}; the Sequences module logic is "
                f"missing (use slicer.mrmlScene or create_standalone_scene())")
        proxy.SetName(sequence.GetName())
        if proxy.GetDisplayNode() is None:
            proxy.CreateDefaultDisplayNodes()
        if proxy.IsA("vtkMRMLLabelMapVolumeNode"):
            _use_label_colors(scene, proxy)
    return browser


def add_sequences_to_browser(browser: Any, sequences: Iterable[Any]) -> None:
    """Synchronise more sequences with an existing browser (proxies and display nodes created)."""
    scene = browser.GetScene()
    for sequence in sequences:
        browser.AddSynchronizedSequenceNodeID(sequence.GetID())
    logic = module_logic(scene, "Sequences")
    if logic is not None:
        logic.UpdateProxyNodesFromSequences(browser)
    for sequence in sequences:
        proxy = browser.GetProxyNode(sequence)
        if proxy is not None and proxy.GetDisplayNode() is None:
            proxy.SetName(sequence.GetName())
            proxy.CreateDefaultDisplayNodes()


def image_sequence_to_browser(scene: Any, image: ImageSequence, name: Optional[str] = None,
                              labels: bool = False) -> Any:
    """One volume sequence plus a browser for it; returns the browser (``GetMasterSequenceNode()``
    is the sequence, ``GetProxyNode(sequence)`` the displayed volume)."""
    sequence = image_sequence_to_sequence_node(scene, image, name, labels)
    fps = image.n_frames / image.cycle_length_s if image.cycle_length_s else None
    return create_sequence_browser(scene, [sequence], f"{sequence.GetName()} browser", fps)


# ---------------------------------------------------------------------------------------- label colours
def label_color_node(scene: Any) -> Any:
    """The project's label colour table in ``scene`` (created once; 0 bg, 1 LV BP, 2 LV myo, 3 RV BP)."""
    nodes = scene.GetNodesByClass("vtkMRMLColorTableNode")
    for index in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(index)
        if get_attribute(node, "Kind") == "LabelColors":
            return node
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", LABEL_COLOR_TABLE_NAME)
    node.SetTypeToUser()
    node.SetNumberOfColors(len(LABEL_COLORS))
    for value, (label_name, rgba) in LABEL_COLORS.items():
        node.SetColor(value, label_name, *rgba)
    set_attribute(node, "Kind", "LabelColors")
    return node


def _use_label_colors(scene: Any, node: Any) -> None:
    display = node.GetDisplayNode()
    if display is not None:
        display.SetAndObserveColorNodeID(label_color_node(scene).GetID())


def _describe(node: Any) -> str:
    if node is None:
        return "None"
    return f"{node.GetClassName()} {node.GetName()!r}"


__all__ = [
    "LABEL_COLORS",
    "LABEL_COLOR_TABLE_NAME",
    "add_sequences_to_browser",
    "add_volume_node",
    "create_sequence_browser",
    "image_sequence_to_browser",
    "image_sequence_to_sequence_node",
    "label_color_node",
    "new_volume_node",
    "sequence_node_to_image_sequence",
    "volume_node_ijk_to_ras",
    "volume_node_to_array",
]
