"""numpy triangle meshes <-> ``vtkPolyData`` (RAS mm; no file I/O here).

Used by :mod:`.meshes` and by other packages (metrics, mrml) that need VTK geometry.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray, vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersCore import vtkTriangleFilter

from ..errors import CardiacMotionAtlasError


def _id_array(values: np.ndarray):
    return numpy_to_vtkIdTypeArray(np.ascontiguousarray(values, dtype=np.int64), deep=True)


def mesh_to_polydata(vertices: np.ndarray, faces: np.ndarray,
                     point_data: Optional[Mapping[str, np.ndarray]] = None,
                     field_data: Optional[Mapping[str, np.ndarray]] = None) -> vtkPolyData:
    """A ``vtkPolyData`` of triangles from ``vertices`` ``(n, 3)`` (RAS mm, stored as float64),
    ``faces`` ``(m, 3)`` and per-vertex arrays ``(n,)`` or ``(n, c)`` (point data) plus optional
    field data (whole-mesh values, e.g. the phase)."""
    vertices = np.ascontiguousarray(vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        raise CardiacMotionAtlasError("mesh_to_polydata: face index out of range")
    points = vtkPoints()
    points.SetData(numpy_to_vtk(vertices, deep=True))
    cells = vtkCellArray()
    cells.SetData(_id_array(np.arange(0, 3 * len(faces) + 1, 3)), _id_array(faces.ravel()))
    polydata = vtkPolyData()
    polydata.SetPoints(points)
    polydata.SetPolys(cells)
    for name, values in (point_data or {}).items():
        values = np.asarray(values)
        if values.shape[0] != len(vertices) or values.ndim > 2:
            raise CardiacMotionAtlasError(
                f"mesh_to_polydata: point array {name!r} has shape {values.shape}, expected ({len(vertices)}[, c])")
        if values.dtype == bool:
            values = values.astype(np.uint8)
        array = numpy_to_vtk(np.ascontiguousarray(values), deep=True)
        array.SetName(str(name))
        polydata.GetPointData().AddArray(array)
    for name, values in (field_data or {}).items():
        array = numpy_to_vtk(np.ascontiguousarray(np.atleast_1d(np.asarray(values, dtype=float))), deep=True)
        array.SetName(str(name))
        polydata.GetFieldData().AddArray(array)
    return polydata


def triangulate(polydata: vtkPolyData) -> vtkPolyData:
    """Triangles only (polygons and strips split with ``vtkTriangleFilter``; vertices and lines
    dropped); points and point data are kept in order."""
    triangles = vtkTriangleFilter()
    triangles.SetInputData(polydata)
    triangles.PassVertsOff()
    triangles.PassLinesOff()
    triangles.Update()
    out = vtkPolyData()
    out.ShallowCopy(triangles.GetOutput())
    return out


def _cells(cell_array: vtkCellArray) -> Tuple[np.ndarray, np.ndarray]:
    offsets = vtk_to_numpy(cell_array.GetOffsetsArray()).astype(np.int64)
    connectivity = vtk_to_numpy(cell_array.GetConnectivityArray()).astype(np.int64)
    return offsets, connectivity


def check_cells(polydata: vtkPolyData) -> Optional[str]:
    """A description of the first invalid cell array (bad offsets, point ids out of range), or None.
    Run it before any VTK filter touches data read from an untrusted file."""
    n_points = polydata.GetNumberOfPoints()
    for kind, cells in (("verts", polydata.GetVerts()), ("lines", polydata.GetLines()),
                        ("polys", polydata.GetPolys()), ("strips", polydata.GetStrips())):
        if cells is None or cells.GetNumberOfCells() == 0:
            continue
        offsets, connectivity = _cells(cells)
        if offsets.size == 0 or offsets[0] != 0 or offsets[-1] != connectivity.size or np.any(np.diff(offsets) < 0):
            return f"invalid {kind} offsets"
        if connectivity.size and (connectivity.min() < 0 or connectivity.max() >= n_points):
            return f"{kind} refer to points outside 0..{n_points - 1}"
    return None


def polydata_to_arrays(polydata: vtkPolyData) -> Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
    """``(vertices (n, 3) float64, faces (m, 3) int64, point_data {name: (n,) or (n, c)})``; polygons
    and strips are triangulated first. Non-numeric point arrays are skipped."""
    polys = polydata.GetPolys()
    needs_split = polydata.GetNumberOfStrips() > 0
    if polys is not None and polys.GetNumberOfCells() > 0:
        offsets, _ = _cells(polys)
        needs_split = needs_split or bool(np.any(np.diff(offsets) != 3))
    if needs_split:
        polydata = triangulate(polydata)
        polys = polydata.GetPolys()
    points = polydata.GetPoints()
    vertices = (vtk_to_numpy(points.GetData()).astype(np.float64).reshape(-1, 3).copy()
                if points is not None and polydata.GetNumberOfPoints() else np.zeros((0, 3)))
    faces = np.zeros((0, 3), dtype=np.int64)
    if polys is not None and polys.GetNumberOfCells() > 0:
        faces = _cells(polys)[1].reshape(-1, 3).copy()
    point_data: Dict[str, np.ndarray] = {}
    pd = polydata.GetPointData()
    for index in range(pd.GetNumberOfArrays()):
        array = pd.GetArray(index)
        if array is None or array.GetNumberOfTuples() != len(vertices):
            continue
        name = array.GetName() or f"array_{index}"
        point_data[name] = vtk_to_numpy(array).copy()
    return vertices, faces, point_data


__all__ = ["mesh_to_polydata", "polydata_to_arrays", "triangulate", "check_cells"]
