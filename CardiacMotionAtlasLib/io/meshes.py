"""Triangle meshes <-> files (VTK): ``.vtp`` (XML), ``.vtk`` (legacy polydata), ``.ply``, ``.stl``.

Coordinates: meshes in the library are RAS mm. Files carry their coordinate system the way 3D Slicer
writes and reads it: ``SPACE=RAS``/``SPACE=LPS`` in the legacy-VTK and STL header, a PLY comment, or a
``SPACE`` string field array in ``.vtp``. The writers tag ``SPACE=RAS``; the readers convert ``SPACE=LPS``
files (x and y negated, with the active normals and vectors) and, like Slicer, take untagged files as
LPS unless ``untagged_space="RAS"`` is passed.
A :class:`MeshSequence` is stored as one file per frame, ``<name>_000.vtp``, ``<name>_001.vtp``, ...;
point-data arrays become VTK point arrays and the phase is a field-data array ``phase`` (``.vtp`` and
``.vtk`` only; PLY and STL keep geometry only, and STL duplicates shared vertices, which the reader
merges again). Before VTK reads a file, :mod:`.mesh_preflight` refuses files that announce more than they
hold (some VTK readers crash the process on those); after reading, cells are validated and the mesh is
triangulated (``vtkTriangleFilter``).
"""

from __future__ import annotations

import contextlib
import re
import threading
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Union

import numpy as np
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkCommonCore import vtkOutputWindow, vtkStringArray, vtkStringOutputWindow
from vtkmodules.vtkCommonDataModel import vtkFieldData, vtkPolyData
from vtkmodules.vtkIOGeometry import vtkSTLReader, vtkSTLWriter
from vtkmodules.vtkIOLegacy import vtkPolyDataReader, vtkPolyDataWriter
from vtkmodules.vtkIOPLY import vtkPLYReader, vtkPLYWriter
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader, vtkXMLPolyDataWriter

from ..data.mesh_sequence import MeshSequence
from ..errors import InputFileError
from .atomic import atomic_path
from ._common import PathLike, check_finite, output_error, reading, require_dir, require_file
from .mesh_preflight import check_mesh_file
from .vtk_convert import check_cells, mesh_to_polydata, polydata_to_arrays, triangulate

MESH_SUFFIXES = (".vtp", ".vtk", ".ply", ".stl")
_LOCK = threading.Lock()

def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise InputFileError(path, f"unsupported mesh format {suffix!r}; expected one of {MESH_SUFFIXES}")
    return suffix


@contextlib.contextmanager
def _vtk_messages() -> Iterator[vtkStringOutputWindow]:
    """Collect VTK error messages (instead of printing them) while reading."""
    with _LOCK:
        previous = vtkOutputWindow.GetInstance()
        window = vtkStringOutputWindow()
        vtkOutputWindow.SetInstance(window)
        try:
            yield window
        finally:
            vtkOutputWindow.SetInstance(previous)


def _reader(suffix: str):
    if suffix == ".vtp":
        return vtkXMLPolyDataReader()
    if suffix == ".vtk":
        reader = vtkPolyDataReader()
        reader.ReadAllScalarsOn()
        reader.ReadAllVectorsOn()
        reader.ReadAllFieldsOn()
        return reader
    if suffix == ".ply":
        return vtkPLYReader()
    reader = vtkSTLReader()
    reader.MergingOn()
    return reader


_SPACE = re.compile(r"SPACE\s*=\s*(RAS|LPS)", re.IGNORECASE)
SPACE_TAG = "SPACE=RAS"


def _file_space(reader, polydata: vtkPolyData, suffix: str) -> Optional[str]:
    """``"RAS"``/``"LPS"`` as tagged in the file (see module docstring), or None."""
    texts: List[str] = []
    if suffix in (".vtk", ".stl"):
        texts.append(reader.GetHeader() or "")
    elif suffix == ".ply":
        comments = reader.GetComments()
        texts.extend(comments.GetValue(i) for i in range(comments.GetNumberOfValues()) if comments is not None)
    else:
        field = polydata.GetFieldData()
        array = field.GetAbstractArray("SPACE") if field is not None else None
        if array is not None and array.GetNumberOfValues() > 0:
            texts.append("SPACE=" + str(array.GetVariantValue(0).ToString()))
    for text in texts:
        match = _SPACE.search(text)
        if match:
            return match.group(1).upper()
    return None


def _lps_to_ras(polydata: vtkPolyData) -> None:
    """Negate x and y of the points and of the active normals/vectors, in place."""
    arrays = [polydata.GetPoints().GetData(), polydata.GetPointData().GetNormals(),
              polydata.GetPointData().GetVectors()]
    for array in arrays:
        if array is not None and array.GetNumberOfComponents() == 3:
            values = vtk_to_numpy(array)
            values[:, :2] *= -1
            array.Modified()
    polydata.GetPoints().Modified()


