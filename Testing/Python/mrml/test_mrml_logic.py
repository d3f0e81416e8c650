"""The GUI-free logic: a phantom subject and a study folder loaded as MRML nodes."""

from __future__ import annotations

import numpy as np
import pytest

from mrml_helpers import ijk_to_ras_of, nodes_by_class, require_slicer_core, voxels_of

require_slicer_core()

import slicer  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

from CardiacMotionAtlasLib.errors import CineStudyError  # noqa: E402
from CardiacMotionAtlasLib.mrml import (  # noqa: E402
    CardiacMotionAtlasLogic,
    cine_study_from_browser,
    grid_transform_node_to_displacement_field,
    segmentation_node_to_labels,
    sequence_node_to_mesh_sequence,
    table_node_to_indices,
    volume_curves_from_table_node,
)


@pytest.fixture
def loaded(scene):
    return CardiacMotionAtlasLogic().load_phantom_subject(scene, seed=0, index=0, tiny=True)


def test_phantom_subject_nodes_hold_the_ground_truth(scene, loaded, phantom_heart, tiny_study):
    assert loaded.subject_id == phantom_heart.subject_id
    # cine: every slice as a volume sequence, identical to the simulator's study, one browser
    assert len(nodes_by_class(scene, "vtkMRMLSequenceBrowserNode")) == 1
    study = cine_study_from_browser(loaded.browser)
    assert len(study.slices) == len(tiny_study.slices)
    for mine, theirs in zip(study.slices, tiny_study.slices):
        np.testing.assert_array_equal(mine.image.array, theirs.image.array)
        np.testing.assert_allclose(mine.image.ijk_to_ras, theirs.image.ijk_to_ras, atol=1e-9)
    # the mesh plays in the same browser, by phase
    mesh = sequence_node_to_mesh_sequence(loaded.mesh_sequence)
    np.testing.assert_array_equal(mesh.phases, tiny_study.slices[0].image.phases)
    vertices, _ = phantom_heart.surface("myocardium", mesh.phases[2], n_rings=16, n_around=32)
    np.testing.assert_allclose(mesh.vertices[2], vertices, atol=1e-9)
    loaded.browser.SetSelectedItemNumber(2)  # the master is a cine slice; the mesh follows by phase
    np.testing.assert_array_equal(numpy_support.vtk_to_numpy(loaded.mesh_proxy.GetPolyData().GetPoints().GetData()),
                                  mesh.vertices[2])
    assert loaded.mesh_proxy.GetDisplayNode().GetActiveScalarName() == "displacement_mm"
    # ED->ES flow, ED segmentation, indices, curves
    flow = grid_transform_node_to_displacement_field(loaded.displacement_transform)
    expected = phantom_heart.displacement_field(flow.ijk_to_ras, flow.shape_zyx, 0.0, phantom_heart.es_phase)
    np.testing.assert_allclose(flow.vectors, expected.vectors, atol=1e-5)
    labels = segmentation_node_to_labels(loaded.segmentation)
    np.testing.assert_array_equal(labels.array[0], phantom_heart.label_volume(labels.ijk_to_ras, labels.shape_zyx, 0.0))
    assert table_node_to_indices(loaded.indices_table) == [phantom_heart.clinical_indices()]
    lv = volume_curves_from_table_node(loaded.volume_curves.table)[0]
    np.testing.assert_allclose(lv.volumes_ml, phantom_heart.lv_volume_ml(lv.phases))
    assert loaded.volume_curves.chart.GetNumberOfPlotSeriesNodes() == 2
    assert len(loaded.slice_misalignments) == len(tiny_study.slices)


def test_phantom_subject_of_the_lofted_family(scene):
    from CardiacMotionAtlasLib.phantom.families import make_heart

    heart = make_heart("lofted", 0, 1)
    loaded = CardiacMotionAtlasLogic().load_phantom_subject(scene, seed=0, index=1, tiny=True, family="lofted")
    assert loaded.subject_id == "lofted001"
    assert table_node_to_indices(loaded.indices_table) == [pytest.approx(heart.clinical_indices())]
    mesh = sequence_node_to_mesh_sequence(loaded.mesh_sequence)
    vertices, _ = heart.surface("myocardium", mesh.phases[1], n_rings=16, n_around=32)
    np.testing.assert_allclose(mesh.vertices[1], vertices, atol=1e-9)
    with pytest.raises(ValueError, match="unknown phantom family"):
        CardiacMotionAtlasLogic().load_phantom_subject(scene, seed=0, index=1, tiny=True, family="spheres")


def test_phantom_subject_is_one_subject_hierarchy_folder(scene, loaded):
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    folder = loaded.folder_item
    assert hierarchy.GetItemName(folder) == loaded.subject_id
    for node in (loaded.browser, loaded.segmentation, loaded.indices_table, loaded.displacement_transform,
                 loaded.mesh_proxy):
        assert hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) == folder


def test_load_study_folder(scene, tmp_path, tiny_study):
    from CardiacMotionAtlasLib.io.layouts import read_study, write_ukbb_study

    write_ukbb_study(tiny_study, tmp_path / "subject")
    on_disk = read_study(tmp_path / "subject")
    nodes = CardiacMotionAtlasLogic().load_study(scene, tmp_path / "subject")
    assert len(nodes.image_sequences) == len(on_disk.slices)
    for cine_slice in on_disk.slices:
        proxy = nodes.proxy(cine_slice.image.name)
        np.testing.assert_array_equal(voxels_of(proxy), cine_slice.image.array[0])
        np.testing.assert_allclose(ijk_to_ras_of(proxy), cine_slice.image.ijk_to_ras, atol=1e-9)
    before = scene.GetNumberOfNodes()
    with pytest.raises(CineStudyError, match="does not exist"):
        CardiacMotionAtlasLogic().load_study(scene, tmp_path / "missing")
    assert scene.GetNumberOfNodes() == before
