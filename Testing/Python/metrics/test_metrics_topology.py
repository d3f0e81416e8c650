"""Mesh topology: spheres, open meshes, tori, non-manifold and non-orientable cases."""

import numpy as np
import pytest
from vtkmodules.vtkFiltersSources import vtkSphereSource

from CardiacMotionAtlasLib.data import MeshSequence
from CardiacMotionAtlasLib.metrics._vtk_mesh import from_polydata
from CardiacMotionAtlasLib.metrics.topology import is_closed_mesh, mesh_topology


def sphere(radius=10.0, resolution=24):
    source = vtkSphereSource()
    source.SetRadius(radius)
    source.SetThetaResolution(resolution)
    source.SetPhiResolution(resolution)
    source.Update()
    return from_polydata(source.GetOutput())


def torus(n_u=24, n_v=12, big=20.0, small=6.0):
    u, v = np.meshgrid(np.arange(n_u) * 2 * np.pi / n_u, np.arange(n_v) * 2 * np.pi / n_v, indexing="ij")
    vertices = np.stack(
        [(big + small * np.cos(v)) * np.cos(u), (big + small * np.cos(v)) * np.sin(u), small * np.sin(v)], -1
    ).reshape(-1, 3)
    index = np.arange(n_u * n_v).reshape(n_u, n_v)
    a = index
    b = np.roll(index, -1, axis=0)
    c = np.roll(np.roll(index, -1, axis=0), -1, axis=1)
    d = np.roll(index, -1, axis=1)
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return vertices, faces


def tetrahedron(offset=(0.0, 0.0, 0.0)):
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]) + np.asarray(offset)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    return vertices, faces


def test_sphere_is_closed_manifold_genus_zero():
    topology = mesh_topology(sphere())
    assert topology.is_closed and topology.is_manifold and topology.is_consistently_oriented
    assert topology.is_orientable
    assert topology.euler_characteristic == 2 and topology.genus == 0 and topology.n_components == 1
    assert topology.n_vertices - topology.n_edges + topology.n_faces == 2
    assert is_closed_mesh(MeshSequence(sphere()[0][None], sphere()[1]))


def test_sphere_with_deleted_face_is_open():
    vertices, faces = sphere()
    topology = mesh_topology((vertices, faces[1:]))
    assert not topology.is_closed and topology.n_boundary_edges == 3
    assert topology.is_manifold  # a disc: manifold with boundary
    assert topology.euler_characteristic == 1 and topology.genus is None


def test_torus_has_chi_zero_and_genus_one():
    topology = mesh_topology(torus())
    assert topology.is_closed and topology.is_manifold and topology.is_consistently_oriented
    assert topology.euler_characteristic == 0 and topology.genus == 1


def test_two_components():
    (va, fa), (vb, fb) = sphere(), tetrahedron(offset=(50, 0, 0))
    topology = mesh_topology((np.concatenate([va, vb]), np.concatenate([fa, fb + len(va)])))
    assert topology.n_components == 2 and topology.euler_characteristic == 4 and topology.genus == 0


def test_bow_tie_vertex_is_not_vertex_manifold():
    # two tetrahedra sharing only vertex 0 (the second is the point reflection of the first)
    va, fa = tetrahedron()
    vb = -va[1:]
    fb = np.array([0, 4, 5, 6])[fa][:, ::-1]  # reflection flips the winding: flip it back
    vertices, faces = np.concatenate([va, vb]), np.concatenate([fa, fb])
    topology = mesh_topology((vertices, faces))
    assert topology.is_consistently_oriented
    assert topology.is_closed and topology.is_edge_manifold
    assert not topology.is_vertex_manifold and topology.n_nonmanifold_vertices == 1
    assert not topology.is_manifold and topology.genus is None


def test_edge_shared_by_three_faces_is_not_edge_manifold():
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]])
    faces = np.array([[0, 1, 2], [1, 0, 3], [0, 1, 4]])
    topology = mesh_topology((vertices, faces))
    assert not topology.is_edge_manifold and topology.n_nonmanifold_edges == 1
    assert not topology.is_manifold and not topology.is_closed


def test_flipped_face_is_inconsistent_but_orientable():
    vertices, faces = sphere()
    faces = faces.copy()
    faces[5] = faces[5, ::-1]
    topology = mesh_topology((vertices, faces))
    assert not topology.is_consistently_oriented and topology.is_orientable
    assert topology.genus == 0


def test_moebius_strip_is_not_orientable():
    n = 20
    angle = np.arange(n) * 2 * np.pi / n
    centre = np.stack([10 * np.cos(angle), 10 * np.sin(angle), 0 * angle], -1)
    offset = np.stack([np.cos(angle / 2) * np.cos(angle), np.cos(angle / 2) * np.sin(angle), np.sin(angle / 2)], -1)
    vertices = np.concatenate([centre + 2 * offset, centre - 2 * offset])  # top i, bottom n + i
    i = np.arange(n)
    top, bottom = i, n + i
    next_top, next_bottom = (i + 1) % n, n + (i + 1) % n
    next_top[-1], next_bottom[-1] = n, 0  # the half twist swaps the edges
    faces = np.concatenate([np.stack([top, bottom, next_bottom], 1), np.stack([top, next_bottom, next_top], 1)])
    topology = mesh_topology((vertices, faces))
    assert topology.is_manifold and not topology.is_closed
    assert not topology.is_orientable and not topology.is_consistently_oriented
    assert topology.euler_characteristic == 0 and topology.n_boundary_edges == 2 * n


def test_degenerate_and_bad_input():
    vertices, faces = tetrahedron()
    topology = mesh_topology((vertices, np.concatenate([faces, [[0, 0, 1]]])))
    assert topology.n_degenerate_faces == 1 and not topology.is_manifold
    with pytest.raises(ValueError):
        mesh_topology((vertices, np.zeros((0, 3), dtype=int)))
    with pytest.raises(ValueError):
        mesh_topology((vertices, faces[:, :2]))
