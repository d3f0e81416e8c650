"""DisplacementField <-> grid transform nodes, and rigid 4x4 matrices <-> linear transform nodes.

Frames and directions (all RAS mm; MRML converts transforms to LPS only in files):

- Displacement field: the library's ``u`` moves the point ``x`` (source phase) to ``x + u(x)`` (target
  phase). It is stored as the **transform to parent** of a ``vtkMRMLGridTransformNode``: a
  ``vtkOrientedGridTransform`` whose displacement grid is a 3-component ``vtkImageData`` with the grid's
  RAS origin and spacing, and whose ``GridDirectionMatrix`` holds the direction cosines of the
  IJK->RAS matrix. Hence ``node.GetTransformToParent().TransformPoint(x) == x + u(x)`` (exact at grid
  points, trilinear in between, like ``DisplacementField.sample(order=1)``): models placed under the
  node (e.g. the ED mesh) are carried to the target phase; volumes under it are resampled by Slicer
  with the inverse (transform from parent, computed iteratively). Outside the grid VTK clamps to the
  boundary displacement whereas ``DisplacementField.sample`` returns 0.
  Note: a displacement field *file* loaded by Slicer becomes the transform *from* parent (ITK files hold
  resampling transforms); :func:`grid_transform_node_to_displacement_field` reads either kind.
- Rigid/affine matrices (e.g. per-slice breath-hold misalignment ``true = M @ nominal``): stored as the
  matrix transform to parent of a ``vtkMRMLLinearTransformNode``, so a slice volume placed under the
  node is shown where ``M`` moves it.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from ..data.displacement_field import DisplacementField
from ..geometry.affine import apply_affine, decompose_ijk_to_ras
from .common import (
    MRMLBridgeError,
    array_from_image_data,
    array_from_vtk_matrix,
    get_attribute,
    set_attribute,
    vtk_matrix_from_array,
)
from .volumes import add_volume_node, volume_node_ijk_to_ras, volume_node_to_array

UNCERTAINTY_REFERENCE_ROLE = "CardiacMotionAtlas.uncertainty"
"""Node reference role from a grid transform node to its uncertainty volume."""


# ---------------------------------------------------------------------------------------- grid transforms
def displacement_field_to_grid_transform(field: DisplacementField) -> Any:
    """A ``vtkOrientedGridTransform`` (linear interpolation) with ``T(x) = x + u(x)`` in RAS mm."""
    origin, direction, spacing = decompose_ijk_to_ras(field.ijk_to_ras)
    vectors = np.moveaxis(field.vectors, 0, -1)  # (3, z, y, x) -> (z, y, x, 3): components R, A, S
    grid = vtk.vtkImageData()
    nz, ny, nx = field.shape_zyx
    grid.SetDimensions(nx, ny, nz)
    grid.SetOrigin(*origin)
    grid.SetSpacing(*spacing)
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(vectors.reshape(-1, 3)), deep=True)
    scalars.SetNumberOfComponents(3)
    scalars.SetName("displacement_mm")
    grid.GetPointData().SetScalars(scalars)
    transform = slicer.vtkOrientedGridTransform()
    transform.SetDisplacementGridData(grid)
    direction4 = np.eye(4)
    direction4[:3, :3] = direction
    transform.SetGridDirectionMatrix(vtk_matrix_from_array(direction4))
    transform.SetInterpolationModeToLinear()
    transform.SetDisplacementScale(1.0)
    transform.SetDisplacementShift(0.0)
    return transform


def displacement_field_to_grid_transform_node(scene: Any, field: DisplacementField, name: Optional[str] = None,
                                              uncertainty_volume: bool = True) -> Any:
    """A ``vtkMRMLGridTransformNode`` in ``scene`` whose transform *to parent* is ``x -> x + u(x)``
    (module docstring). Phases are node attributes; the uncertainty (if any, and ``uncertainty_volume``)
    becomes a scalar volume referenced with role :data:`UNCERTAINTY_REFERENCE_ROLE`."""
    name = name or field.name or "displacement field"
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", name)
    node.SetAndObserveTransformToParent(displacement_field_to_grid_transform(field))
    set_attribute(node, "Kind", "DisplacementField")
    set_attribute(node, "Name", field.name)
    set_attribute(node, "SourcePhase", float(field.source_phase))
    set_attribute(node, "TargetPhase", float(field.target_phase))
    set_attribute(node, "StoredAs", "TransformToParent")
    if field.uncertainty is not None and uncertainty_volume:
        volume = add_volume_node(scene, field.uncertainty, field.ijk_to_ras, f"{name} uncertainty")
        node.SetNodeReferenceID(UNCERTAINTY_REFERENCE_ROLE, volume.GetID())
    return node


def _grid_geometry(transform: Any):
    """(ijk_to_ras, (z, y, x) shape, vectors (3, z, y, x)) of a vtkOrientedGridTransform."""
    grid = transform.GetDisplacementGrid()
    if grid is None:
        raise MRMLBridgeError("the grid transform has no displacement grid")
    vectors = array_from_image_data(grid, zero_based=False).astype(np.float32)
    if vectors.ndim != 4 or vectors.shape[3] != 3:
        raise MRMLBridgeError(f"displacement grid has shape {vectors.shape}, expected 3 components")
    vectors = vectors * transform.GetDisplacementScale() + transform.GetDisplacementShift()
    direction = np.eye(4)
    if transform.GetGridDirectionMatrix() is not None:
        direction = array_from_vtk_matrix(transform.GetGridDirectionMatrix())
    matrix = np.eye(4)
    matrix[:3, :3] = direction[:3, :3] * np.asarray(grid.GetSpacing())[None, :]
    extent = grid.GetExtent()
    start = np.array([extent[0], extent[2], extent[4]], float)
    matrix[:3, 3] = np.asarray(grid.GetOrigin()) + matrix[:3, :3] @ start
    return matrix, vectors.shape[:3], np.moveaxis(vectors, -1, 0)


def sample_transform_displacement(transform: Any, ijk_to_ras: np.ndarray, shape_zyx: Sequence[int]) -> np.ndarray:
    """``T(x) - x`` (RAS mm, ``(3, z, y, x)``) at every voxel centre of a grid, for a
    ``vtkAbstractTransform`` or a transform node (then its transform to world, parents included).
    Works for any transform: linear, grid, B-spline, composite, inverted."""
    if hasattr(transform, "GetTransformToWorld"):
        to_world = vtk.vtkGeneralTransform()
        transform.GetTransformToWorld(to_world)
        transform = to_world
    nz, ny, nx = (int(s) for s in shape_zyx)
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    points = apply_affine(ijk_to_ras, np.stack([i, j, k], axis=-1).astype(float)).reshape(-1, 3)
    source = vtk.vtkPoints()
    source.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points), deep=True))
    moved = vtk.vtkPoints()
    moved.SetDataTypeToDouble()
    transform.TransformPoints(source, moved)
    displacement = numpy_support.vtk_to_numpy(moved.GetData()).reshape(-1, 3) - points
    return np.moveaxis(displacement.reshape(nz, ny, nx, 3), -1, 0).astype(np.float32)


def grid_transform_node_to_displacement_field(node: Any, name: Optional[str] = None) -> DisplacementField:
    """The DisplacementField ``u`` with ``T_to_parent(x) = x + u(x)``.

    When the node stores its grid as the transform to parent (as written by this module) the grid is
    read directly (exact). When it stores it from parent (a displacement field file loaded by Slicer)
    the transform to parent is the inverse: it is sampled on the same grid (Slicer inverts iteratively).
    """
    if node is None or not node.IsA("vtkMRMLTransformNode"):
        raise MRMLBridgeError(f"{node and node.GetName()!r} is not a transform node")
    to_parent = node.GetTransformToParent()
    from_parent = node.GetTransformFromParent()
    if _is_grid(to_parent) and not node.IsAbstractTransformComputedFromInverse(to_parent):
        matrix, _, vectors = _grid_geometry(to_parent)
    elif _is_grid(from_parent) and not node.IsAbstractTransformComputedFromInverse(from_parent):
        matrix, shape, _ = _grid_geometry(from_parent)
        vectors = sample_transform_displacement(to_parent, matrix, shape)
    else:
        raise MRMLBridgeError(f"transform node {node.GetName()!r} holds no grid transform")
    uncertainty = None
    volume = node.GetNodeReference(UNCERTAINTY_REFERENCE_ROLE)
    if volume is not None:
        if np.allclose(volume_node_ijk_to_ras(volume), matrix, atol=1e-6):
            uncertainty = volume_node_to_array(volume).astype(np.float32)
    return DisplacementField(
        vectors, matrix, uncertainty,
        source_phase=float(get_attribute(node, "SourcePhase", 0.0)),
        target_phase=float(get_attribute(node, "TargetPhase", 0.0)),
        name=name or get_attribute(node, "Name") or node.GetName(),
    )


def _is_grid(transform: Any) -> bool:
    return transform is not None and transform.IsA("vtkOrientedGridTransform")


# ---------------------------------------------------------------------------------------- linear transforms
def matrix_to_linear_transform_node(scene: Any, matrix: np.ndarray, name: str) -> Any:
    """A ``vtkMRMLLinearTransformNode`` whose matrix transform *to parent* is the 4x4 RAS ``matrix``."""
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", name)
    node.SetMatrixTransformToParent(vtk_matrix_from_array(matrix))
    return node


def linear_transform_node_to_matrix(node: Any) -> np.ndarray:
    """The 4x4 RAS matrix transform to parent of a linear transform node."""
    if node is None or not node.IsA("vtkMRMLTransformNode") or not node.IsLinear():
        raise MRMLBridgeError(f"{node and node.GetName()!r} is not a linear transform node")
    matrix = vtk.vtkMatrix4x4()
    node.GetMatrixTransformToParent(matrix)
    return array_from_vtk_matrix(matrix)


def slice_transforms_to_nodes(scene: Any, matrices: Mapping[str, np.ndarray], suffix: str = " transform",
                              volumes: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """One linear transform node per slice (``name -> 4x4 RAS matrix``), named ``<name><suffix>``.
    With ``volumes`` (``name -> volume/proxy node``) each volume is placed under its transform."""
    nodes: Dict[str, Any] = {}
    for slice_name, matrix in matrices.items():
        node = matrix_to_linear_transform_node(scene, matrix, f"{slice_name}{suffix}")
        set_attribute(node, "Slice", slice_name)
        nodes[slice_name] = node
        if volumes and slice_name in volumes and volumes[slice_name] is not None:
            volumes[slice_name].SetAndObserveTransformNodeID(node.GetID())
    return nodes


__all__ = [
    "UNCERTAINTY_REFERENCE_ROLE",
    "displacement_field_to_grid_transform",
    "displacement_field_to_grid_transform_node",
    "grid_transform_node_to_displacement_field",
    "linear_transform_node_to_matrix",
    "matrix_to_linear_transform_node",
    "sample_transform_displacement",
    "slice_transforms_to_nodes",
]