def read_polydata(path: PathLike, untagged_space: str = "LPS") -> vtkPolyData:
    """Read a mesh file as a validated, triangulated ``vtkPolyData`` in RAS mm (files tagged
    ``SPACE=LPS``, or untagged with ``untagged_space="LPS"``, are converted). Raises
    :class:`InputFileError` naming the file when VTK reports an error, the file holds no triangles,
    cells refer to missing points, or coordinates are not finite."""
    if untagged_space not in ("RAS", "LPS"):
        raise ValueError(f"untagged_space must be 'RAS' or 'LPS', got {untagged_space!r}")
    path = require_file(path)
    suffix = _suffix(path)
    with reading(path):
        check_mesh_file(path, suffix)
        with _vtk_messages() as window:
            reader = _reader(suffix)
            if suffix == ".vtk" and hasattr(reader, "SetFileName"):
                reader.SetFileName(str(path))
                if not reader.IsFilePolyData():
                    raise InputFileError(path, "legacy VTK file does not hold POLYDATA")
            reader.SetFileName(str(path))
            reader.Update()
            messages = window.GetOutput()
        if "ERROR" in messages or reader.GetErrorCode() != 0:
            detail = " ".join(line for line in messages.splitlines() if line and not line.startswith("ERROR: In"))
            detail = detail[:300] or f"error code {reader.GetErrorCode()}"
            raise InputFileError(path, f"VTK cannot read it ({detail})")
        polydata = vtkPolyData()
        polydata.DeepCopy(reader.GetOutput())
        if polydata.GetNumberOfPoints() == 0:
            raise InputFileError(path, "mesh has no points")
        check_finite(vtk_to_numpy(polydata.GetPoints().GetData()), path)
        if (_file_space(reader, polydata, suffix) or untagged_space) == "LPS":
            _lps_to_ras(polydata)
        problem = check_cells(polydata)
        if problem:
            raise InputFileError(path, problem)
        polydata = triangulate(polydata)
        if polydata.GetNumberOfPolys() == 0:
            raise InputFileError(path, "mesh has no triangles")
        return polydata


def _writer(suffix: str, binary: bool):
    """A VTK writer for ``suffix`` that tags the file ``SPACE=RAS`` (``.vtp``: see write_polydata)."""
    if suffix == ".vtp":
        writer = vtkXMLPolyDataWriter()
        writer.SetDataModeToAppended() if binary else writer.SetDataModeToAscii()
        return writer
    if suffix == ".vtk":
        writer = vtkPolyDataWriter()
        writer.SetFileVersion(42)  # readable by VTK 8 and Slicer 4 too
        writer.SetHeader(f"CardiacMotionAtlas output. {SPACE_TAG}")
    elif suffix == ".ply":
        writer = vtkPLYWriter()
        writer.AddComment(SPACE_TAG)
    else:
        writer = vtkSTLWriter()
        writer.SetHeader(f"CardiacMotionAtlas output. {SPACE_TAG}")
    writer.SetFileTypeToBinary() if binary else writer.SetFileTypeToASCII()
    return writer


def _tagged(polydata: vtkPolyData) -> vtkPolyData:
    """A shallow copy of ``polydata`` with a ``SPACE`` = ``RAS`` string field array (``.vtp`` tag)."""
    tagged = vtkPolyData()
    tagged.ShallowCopy(polydata)
    field = vtkFieldData()
    field.ShallowCopy(polydata.GetFieldData())
    field.RemoveArray("SPACE")
    space = vtkStringArray()
    space.SetName("SPACE")
    space.InsertNextValue("RAS")
    field.AddArray(space)
    tagged.SetFieldData(field)
    return tagged


