"""MeshSequence <-> model nodes and model sequence nodes.

Frames: model points are RAS mm in memory (MRML converts to LPS only when a storage node writes a
file), the same coordinates as ``MeshSequence.vertices``. Every frame is a ``vtkMRMLModelNode`` whose
polydata holds the frame's vertices (float64), the shared triangles and the point data arrays
(``(n,)`` or ``(n, c)`` per frame, e.g. ``displacement_mm``, uncertainty); the active scalars are set
on the polydata and on the proxy's display node so that Slicer colours the surface by them.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
import slicer

from ..data.mesh_sequence import MeshSequence
from ..io.vtk_convert import mesh_to_polydata, polydata_to_arrays
from .common import (
    MRMLBridgeError,
    configure_phase_sequence,
    get_attribute,
    phase_index_value,
    phases_from_index_values,
    sequence_index_values,
    set_attribute,
)


def new_model_node(vertices: np.ndarray, faces: np.ndarray, point_data: Optional[Dict[str, np.ndarray]] = None,
                   active_scalars: Optional[str] = None, name: str = "") -> Any:
    """A model node (not in a scene) of one triangle mesh: ``vertices`` ``(n, 3)`` RAS mm, ``faces``
    ``(m, 3)``, per-vertex arrays; ``active_scalars`` (default: the first point array) becomes the
    polydata's active scalars."""
    polydata = mesh_to_polydata(vertices, faces, point_data)
    names = list(point_data or {})
    active = active_scalars if active_scalars is not None else (names[0] if names else None)
    if active is not None:
        if active not in names:
            raise MRMLBridgeError(f"model {name!r}: no point array {active!r} (have {names})")
        polydata.GetPointData().SetActiveScalars(active)
    node = slicer.vtkMRMLModelNode()
    if name:
        node.SetName(name)
    node.SetAndObservePolyData(polydata)
    return node


def model_node_to_arrays(node: Any):
    """``(vertices (n, 3) RAS mm, faces (m, 3), point_data {name: (n,) or (n, c)})`` of a model node."""
    if node is None or not node.IsA("vtkMRMLModelNode") or node.GetPolyData() is None:
        raise MRMLBridgeError(f"{node and node.GetName()!r} is not a model node with polydata")
    return polydata_to_arrays(node.GetPolyData())


def add_model_node(scene: Any, vertices: np.ndarray, faces: np.ndarray,
                   point_data: Optional[Dict[str, np.ndarray]] = None, name: str = "model",
                   active_scalars: Optional[str] = None, color=(0.9, 0.75, 0.3)) -> Any:
    """A model node in ``scene`` with a display node colouring by the active scalars (if any)."""
    node = scene.AddNode(new_model_node(vertices, faces, point_data, active_scalars, name))
    node.CreateDefaultDisplayNodes()
    _configure_display(node, color)
    return node


def mesh_sequence_to_sequence_node(scene: Any, mesh: MeshSequence, name: Optional[str] = None,
                                   active_scalars: Optional[str] = None) -> Any:
    """A ``vtkMRMLSequenceNode`` in ``scene`` with one model node per frame (index ``phase``, numeric,
    values = phases). Every frame has the same point count and faces (dense correspondence)."""
    name = name or mesh.name or "mesh"
    sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", name)
    configure_phase_sequence(sequence)
    for frame, phase in enumerate(mesh.phases):
        data = {key: np.asarray(values)[frame] for key, values in mesh.point_data.items()}
        node = new_model_node(mesh.vertices[frame], mesh.faces, data, active_scalars,
                              f"{name} {phase_index_value(phase)}")
        sequence.SetDataNodeAtValue(node, phase_index_value(phase))
    set_attribute(sequence, "Kind", "MeshSequence")
    set_attribute(sequence, "Name", mesh.name)
    return sequence


def sequence_node_to_mesh_sequence(sequence: Any, name: Optional[str] = None) -> MeshSequence:
    """The MeshSequence of a model sequence node (phases from index values). Raises
    :class:`MRMLBridgeError` when frames differ in point count or connectivity."""
    count = sequence.GetNumberOfDataNodes() if sequence is not None else 0
    if count == 0:
        raise MRMLBridgeError(f"sequence {sequence and sequence.GetName()!r} has no data nodes")
    phases = phases_from_index_values(sequence_index_values(sequence), sequence.GetName())
    vertices: List[np.ndarray] = []
    point_data: Dict[str, List[np.ndarray]] = {}
    faces = None
    for index in range(count):
        frame_vertices, frame_faces, frame_data = model_node_to_arrays(sequence.GetNthDataNode(index))
        if faces is None:
            faces = frame_faces
            point_data = {key: [] for key in frame_data}
        elif frame_vertices.shape != vertices[0].shape or not np.array_equal(frame_faces, faces):
            raise MRMLBridgeError(f"sequence {sequence.GetName()!r}: frame {index} has another point count or "
                                  f"connectivity than frame 0 (no dense correspondence)")
        vertices.append(frame_vertices)
        for key in point_data:
            if key not in frame_data:
                raise MRMLBridgeError(f"sequence {sequence.GetName()!r}: frame {index} lacks point array {key!r}")
            point_data[key].append(frame_data[key])
    return MeshSequence(np.stack(vertices), faces, phases, name=name or get_attribute(sequence, "Name") or
                        sequence.GetName(), point_data={key: np.stack(v) for key, v in point_data.items()})


def configure_model_display(node: Any, color=(0.9, 0.75, 0.3), colormap_id: str = "vtkMRMLColorTableNodeRainbow") -> None:
    """Display a model (or a model proxy) coloured by its polydata's active point scalars with the
    data range, or in ``color`` when it has none."""
    _configure_display(node, color, colormap_id)


def _configure_display(node: Any, color, colormap_id: str = "vtkMRMLColorTableNodeRainbow") -> None:
    display = node.GetDisplayNode()
    if display is None:
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
    display.SetColor(*color)
    polydata = node.GetPolyData()
    scalars = polydata.GetPointData().GetScalars() if polydata is not None else None
    if scalars is not None and scalars.GetName():
        display.SetActiveScalar(scalars.GetName(), 0)  # 0 = vtkAssignAttribute::POINT_DATA
        scene = node.GetScene()
        if scene is not None and scene.GetNodeByID(colormap_id) is not None:
            display.SetAndObserveColorNodeID(colormap_id)
        display.SetScalarRangeFlag(display.UseDataScalarRange)
        display.SetScalarVisibility(True)


__all__ = [
    "add_model_node",
    "configure_model_display",
    "mesh_sequence_to_sequence_node",
    "model_node_to_arrays",
    "new_model_node",
    "sequence_node_to_mesh_sequence",
]
