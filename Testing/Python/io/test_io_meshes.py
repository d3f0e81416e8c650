"""Meshes: round trips in the four formats, numpy<->vtk conversion, triangulation, sequences, errors."""

import base64
import struct

import numpy as np
import pytest
from vtkmodules.vtkCommonCore import vtkPoints
from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData
from vtkmodules.vtkFiltersSources import vtkSphereSource
from vtkmodules.vtkIOXML import vtkXMLPolyDataReader

from CardiacMotionAtlasLib.data import MeshSequence
from CardiacMotionAtlasLib.errors import InputFileError
from CardiacMotionAtlasLib.io.meshes import (
    read_mesh,
    read_mesh_sequence,
    read_polydata,
    write_mesh,
    write_mesh_sequence,
    write_polydata,
)
from CardiacMotionAtlasLib.io.vtk_convert import mesh_to_polydata, polydata_to_arrays
from io_helpers import assert_names_file, files_in


def _sphere_sequence(n_frames=3) -> MeshSequence:
    source = vtkSphereSource()
    source.SetThetaResolution(10)
    source.SetPhiResolution(7)
    source.SetRadius(20.0)
    source.Update()
    vertices, faces, _ = polydata_to_arrays(source.GetOutput())
    rng = np.random.default_rng(3)
    frames = np.stack([vertices * (1 + 0.05 * t) + [10.25, -20.5, 30.125] for t in range(n_frames)])
    return MeshSequence(frames, faces, phases=np.arange(n_frames) / n_frames * 0.9, name="lv",
                        point_data={"displacement_mm": rng.random((n_frames, len(vertices))),
                                    "velocity": rng.random((n_frames, len(vertices), 3))})


def _triangles(vertices, faces):
    """Faces as a sorted set of coordinate triples (rounded), independent of vertex numbering."""
    return sorted(tuple(sorted(tuple(np.round(vertices[i], 3)) for i in face)) for face in faces)


def test_numpy_vtk_conversion_round_trip():
    mesh = _sphere_sequence(1)
    point_data = {k: v[0] for k, v in mesh.point_data.items()}
    polydata = mesh_to_polydata(mesh.vertices[0], mesh.faces, point_data)
    assert polydata.GetNumberOfPoints() == mesh.n_vertices
    assert polydata.GetNumberOfPolys() == len(mesh.faces)
    vertices, faces, data = polydata_to_arrays(polydata)
    np.testing.assert_array_equal(vertices, mesh.vertices[0])
    np.testing.assert_array_equal(faces, mesh.faces)
    np.testing.assert_array_equal(data["velocity"], point_data["velocity"])


@pytest.mark.parametrize("suffix", [".vtp", ".vtk"])
def test_sequence_round_trip_with_point_data(tmp_path, suffix):
    mesh = _sphere_sequence()
    paths = write_mesh_sequence(mesh, tmp_path, suffix=suffix)
    assert [p.name for p in paths] == [f"lv_{i:03d}{suffix}" for i in range(3)]
    assert files_in(tmp_path) == [p.name for p in paths]
    back = read_mesh_sequence(tmp_path)
    np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-12)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    np.testing.assert_allclose(back.phases, mesh.phases)
    for key, values in mesh.point_data.items():
        np.testing.assert_allclose(back.point_data[key], values)
    assert back.name == "lv"


def test_vtp_point_arrays_are_vtk_point_arrays(tmp_path):
    mesh = _sphere_sequence(1)
    path = write_mesh(mesh, tmp_path / "m.vtp")
    reader = vtkXMLPolyDataReader()
    reader.SetFileName(str(path))
    reader.Update()
    array = reader.GetOutput().GetPointData().GetArray("velocity")
    assert array is not None and array.GetNumberOfComponents() == 3
    assert reader.GetOutput().GetFieldData().GetArray("phase").GetTuple1(0) == pytest.approx(0.0)


