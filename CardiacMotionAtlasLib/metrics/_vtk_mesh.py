"""Private numpy <-> vtkPolyData conversion for triangle meshes (used by metrics/ and analysis/).

Meshes are ``(vertices (n, 3) RAS mm, faces (m, 3) int vertex indices)``. Kept private on purpose:
the public readers/writers live in :mod:`CardiacMotionAtlasLib.io`.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkCommonDataModel import vtkPolyData

from ..data.mesh_sequence import MeshSequence
from ..io.vtk_convert import mesh_to_polydata, polydata_to_arrays

Mesh = Tuple[np.ndarray, np.ndarray]
MeshLike = Union[Mesh, MeshSequence]


def check_mesh(vertices: np.ndarray, faces: np.ndarray, name: str = "mesh") -> Mesh:
    """Validate and return ``(vertices float64 (n, 3), faces int64 (m, 3))``; ValueError otherwise."""
    vertices = np.asarray(vertices, dtype=float)
    faces = np.asarray(faces)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"{name}: vertices must be (n, 3), got shape {vertices.shape}")
    if not np.all(np.isfinite(vertices)):
        raise ValueError(f"{name}: vertices contain non-finite values")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"{name}: faces must be (m, 3) triangles, got shape {faces.shape}")
    if faces.size and not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"{name}: faces must hold integer vertex indices, got dtype {faces.dtype}")
    faces = faces.astype(np.int64)
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise ValueError(f"{name}: face index out of range [0, {len(vertices)})")
    return vertices, faces


def as_mesh(mesh: MeshLike, name: str = "mesh", frame: Optional[int] = None) -> Mesh:
    """``(vertices, faces)`` from a tuple or from a :class:`MeshSequence` (its only frame, or frame
    ``frame``; a multi-frame sequence without ``frame`` is a ValueError, use ``mesh.frame(i)``)."""
    if isinstance(mesh, MeshSequence):
        if frame is None and mesh.n_frames != 1:
            raise ValueError(f"{name}: MeshSequence has {mesh.n_frames} frames; pass one frame (mesh.frame(i))")
        return check_mesh(mesh.vertices[0 if frame is None else frame], mesh.faces, name)
    if not isinstance(mesh, (tuple, list)) or len(mesh) != 2:
        raise ValueError(f"{name}: expected (vertices, faces) or a MeshSequence, got {type(mesh).__name__}")
    return check_mesh(mesh[0], mesh[1], name)


def to_polydata(vertices: np.ndarray, faces: np.ndarray) -> vtkPolyData:
    """A triangle vtkPolyData holding copies of ``vertices`` (mm) and ``faces`` (checked here, ValueError;
    built by the library's one converter, :func:`~CardiacMotionAtlasLib.io.vtk_convert.mesh_to_polydata`)."""
    return mesh_to_polydata(*check_mesh(vertices, faces))


def set_points(polydata: vtkPolyData, vertices: np.ndarray) -> None:
    """Replace the point coordinates (same count) of ``polydata`` in place."""
    vertices = np.ascontiguousarray(vertices, dtype=float)
    if vertices.shape != (polydata.GetNumberOfPoints(), 3):
        raise ValueError(f"expected vertices of shape ({polydata.GetNumberOfPoints()}, 3), got {vertices.shape}")
    polydata.GetPoints().SetData(numpy_to_vtk(vertices, deep=True))
    polydata.GetPoints().Modified()
    polydata.Modified()


def from_polydata(polydata: vtkPolyData) -> Mesh:
    """``(vertices (n, 3), faces (m, 3))`` of a polydata whose polygons are all triangles (ValueError
    otherwise); read by :func:`~CardiacMotionAtlasLib.io.vtk_convert.polydata_to_arrays`."""
    polys = polydata.GetPolys()
    if polys is not None and polys.GetNumberOfCells() and np.any(np.diff(vtk_to_numpy(polys.GetOffsetsArray())) != 3):
        raise ValueError("polydata has non-triangle polygons; triangulate it first (vtkTriangleFilter)")
    vertices, faces, _ = polydata_to_arrays(polydata)
    return vertices, faces


def vtk_array(values: np.ndarray):
    """A deep-copied vtkDataArray of a numpy array (float64 for floats)."""
    return numpy_to_vtk(np.ascontiguousarray(values), deep=True)


__all__: list = []
