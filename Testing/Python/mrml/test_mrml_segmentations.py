"""Label maps <-> segmentation nodes (shared binary labelmap, reference geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from mrml_helpers import require_slicer_core

require_slicer_core()

import vtk  # noqa: E402

from CardiacMotionAtlasLib.data.image_sequence import ImageSequence  # noqa: E402
from CardiacMotionAtlasLib.mrml import MRMLBridgeError  # noqa: E402
from CardiacMotionAtlasLib.mrml.segmentations import (  # noqa: E402
    CARDIAC_SEGMENTS,
    labels_to_segmentation_node,
    reference_geometry,
    segmentation_node_to_labels,
)


@pytest.fixture(scope="module")
def ed_es_labels(phantom_heart, coarse_grid):
    matrix, shape = coarse_grid
    phases = [0.0, phantom_heart.es_phase]
    return ImageSequence(phantom_heart.label_volumes(matrix, shape, phases), matrix, phases, name="gt labels")


def test_segments_have_the_project_names_labels_and_distinct_colours(scene, ed_es_labels):
    node = labels_to_segmentation_node(scene, ed_es_labels, frame=0)
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 3
    assert segmentation.GetSourceRepresentationName() == "Binary labelmap"
    names, colours = [], []
    for value, segment_id, name, _ in CARDIAC_SEGMENTS:
        segment = segmentation.GetSegment(segment_id)
        names.append(segment.GetName())
        colours.append(tuple(round(c, 3) for c in segment.GetColor()))
        tag = vtk.reference("")
        assert segment.GetTag("CardiacMotionAtlas.Label", tag) and str(tag) == str(value)
        assert segment.GetLabelValue() == value
    assert names == ["LV blood pool", "LV myocardium", "RV blood pool"]
    assert len(set(colours)) == 3


@pytest.mark.parametrize("frame", [0, 1])
def test_export_gives_back_the_identical_labels(scene, ed_es_labels, frame):
    node = labels_to_segmentation_node(scene, ed_es_labels, frame=frame)
    matrix, shape = reference_geometry(node)
    np.testing.assert_allclose(matrix, ed_es_labels.ijk_to_ras, atol=1e-9)
    assert shape == ed_es_labels.shape_zyx
    back = segmentation_node_to_labels(node)
    assert back.array.dtype == np.uint8
    assert set(np.unique(back.array)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(back.array[0], ed_es_labels.array[frame])
    np.testing.assert_allclose(back.ijk_to_ras, ed_es_labels.ijk_to_ras, atol=1e-9)
    assert back.phases[0] == ed_es_labels.phases[frame]


def test_closed_surfaces_and_unlisted_labels(scene, ed_es_labels):
    labels = ed_es_labels.array[0].copy()
    labels[0, 0, :3] = 7  # not a project label: left out of the segmentation
    node = labels_to_segmentation_node(scene, labels, ed_es_labels.ijk_to_ras, closed_surface=True)
    surface = vtk.vtkPolyData()
    assert node.GetClosedSurfaceRepresentation("LV_myocardium", surface)
    assert surface.GetNumberOfPoints() > 100
    back = segmentation_node_to_labels(node).array[0]
    expected = ed_es_labels.array[0].copy()
    expected[0, 0, :3] = 0
    np.testing.assert_array_equal(back, expected)


def test_bad_input_is_refused(scene, ed_es_labels):
    with pytest.raises(MRMLBridgeError, match="ijk_to_ras"):
        labels_to_segmentation_node(scene, ed_es_labels.array[0])
    with pytest.raises(MRMLBridgeError, match="out of range"):
        labels_to_segmentation_node(scene, ed_es_labels, frame=5)
    with pytest.raises(MRMLBridgeError, match="distinct"):
        labels_to_segmentation_node(scene, ed_es_labels, segments=[(1, "a", "a", (1, 0, 0)), (1, "b", "b", (0, 1, 0))])