def test_ply_round_trip_keeps_vertices_and_faces(tmp_path):
    mesh = _sphere_sequence(2)
    write_mesh_sequence(mesh, tmp_path, suffix=".ply")
    back = read_mesh_sequence(sorted(tmp_path.glob("*.ply")))
    np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-4)  # PLY stores float32
    np.testing.assert_array_equal(back.faces, mesh.faces)
    np.testing.assert_allclose(back.phases, [0.0, 0.5])  # PLY has no phase: index / n


def test_stl_round_trip_keeps_the_triangles(tmp_path):
    mesh = _sphere_sequence(1)
    path = write_mesh(mesh, tmp_path / "m.stl")
    back = read_mesh(path)
    assert back.n_vertices == mesh.n_vertices  # STL duplicates vertices; the reader merges them again
    assert len(back.faces) == len(mesh.faces)
    assert _triangles(back.vertices[0], back.faces) == _triangles(mesh.vertices[0], mesh.faces)


def test_quads_are_triangulated_on_read(tmp_path):
    points = vtkPoints()
    for xyz in [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0)]:
        points.InsertNextPoint(xyz)
    cells = vtkCellArray()
    cells.InsertNextCell(4, [0, 1, 2, 3])
    polydata = vtkPolyData()
    polydata.SetPoints(points)
    polydata.SetPolys(cells)
    path = write_polydata(polydata, tmp_path / "quad.vtk")
    mesh = read_mesh(path)
    assert mesh.faces.shape == (2, 3)
    assert set(mesh.faces.ravel()) == {0, 1, 2, 3}


def test_frames_with_different_connectivity_are_refused(tmp_path):
    mesh = _sphere_sequence(2)
    write_mesh(mesh, tmp_path / "lv_000.vtp", 0)
    other = MeshSequence(mesh.vertices[1:], mesh.faces[::-1], name="lv")
    bad = write_mesh(other, tmp_path / "lv_001.vtp")
    with pytest.raises(InputFileError) as info:
        read_mesh_sequence(tmp_path)
    assert_names_file(info.value, bad)
    assert "connectivity" in str(info.value)


def test_out_of_range_cells_are_refused_before_vtk_filters_run(tmp_path):
    path = write_mesh(_sphere_sequence(1), tmp_path / "m.vtk", binary=False)
    assert read_polydata(path).GetNumberOfPolys() > 0
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("POLYGONS"))
    cell = lines[start + 1].split()
    assert cell[0] == "3"
    lines[start + 1] = " ".join(cell[:3] + ["999"])  # a point id far beyond the point count
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError) as info:
        read_polydata(path)
    assert_names_file(info.value, path)
    assert "outside" in str(info.value)


@pytest.mark.parametrize("content", [b"", b"garbage", b"<?xml version='1.0'?><VTKFile type='PolyData'>"])
def test_unreadable_vtp(tmp_path, content):
    path = tmp_path / "bad.vtp"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as info:
        read_mesh(path)
    assert_names_file(info.value, path)


def test_unknown_extension(tmp_path):
    path = tmp_path / "m.obj"
    path.write_text("v 0 0 0\n")
    with pytest.raises(InputFileError) as info:
        read_mesh(path)
    assert "unsupported mesh format" in str(info.value)


# --------------------------------------------------------------------------- pre-flight checks
# VTK's PLY and legacy readers crash the process (not raise) on some corrupt files: these files are
# refused before VTK sees them.


def test_truncated_binary_ply_is_refused(tmp_path):
    path = write_mesh(_sphere_sequence(1), tmp_path / "m.ply")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(InputFileError) as info:
        read_mesh(path)
    assert_names_file(info.value, path)
    assert "PLY body ends" in str(info.value)


def test_ply_face_index_out_of_range_is_refused(tmp_path):
    path = write_mesh(_sphere_sequence(1), tmp_path / "m.ply", binary=False)
    lines = path.read_text().splitlines()
    face = next(i for i, line in enumerate(lines) if line.startswith("3 "))
    lines[face] = "3 0 1 100000"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError) as info:
        read_mesh(path)
    assert "outside" in str(info.value)


