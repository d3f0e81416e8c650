"""DisplacementField <-> grid transform nodes; rigid matrices <-> linear transform nodes."""

from __future__ import annotations

import numpy as np
import pytest

from mrml_helpers import require_slicer_core

require_slicer_core()

import vtk  # noqa: E402

from CardiacMotionAtlasLib.data.displacement_field import DisplacementField  # noqa: E402
from CardiacMotionAtlasLib.geometry.affine import apply_affine, make_ijk_to_ras, rigid_matrix, rotation_matrix  # noqa: E402
from CardiacMotionAtlasLib.mrml import MRMLBridgeError  # noqa: E402
from CardiacMotionAtlasLib.mrml.transforms import (  # noqa: E402
    UNCERTAINTY_REFERENCE_ROLE,
    displacement_field_to_grid_transform,
    displacement_field_to_grid_transform_node,
    grid_transform_node_to_displacement_field,
    linear_transform_node_to_matrix,
    matrix_to_linear_transform_node,
    slice_transforms_to_nodes,
)
from CardiacMotionAtlasLib.mrml.volumes import add_volume_node  # noqa: E402


@pytest.fixture(scope="module")
def ed_to_es(phantom_heart, coarse_grid):
    matrix, shape = coarse_grid
    return phantom_heart.displacement_field(matrix, shape, 0.0, phantom_heart.es_phase)


def _to_parent(node, points):
    transform = node.GetTransformToParent()
    return np.array([transform.TransformPoint(*p) for p in points])


def _grid_points(field):
    nz, ny, nx = field.shape_zyx
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    return apply_affine(field.ijk_to_ras, np.stack([i, j, k], -1).astype(float)).reshape(-1, 3)


def test_transform_to_parent_moves_grid_points_by_u(scene, ed_to_es):
    node = displacement_field_to_grid_transform_node(scene, ed_to_es)
    assert node.GetClassName() == "vtkMRMLGridTransformNode"
    assert node.GetTransformToParent().IsA("vtkOrientedGridTransform")
    points = _grid_points(ed_to_es)
    moving = np.abs(ed_to_es.vectors).reshape(3, -1).max(0) > 1.0  # the heart: mm-scale motion
    assert moving.sum() > 50
    chosen = np.r_[np.flatnonzero(moving)[::7], np.flatnonzero(~moving)[::97]]
    expected = points[chosen] + ed_to_es.vectors.reshape(3, -1).T[chosen]
    np.testing.assert_allclose(_to_parent(node, points[chosen]), expected, rtol=0, atol=0.01)
    # world = parent here: a model under this node is moved the same way
    to_world = vtk.vtkGeneralTransform()
    node.GetTransformToWorld(to_world)
    np.testing.assert_allclose(to_world.TransformPoint(*points[chosen[0]]), expected[0], atol=0.01)


def test_between_grid_points_the_transform_is_trilinear(scene, ed_to_es):
    node = displacement_field_to_grid_transform_node(scene, ed_to_es)
    rng = np.random.default_rng(1)
    nz, ny, nx = ed_to_es.shape_zyx
    ijk = rng.uniform([1, 1, 1], [nx - 2, ny - 2, nz - 2], size=(200, 3))
    points = apply_affine(ed_to_es.ijk_to_ras, ijk)
    expected = points + ed_to_es.sample(points, order=1)
    np.testing.assert_allclose(_to_parent(node, points), expected, rtol=0, atol=0.01)


def test_oblique_grid_with_uncertainty_round_trips(scene):
    rng = np.random.default_rng(2)
    matrix = make_ijk_to_ras([5.0, -3.0, 20.0], rotation_matrix([1, 2, 3], 0.6), [2.0, 2.5, 3.0])
    field = DisplacementField(rng.normal(size=(3, 6, 7, 8)), matrix, uncertainty=rng.random((6, 7, 8)),
                              source_phase=0.0, target_phase=0.35, name="oblique")
    node = displacement_field_to_grid_transform_node(scene, field)
    direction = vtk.vtkMatrix4x4()
    direction.DeepCopy(node.GetTransformToParent().GetGridDirectionMatrix())
    np.testing.assert_allclose([[direction.GetElement(r, c) for c in range(3)] for r in range(3)],
                               rotation_matrix([1, 2, 3], 0.6), atol=1e-12)
    points = _grid_points(field)[::5]
    np.testing.assert_allclose(_to_parent(node, points) - points, field.vectors.reshape(3, -1).T[::5], atol=1e-4)
    back = grid_transform_node_to_displacement_field(node)
    np.testing.assert_array_equal(back.vectors, field.vectors)
    np.testing.assert_allclose(back.ijk_to_ras, matrix, atol=1e-9)
    np.testing.assert_array_equal(back.uncertainty, field.uncertainty)
    assert (back.source_phase, back.target_phase, back.name) == (0.0, 0.35, "oblique")
    assert node.GetNodeReference(UNCERTAINTY_REFERENCE_ROLE).IsA("vtkMRMLScalarVolumeNode")


def test_a_grid_stored_from_parent_is_read_as_its_inverse(scene):
    """A displacement-field file loaded by Slicer is a transform *from* parent: reading it gives the
    displacement of the transform to parent, i.e. the inverse mapping."""
    matrix = make_ijk_to_ras([-20.0, -20.0, -20.0], np.eye(3), [4.0, 4.0, 4.0])
    nz = ny = nx = 11
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    smooth = 1.5 * np.sin(np.stack([i, j, k]) / 4.0)  # small and smooth: invertible
    field = DisplacementField(smooth, matrix)
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "from file")
    node.SetAndObserveTransformFromParent(displacement_field_to_grid_transform(field))
    inverse = grid_transform_node_to_displacement_field(node)
    points = _grid_points(field)
    inside = np.all(np.abs(points) < 12.0, axis=1)
    moved = points[inside] + inverse.vectors.reshape(3, -1).T[inside]
    np.testing.assert_allclose(moved + field.sample(moved, order=1), points[inside], atol=0.01)


def test_non_grid_transform_is_refused(scene):
    node = matrix_to_linear_transform_node(scene, np.eye(4), "rigid")
    with pytest.raises(MRMLBridgeError, match="no grid transform"):
        grid_transform_node_to_displacement_field(node)


def test_slice_misalignments_become_linear_transforms(scene, tiny_simulation):
    truth = tiny_simulation.truth[0]
    image = tiny_simulation.study.slices[0].image
    volume = add_volume_node(scene, image.array[0], image.ijk_to_ras, "slice")
    nodes = slice_transforms_to_nodes(scene, {"slice": truth.misalignment}, volumes={"slice": volume})
    node = nodes["slice"]
    np.testing.assert_allclose(linear_transform_node_to_matrix(node), truth.misalignment, atol=1e-12)
    assert volume.GetParentTransformNode() is node
    to_world = vtk.vtkMatrix4x4()
    volume.GetParentTransformNode().GetMatrixTransformToWorld(to_world)
    ijk_to_world = np.array([[to_world.GetElement(r, c) for c in range(4)] for r in range(4)]) @ image.ijk_to_ras
    np.testing.assert_allclose(ijk_to_world, truth.true_ijk_to_ras, atol=1e-9)  # shown at the true plane
    rigid = rigid_matrix(rotation_matrix([0, 0, 1], 0.1), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(linear_transform_node_to_matrix(matrix_to_linear_transform_node(scene, rigid, "r")),
                               rigid, atol=1e-12)