def write_polydata(polydata: vtkPolyData, path: PathLike, binary: bool = True) -> Path:
    """Write ``polydata`` (RAS mm) atomically, tagged ``SPACE=RAS``; the format comes from the extension
    (``MESH_SUFFIXES``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise output_error(path, f"mesh output must end with one of {MESH_SUFFIXES}")
    with atomic_path(path) as tmp:
        with _vtk_messages() as window:
            writer = _writer(suffix, binary)
            writer.SetFileName(str(tmp))
            writer.SetInputData(_tagged(polydata) if suffix == ".vtp" else polydata)
            ok = writer.Write()
            messages = window.GetOutput()
        if ok != 1 or "ERROR" in messages:
            raise output_error(path, f"VTK cannot write it ({' '.join(messages.split())[:300]})")
    return path


def _read_frame(path: Path, untagged_space: str = "LPS"):
    """(vertices, faces, point_data, phase or None) of one file."""
    polydata = read_polydata(path, untagged_space)
    with reading(path):
        vertices, faces, point_data = polydata_to_arrays(polydata)
        phase = None
        field = polydata.GetFieldData()
        array = field.GetArray("phase") if field is not None else None
        if array is not None and array.GetNumberOfTuples() >= 1:
            phase = float(array.GetTuple1(0))
            if not (np.isfinite(phase) and 0 <= phase < 1):
                raise InputFileError(path, f"field 'phase' = {phase} outside [0, 1)")
        return vertices, faces, point_data, phase


def read_mesh(path: PathLike, name: Optional[str] = None, untagged_space: str = "LPS") -> MeshSequence:
    """One mesh file as a one-frame :class:`MeshSequence`; point arrays become ``(1, n[, c])`` point
    data, and a field array ``phase`` (if any) the phase."""
    path = Path(path)
    vertices, faces, point_data, phase = _read_frame(path, untagged_space)
    return MeshSequence(vertices[None], faces, None if phase is None else np.array([phase]),
                        name=name if name is not None else path.stem,
                        point_data={k: v[None] for k, v in point_data.items()})


def write_mesh(mesh: MeshSequence, path: PathLike, frame: int = 0, binary: bool = True) -> Path:
    """Write frame ``frame`` of ``mesh`` (vertices, faces, its point data, and its phase as field data)."""
    point_data = {k: np.asarray(v)[frame] for k, v in mesh.point_data.items()}
    polydata = mesh_to_polydata(mesh.vertices[frame], mesh.faces, point_data,
                                {"phase": [float(mesh.phases[frame])]})
    return write_polydata(polydata, path, binary)


def mesh_frame_paths(folder: PathLike, name: str, n_frames: int, suffix: str = ".vtp") -> List[Path]:
    """``folder/<name>_000<suffix>`` ... for ``n_frames`` frames."""
    return [Path(folder) / f"{name}_{index:03d}{suffix}" for index in range(n_frames)]


def write_mesh_sequence(mesh: MeshSequence, folder: PathLike, name: Optional[str] = None,
                        suffix: str = ".vtp", binary: bool = True) -> List[Path]:
    """Write every frame as ``folder/<name>_<frame:03d><suffix>``; returns the paths."""
    name = name or mesh.name or "mesh"
    paths = mesh_frame_paths(folder, name, mesh.n_frames, suffix)
    for frame, path in enumerate(paths):
        write_mesh(mesh, path, frame, binary)
    return paths


def _frame_files(folder: Path) -> List[Path]:
    pattern = re.compile(r".*_(\d+)\.(vtp|vtk|ply|stl)$", re.IGNORECASE)
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and pattern.match(p.name)]
    if not files:
        raise InputFileError(folder, "no mesh frame files <name>_<nnn>.vtp|vtk|ply|stl")
    return sorted(files, key=lambda p: (p.name.rsplit("_", 1)[0], int(pattern.match(p.name).group(1))))


def read_mesh_sequence(paths: Union[PathLike, Sequence[PathLike]], phases: Optional[Sequence[float]] = None,
                       name: Optional[str] = None, untagged_space: str = "LPS") -> MeshSequence:
    """Read frames (a list of files, or a folder of ``<name>_<nnn>.<ext>`` files) into one
    :class:`MeshSequence`. All frames must have the same vertex count and faces; phases come from
    ``phases``, else from each file's ``phase`` field, else ``index / n``."""
    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        paths = _frame_files(require_dir(paths))
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputFileError(None, "read_mesh_sequence: no files given")
    frames = [_read_frame(p, untagged_space) for p in paths]
    vertices0, faces0 = frames[0][0], frames[0][1]
    for path, (vertices, faces, _, _) in zip(paths[1:], frames[1:]):
        if len(vertices) != len(vertices0) or not np.array_equal(faces, faces0):
            raise InputFileError(path, f"{len(vertices)} vertices / {len(faces)} faces differ from "
                                       f"{paths[0].name} ({len(vertices0)} / {len(faces0)}): "
                                       "frames must share connectivity")
    n = len(frames)
    if phases is None:
        stored = [frame[3] for frame in frames]
        phases = stored if all(p is not None for p in stored) else np.arange(n) / n
    point_data = {}
    for key in sorted(set.intersection(*(set(frame[2]) for frame in frames))):
        arrays = [frame[2][key] for frame in frames]
        if len({a.shape for a in arrays}) == 1:
            point_data[key] = np.stack(arrays)
    return MeshSequence(np.stack([frame[0] for frame in frames]), faces0, np.asarray(phases, dtype=float),
                        name=name or paths[0].stem.rsplit("_", 1)[0], point_data=point_data)


__all__ = [
    "MESH_SUFFIXES",
    "read_polydata",
    "write_polydata",
    "read_mesh",
    "write_mesh",
    "write_mesh_sequence",
    "read_mesh_sequence",
    "mesh_frame_paths",
]