def test_ply_without_vertex_indices_is_refused(tmp_path):
    path = write_mesh(_sphere_sequence(1), tmp_path / "m.ply")
    path.write_bytes(path.read_bytes().replace(b"vertex_indices", b"vertex_indicez", 1))
    with pytest.raises(InputFileError) as info:
        read_mesh(path)
    assert "vertex_indices" in str(info.value)


@pytest.mark.parametrize("old, new", [(b"Version 4.2", b"Version 2147483648"), (b"POINTS 52", b"POINTS 99"),
                                      (b"POLYGONS 100", b"POLYGONS 101")])
def test_corrupt_legacy_vtk_header_is_refused(tmp_path, old, new):
    path = write_mesh(_sphere_sequence(1), tmp_path / "m.vtk")
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))
    with pytest.raises(InputFileError) as info:
        read_mesh(path)
    assert_names_file(info.value, path)


def test_vtp_compression_header_beyond_the_file_is_refused(tmp_path):
    path = write_mesh(_sphere_sequence(1), tmp_path / "m.vtp")
    data = bytearray(path.read_bytes())
    assert b'<AppendedData encoding="base64">' in data
    start = data.index(b"_", data.index(b"<AppendedData")) + 1
    header = base64.b64encode(struct.pack("<3I", 10**9, 32768, 8))  # a billion blocks of 32 kB
    data[start: start + len(header)] = header
    path.write_bytes(bytes(data))
    with pytest.raises(InputFileError) as info:
        read_mesh(path)
    assert "compressed blocks" in str(info.value)


# --------------------------------------------------------------------------- coordinate system tags (as 3D Slicer)


@pytest.mark.parametrize("suffix", [".vtp", ".vtk", ".ply", ".stl"])
def test_written_files_are_tagged_ras_like_slicer_expects(tmp_path, suffix):
    path = write_mesh(_sphere_sequence(1), tmp_path / f"m{suffix}", binary=suffix != ".stl")
    assert b"SPACE=RAS" in path.read_bytes() or (suffix == ".vtp" and b'Name="SPACE"' in path.read_bytes())


@pytest.mark.parametrize("header, expected_sign", [(b"SPACE=LPS", -1), (b"SPACE=RAS", 1), (b"no tag", -1)])
def test_lps_and_untagged_files_are_converted_to_ras(tmp_path, header, expected_sign):
    mesh = _sphere_sequence(1)
    path = write_mesh(mesh, tmp_path / "m.vtk")
    data = path.read_bytes().replace(b"CardiacMotionAtlas output. SPACE=RAS", b"other tool " + header, 1)
    path.write_bytes(data)
    back = read_mesh(path)
    np.testing.assert_allclose(back.vertices[0, :, :2], expected_sign * mesh.vertices[0, :, :2], atol=1e-9)
    np.testing.assert_allclose(back.vertices[0, :, 2], mesh.vertices[0, :, 2], atol=1e-9)
    if header == b"no tag":
        as_ras = read_mesh(path, untagged_space="RAS")
        np.testing.assert_allclose(as_ras.vertices, mesh.vertices, atol=1e-9)


def test_vtp_string_array_holding_more_strings_than_announced_is_refused(tmp_path):
    path = write_mesh(_sphere_sequence(1), tmp_path / "m.vtp", binary=False)
    text = path.read_bytes()
    assert b"82 65 83 0" in text  # the SPACE=RAS tag, as NUL-terminated bytes
    path.write_bytes(text.replace(b"82 65 83 0", b"82 0 83 0", 1))  # VTK itself would crash on this
    with pytest.raises(InputFileError) as info:
        read_mesh(path)
    assert "string array holds 2 strings" in str(info.value)


def test_vtp_connectivity_beyond_the_points_is_refused(tmp_path):
    path = write_mesh(_sphere_sequence(1), tmp_path / "m.vtp", binary=False)
    text = path.read_text()
    start = text.index('Name="connectivity"', text.index("<Polys>"))
    body = text.index(">", start) + 1
    first = text[body:].split()[0]
    path.write_text(text[:body] + text[body:].replace(first, "99999", 1))
    with pytest.raises(InputFileError) as info:
        read_mesh(path)
    assert "outside" in str(info.value)
