"""A scene saved as a Slicer data bundle (.mrb) and reopened in a fresh scene keeps its content."""

from __future__ import annotations

import numpy as np

from mrml_helpers import require_slicer_core

require_slicer_core()

from CardiacMotionAtlasLib.mrml import (  # noqa: E402
    CardiacMotionAtlasLogic,
    cine_study_from_browser,
    grid_transform_node_to_displacement_field,
    load_scene_bundle,
    save_scene_bundle,
    segmentation_node_to_labels,
    sequence_node_to_image_sequence,
    sequence_node_to_mesh_sequence,
    table_node_to_indices,
    volume_curves_from_table_node,
)


def _only(scene, name, class_name):
    collection = scene.GetNodesByClassByName(class_name, name)
    assert collection.GetNumberOfItems() == 1, f"{class_name} {name!r}: {collection.GetNumberOfItems()} nodes"
    return collection.GetItemAsObject(0)


def test_mrb_round_trip_keeps_sequences_models_transform_segmentation_and_tables(
        scene, new_standalone_scene, tmp_path):
    saved = CardiacMotionAtlasLogic().load_phantom_subject(scene, seed=0, index=0, tiny=True)
    bundle = save_scene_bundle(scene, tmp_path / "phantom.mrb")
    reopened = new_standalone_scene().scene
    load_scene_bundle(reopened, bundle)

    cine = saved.cine.image_sequences["sax_03"]
    cine_back = _only(reopened, cine.GetName(), "vtkMRMLSequenceNode")
    original, back = sequence_node_to_image_sequence(cine), sequence_node_to_image_sequence(cine_back)
    assert cine_back.GetIndexName() == "phase" and cine_back.GetIndexType() == cine_back.NumericIndex
    assert back.array.dtype == original.array.dtype
    np.testing.assert_array_equal(back.array, original.array)
    np.testing.assert_allclose(back.ijk_to_ras, original.ijk_to_ras, atol=1e-6)
    np.testing.assert_array_equal(back.phases, original.phases)

    labels = saved.cine.label_sequences["la_4ch"]
    labels_back = _only(reopened, labels.GetName(), "vtkMRMLSequenceNode")
    assert labels_back.GetNthDataNode(0).IsA("vtkMRMLLabelMapVolumeNode")
    np.testing.assert_array_equal(sequence_node_to_image_sequence(labels_back).array,
                                  sequence_node_to_image_sequence(labels).array)

    browser_back = _only(reopened, saved.browser.GetName(), "vtkMRMLSequenceBrowserNode")
    assert browser_back.GetNumberOfSynchronizedSequenceNodes(True) == saved.browser.GetNumberOfSynchronizedSequenceNodes(True)
    assert len(cine_study_from_browser(browser_back).slices) == len(saved.cine.image_sequences)

    mesh = sequence_node_to_mesh_sequence(saved.mesh_sequence)
    mesh_back = sequence_node_to_mesh_sequence(_only(reopened, saved.mesh_sequence.GetName(), "vtkMRMLSequenceNode"))
    np.testing.assert_allclose(mesh_back.vertices, mesh.vertices, atol=1e-4)  # files are LPS, converted back
    np.testing.assert_array_equal(mesh_back.faces, mesh.faces)
    np.testing.assert_allclose(mesh_back.point_data["displacement_mm"], mesh.point_data["displacement_mm"], atol=1e-5)

    flow = grid_transform_node_to_displacement_field(saved.displacement_transform)
    flow_back = grid_transform_node_to_displacement_field(
        _only(reopened, saved.displacement_transform.GetName(), "vtkMRMLGridTransformNode"))
    np.testing.assert_allclose(flow_back.ijk_to_ras, flow.ijk_to_ras, atol=1e-6)
    np.testing.assert_allclose(flow_back.vectors, flow.vectors, atol=1e-5)
    assert flow_back.target_phase == flow.target_phase

    segmentation_back = _only(reopened, saved.segmentation.GetName(), "vtkMRMLSegmentationNode")
    np.testing.assert_array_equal(segmentation_node_to_labels(segmentation_back).array,
                                  segmentation_node_to_labels(saved.segmentation).array)

    # MRML writes table doubles as text with 6 significant digits (vtkMRMLTableStorageNode has no precision
    # setting): values come back to a relative 5e-6
    table_back = _only(reopened, saved.indices_table.GetName(), "vtkMRMLTableNode")
    (indices_back,), (indices,) = table_node_to_indices(table_back), table_node_to_indices(saved.indices_table)
    assert list(indices_back) == list(indices)
    np.testing.assert_allclose(list(indices_back.values()), list(indices.values()), rtol=5e-6)
    assert table_back.GetColumnUnitLabel("LVEF") == "%"
    curves_back = volume_curves_from_table_node(_only(reopened, saved.volume_curves.table.GetName(), "vtkMRMLTableNode"))
    np.testing.assert_allclose(curves_back[0].volumes_ml,
                               volume_curves_from_table_node(saved.volume_curves.table)[0].volumes_ml, rtol=5e-6)
    chart_back = _only(reopened, saved.volume_curves.chart.GetName(), "vtkMRMLPlotChartNode")
    assert chart_back.GetNumberOfPlotSeriesNodes() == 2
