"""Helpers of the MRML bridge tests: skip cleanly without slicer-core, small comparisons."""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np
import pytest


def slicer_core_missing_reason():
    """``None`` when the real MRML classes (``slicer-core`` or 3D Slicer) import, else why not."""
    if importlib.util.find_spec("slicer") is None:
        return "slicer-core is not installed (pip install slicer-core): the MRML bridge needs the real MRML classes"
    try:
        slicer = importlib.import_module("slicer")
    except Exception as error:  # a broken binary wheel must skip, not crash collection
        return f"slicer-core does not import: {type(error).__name__}: {error}"
    if not hasattr(slicer, "vtkMRMLScene"):
        return "the installed 'slicer' package is not slicer-core (no vtkMRMLScene)"
    return None


def require_slicer_core() -> None:
    """Skip the calling test module when slicer-core is unavailable."""
    reason = slicer_core_missing_reason()
    if reason is not None:
        pytest.skip(reason, allow_module_level=True)


def vtk_matrix_to_array(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def ijk_to_ras_of(volume_node) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return vtk_matrix_to_array(matrix)


def voxels_of(volume_node) -> np.ndarray:
    from vtk.util import numpy_support

    image = volume_node.GetImageData()
    nx, ny, nz = image.GetDimensions()
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(nz, ny, nx)


def nodes_by_class(scene, class_name):
    collection = scene.GetNodesByClass(class_name)
    return [collection.GetItemAsObject(i) for i in range(collection.GetNumberOfItems())]
