"""The private numpy <-> vtkPolyData helper."""

import numpy as np
import pytest

from CardiacMotionAtlasLib.metrics._vtk_mesh import as_mesh, check_mesh, from_polydata, set_points, to_polydata


def test_round_trip_and_point_update():
    vertices = np.random.default_rng(0).normal(size=(5, 3))
    faces = np.array([[0, 1, 2], [2, 3, 4], [0, 2, 4]])
    polydata = to_polydata(vertices, faces)
    assert polydata.GetNumberOfPoints() == 5 and polydata.GetNumberOfPolys() == 3
    v, f = from_polydata(polydata)
    np.testing.assert_array_equal(v, vertices)
    np.testing.assert_array_equal(f, faces)
    set_points(polydata, vertices + 1.0)
    np.testing.assert_array_equal(from_polydata(polydata)[0], vertices + 1.0)
    with pytest.raises(ValueError):
        set_points(polydata, vertices[:4])


def test_validation():
    with pytest.raises(ValueError):
        check_mesh(np.zeros((3, 3)), np.array([[0, 1, 3]]))
    with pytest.raises(ValueError):
        check_mesh(np.zeros((3, 3)), np.array([[0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError):
        check_mesh(np.full((3, 3), np.nan), np.array([[0, 1, 2]]))
    with pytest.raises(ValueError):
        as_mesh(np.zeros((3, 3)))


def test_mesh_sequence_frames():
    from CardiacMotionAtlasLib.data import MeshSequence

    vertices = np.random.default_rng(1).normal(size=(2, 4, 3))
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    with pytest.raises(ValueError, match="frames"):
        as_mesh(MeshSequence(vertices, faces))
    np.testing.assert_array_equal(as_mesh(MeshSequence(vertices, faces), frame=1)[0], vertices[1])
    np.testing.assert_array_equal(as_mesh(MeshSequence(vertices, faces).frame(1))[0], vertices[1])
