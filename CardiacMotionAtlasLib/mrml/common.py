"""Shared helpers of the MRML bridge: the error type, node attributes, phase index values, 4x4 matrices
and ``(z, y, x)`` numpy arrays <-> ``vtkImageData``.

Frames: every matrix here is a RAS millimetre matrix (MRML stores RAS in memory; LPS appears only when
MRML storage nodes write files). Voxel arrays are ``(z, y, x)`` = ``(k, j, i)``; VTK images store the
same voxels with i fastest, so a C-order ``ravel`` of the numpy array is the VTK point order.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, List, Optional, Sequence

import numpy as np
import vtk
from vtk.util import numpy_support

from ..errors import CardiacMotionAtlasError

ATTRIBUTE_PREFIX = "CardiacMotionAtlas."
"""Prefix of every MRML node attribute this bridge writes (kept in .mrml/.mrb files)."""

PHASE_INDEX_NAME = "phase"
"""Index name of every sequence node holding the cardiac cycle (normalised phase, ED = 0, no unit)."""


class MRMLBridgeError(CardiacMotionAtlasError):
    """A node cannot be converted (wrong class, empty, inconsistent frames, missing module logic)."""


# ---------------------------------------------------------------------------------------- attributes
def set_attribute(node: Any, key: str, value: Any) -> None:
    """Store ``value`` as JSON in the node attribute ``CardiacMotionAtlas.<key>``."""
    node.SetAttribute(ATTRIBUTE_PREFIX + key, json.dumps(value))


def get_attribute(node: Any, key: str, default: Any = None) -> Any:
    """The JSON value stored by :func:`set_attribute`, or ``default`` when absent or unreadable."""
    text = node.GetAttribute(ATTRIBUTE_PREFIX + key)
    if text is None or text == "":
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


# ---------------------------------------------------------------------------------------- phases
def phase_index_value(phase: float) -> str:
    """Sequence index value of a normalised phase: the shortest string that reads back to the same
    float (``repr``), e.g. ``"0.125"``; sorted numerically by MRML (numeric index type)."""
    return repr(float(phase))


def phases_from_index_values(values: Iterable[str], what: str = "sequence") -> np.ndarray:
    """Floats from numeric index value strings."""
    out: List[float] = []
    for value in values:
        try:
            out.append(float(value))
        except ValueError:
            raise MRMLBridgeError(f"{what}: index value {value!r} is not a number (phase)") from None
    return np.asarray(out, dtype=float)


def sequence_index_values(sequence_node: Any) -> List[str]:
    """All index values of a ``vtkMRMLSequenceNode`` in stored order."""
    return [sequence_node.GetNthIndexValue(i) for i in range(sequence_node.GetNumberOfDataNodes())]


def configure_phase_sequence(sequence_node: Any) -> None:
    """Index name ``phase``, no unit, numeric index type."""
    sequence_node.SetIndexName(PHASE_INDEX_NAME)
    sequence_node.SetIndexUnit("")
    sequence_node.SetIndexType(sequence_node.NumericIndex)


# ---------------------------------------------------------------------------------------- matrices
def vtk_matrix_from_array(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    """A ``vtkMatrix4x4`` holding the 4x4 ``matrix``."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.shape != (4, 4):
        raise MRMLBridgeError(f"expected a 4x4 matrix, got shape {matrix.shape}")
    out = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            out.SetElement(row, column, float(matrix[row, column]))
    return out


def array_from_vtk_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    """The 4x4 float64 array of a ``vtkMatrix4x4``."""
    return np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)], dtype=float)


# ---------------------------------------------------------------------------------------- images
def _vtk_ready(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind not in "iuf" or array.dtype == np.float16:
        raise MRMLBridgeError(f"voxel type {array.dtype} has no VTK equivalent")
    return np.ascontiguousarray(array)


def image_data_from_array(array: np.ndarray, origin: Sequence[float] = (0.0, 0.0, 0.0),
                          spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> vtk.vtkImageData:
    """A ``vtkImageData`` from a ``(z, y, x)`` or ``(z, y, x, c)`` array (deep copy, same voxel type).

    Volume nodes keep their geometry in IJKToRAS, so their image data keeps the neutral origin (0, 0, 0),
    spacing (1, 1, 1) and identity direction (the defaults here). Grid transforms are the exception:
    their displacement grid carries origin and spacing itself (see :mod:`.transforms`).
    """
    array = _vtk_ready(array)
    if array.ndim not in (3, 4):
        raise MRMLBridgeError(f"image array must be (z, y, x) or (z, y, x, c), got shape {array.shape}")
    nz, ny, nx = array.shape[:3]
    components = array.shape[3] if array.ndim == 4 else 1
    image = vtk.vtkImageData()
    image.SetDimensions(nx, ny, nz)
    image.SetOrigin(*[float(v) for v in origin])
    image.SetSpacing(*[float(v) for v in spacing])
    scalars = numpy_support.numpy_to_vtk(array.reshape(-1, components) if components > 1 else array.ravel(),
                                         deep=True)
    scalars.SetNumberOfComponents(components)
    scalars.SetName("ImageScalars")
    image.GetPointData().SetScalars(scalars)
    return image


def array_from_image_data(image: Optional[vtk.vtkImageData], zero_based: bool = True) -> np.ndarray:
    """The voxels of a ``vtkImageData`` as a ``(z, y, x)`` (or ``(z, y, x, c)``) array (a copy).

    With ``zero_based`` the extent must start at 0 (MRML volumes always do; voxel (0, 0, 0) is then
    array index [0, 0, 0]); otherwise the caller accounts for the extent's start."""
    if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None:
        raise MRMLBridgeError("the node has no image data")
    extent = image.GetExtent()
    if zero_based and (extent[0] != 0 or extent[2] != 0 or extent[4] != 0):
        raise MRMLBridgeError(f"image extent {extent} does not start at 0")
    nx, ny, nz = image.GetDimensions()
    scalars = image.GetPointData().GetScalars()
    values = numpy_support.vtk_to_numpy(scalars)
    components = scalars.GetNumberOfComponents()
    shape = (nz, ny, nx) if components == 1 else (nz, ny, nx, components)
    return values.reshape(shape).copy()


__all__ = [
    "ATTRIBUTE_PREFIX",
    "PHASE_INDEX_NAME",
    "MRMLBridgeError",
    "array_from_image_data",
    "array_from_vtk_matrix",
    "configure_phase_sequence",
    "get_attribute",
    "image_data_from_array",
    "phase_index_value",
    "phases_from_index_values",
    "sequence_index_values",
    "set_attribute",
    "vtk_matrix_from_array",
]
