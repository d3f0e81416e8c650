"""Mesh surface distances against analytic cases (spheres, planes, single triangles)."""

import numpy as np
import pytest
from vtkmodules.vtkFiltersSources import vtkSphereSource

from CardiacMotionAtlasLib.data import MeshSequence
from CardiacMotionAtlasLib.metrics._vtk_mesh import from_polydata
from CardiacMotionAtlasLib.metrics.surface import (
    chamfer_distance,
    directed_surface_distances,
    hausdorff95,
    mean_surface_distance,
    point_to_surface_distance,
    sample_surface,
)


def sphere(radius, resolution=64, centre=(0.0, 0.0, 0.0)):
    source = vtkSphereSource()
    source.SetRadius(radius)
    source.SetCenter(*centre)
    source.SetThetaResolution(resolution)
    source.SetPhiResolution(resolution)
    source.Update()
    return from_polydata(source.GetOutput())


def plane(size=40.0, step=1.0, z=0.0):
    """A square grid of triangles in the plane S = z (mm)."""
    n = int(size / step) + 1
    y, x = np.mgrid[0:n, 0:n] * step
    vertices = np.stack([x.ravel(), y.ravel(), np.full(x.size, z)], axis=1)
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, 1:].ravel(), index[1:, :-1].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return vertices, faces


def test_distance_is_to_triangles_not_vertices():
    vertices = np.array([[0.0, 0, 0], [10, 0, 0], [0, 10, 0]])
    faces = np.array([[0, 1, 2]])
    points = np.array([[2.0, 2.0, 5.0], [2.0, 2.0, -3.0], [20.0, 0.0, 0.0]])
    distance = point_to_surface_distance(points, vertices, faces)
    np.testing.assert_allclose(distance, [5.0, 3.0, 10.0], atol=1e-9)


def test_signed_distance_negative_inside_and_flips_with_winding():
    vertices, faces = sphere(20.0)
    points = np.array([[0.0, 0, 0], [0, 0, 30.0], [5.0, 0, 0]])
    signed = point_to_surface_distance(points, vertices, faces, signed=True)
    assert signed[0] < -19.9 and signed[2] < -14.9
    assert signed[1] == pytest.approx(10.0, abs=1e-6)
    flipped = point_to_surface_distance(points, vertices, faces[:, ::-1], signed=True)
    np.testing.assert_allclose(flipped, -signed, atol=1e-9)


def test_identical_meshes_have_zero_distance_with_and_without_sampling():
    mesh = sphere(20.0)
    assert chamfer_distance(mesh, mesh) < 1e-6
    assert chamfer_distance(mesh, mesh, samples=20000) < 1e-6
    assert hausdorff95(mesh, mesh) < 1e-6
    assert mean_surface_distance(mesh, mesh, samples=5000) < 1e-6


@pytest.mark.parametrize("samples", [None, 10000])
def test_concentric_spheres_distance_is_radius_difference(samples):
    inner, outer = sphere(20.0), sphere(23.0)
    # the polyhedra deviate from the spheres by their sagitta (< 0.05 mm at this resolution)
    assert chamfer_distance(inner, outer, samples=samples) == pytest.approx(3.0, abs=0.05)
    assert mean_surface_distance(inner, outer, samples=samples) == pytest.approx(3.0, abs=0.05)
    assert hausdorff95(inner, outer, samples=samples) == pytest.approx(3.0, abs=0.06)
    assert hausdorff95(inner, outer, samples=samples, percentile=100) == pytest.approx(3.0, abs=0.06)


def test_plane_shifted_along_its_normal():
    shift = 2.5
    a, b = plane(), plane(z=shift)
    assert chamfer_distance(a, b) == pytest.approx(shift, abs=1e-9)
    assert chamfer_distance(a, b, samples=2000) == pytest.approx(shift, abs=1e-9)
    assert hausdorff95(a, b) == pytest.approx(shift, abs=1e-9)
    assert mean_surface_distance(a, b) == pytest.approx(shift, abs=1e-9)


def test_chamfer_is_mean_of_directed_means_and_differs_from_msd():
    a, b = sphere(20.0, resolution=64), sphere(22.0, resolution=12, centre=(1.0, 0.0, 0.0))
    d_ab = point_to_surface_distance(a[0], *b)
    d_ba = point_to_surface_distance(b[0], *a)
    assert chamfer_distance(a, b) == pytest.approx(0.5 * (d_ab.mean() + d_ba.mean()), rel=1e-12)
    union_mean = np.concatenate([d_ab, d_ba]).mean()
    assert mean_surface_distance(a, b) == pytest.approx(union_mean, rel=1e-12)
    assert abs(chamfer_distance(a, b) - mean_surface_distance(a, b)) > 1e-3  # different vertex counts
    np.testing.assert_allclose(directed_surface_distances(a, b), d_ab)


def test_mesh_sequence_input_is_accepted():
    vertices, faces = sphere(20.0, resolution=16)
    sequence = MeshSequence(vertices[None], faces)
    assert chamfer_distance(sequence, (vertices * 1.1, faces)) == pytest.approx(2.0, abs=0.3)


def test_sample_surface_is_area_uniform_and_on_the_surface():
    # two triangles: areas 0.5 and 1.5 (ratio 1:3)
    vertices = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [3, 0, 0], [3, 1, 0], [6, 0, 0]])
    faces = np.array([[0, 1, 2], [3, 5, 4]])
    points = sample_surface(vertices, faces, 40000, seed=1)
    assert points.shape == (40000, 3)
    assert np.mean(points[:, 0] >= 3.0) == pytest.approx(0.75, abs=0.01)
    assert point_to_surface_distance(points, vertices, faces).max() < 1e-9
    # uniform on the first triangle: centroid (1/3, 1/3)
    first = points[points[:, 0] < 3.0]
    np.testing.assert_allclose(first[:, :2].mean(axis=0), [1 / 3, 1 / 3], atol=0.01)
    np.testing.assert_array_equal(points, sample_surface(vertices, faces, 40000, seed=1))


def test_bad_input_raises_value_error():
    vertices, faces = sphere(10.0, resolution=8)
    with pytest.raises(ValueError):
        point_to_surface_distance(np.zeros((3, 2)), vertices, faces)
    with pytest.raises(ValueError):
        point_to_surface_distance(np.zeros((3, 3)), vertices, np.zeros((0, 3), dtype=int))
    with pytest.raises(ValueError):
        point_to_surface_distance(np.zeros((3, 3)), vertices, faces + len(vertices))
    with pytest.raises(ValueError):
        chamfer_distance((vertices, faces), vertices)
    with pytest.raises(ValueError):
        hausdorff95((vertices, faces), (vertices, faces), percentile=120)
    with pytest.raises(ValueError):
        sample_surface(vertices, faces, 0)
