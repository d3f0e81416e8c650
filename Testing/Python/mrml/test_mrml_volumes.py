"""ImageSequence <-> volume sequence nodes + browser, against the real MRML classes."""

from __future__ import annotations

import numpy as np
import pytest

from mrml_helpers import ijk_to_ras_of, require_slicer_core, voxels_of

require_slicer_core()

from CardiacMotionAtlasLib.data.image_sequence import ImageSequence  # noqa: E402
from CardiacMotionAtlasLib.geometry.affine import make_ijk_to_ras, rotation_matrix  # noqa: E402
from CardiacMotionAtlasLib.mrml import MRMLBridgeError  # noqa: E402
from CardiacMotionAtlasLib.mrml.volumes import (  # noqa: E402
    LABEL_COLORS,
    create_sequence_browser,
    image_sequence_to_browser,
    image_sequence_to_sequence_node,
    sequence_node_to_image_sequence,
)


def test_cine_slice_frames_are_volume_nodes_with_identical_voxels_and_ijk_to_ras(scene, tiny_study):
    image = tiny_study.lax[0].image  # an oblique long-axis slice, int16 voxels
    sequence = image_sequence_to_sequence_node(scene, image)
    assert sequence.GetIndexName() == "phase"
    assert sequence.GetIndexUnit() == ""
    assert sequence.GetIndexType() == sequence.NumericIndex
    assert sequence.GetNumberOfDataNodes() == image.n_frames
    for frame, phase in enumerate(image.phases):
        assert float(sequence.GetNthIndexValue(frame)) == phase
        node = sequence.GetNthDataNode(frame)
        assert node.GetClassName() == "vtkMRMLScalarVolumeNode"
        voxels = voxels_of(node)
        assert voxels.dtype == image.array.dtype
        np.testing.assert_array_equal(voxels, image.array[frame])
        np.testing.assert_allclose(ijk_to_ras_of(node), image.ijk_to_ras, rtol=0, atol=1e-9)
        # the vtkImageData is geometry-neutral: the node's IJKToRAS holds everything
        assert node.GetImageData().GetOrigin() == (0.0, 0.0, 0.0)
        assert node.GetImageData().GetSpacing() == (1.0, 1.0, 1.0)


def test_image_sequence_round_trip_is_exact(scene, tiny_study):
    image = tiny_study.sax[2].image
    back = sequence_node_to_image_sequence(image_sequence_to_sequence_node(scene, image))
    assert back.array.dtype == image.array.dtype
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(back.ijk_to_ras, image.ijk_to_ras, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(back.phases, image.phases)
    assert back.cycle_length_s == pytest.approx(image.cycle_length_s)
    np.testing.assert_allclose(back.trigger_times_s, image.trigger_times_s)
    assert back.name == image.name


@pytest.mark.parametrize("handedness", [1.0, -1.0])
def test_oblique_anisotropic_geometry_survives(scene, handedness):
    rng = np.random.default_rng(3)
    direction = rotation_matrix([0.3, -0.5, 0.8], 0.7) @ np.diag([1.0, 1.0, handedness])
    matrix = make_ijk_to_ras([12.5, -40.25, 7.0], direction, [0.7, 1.3, 2.9])
    array = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    image = ImageSequence(array, matrix, [0.0, 0.3, 0.6], name="oblique")
    back = sequence_node_to_image_sequence(image_sequence_to_sequence_node(scene, image))
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.ijk_to_ras, matrix, rtol=0, atol=1e-9)


def test_label_sequence_uses_label_map_nodes_and_label_colours(scene, tiny_study):
    labels = tiny_study.sax[3].labels
    browser = image_sequence_to_browser(scene, labels, labels=True)
    sequence = browser.GetMasterSequenceNode()
    assert sequence.GetNthDataNode(0).GetClassName() == "vtkMRMLLabelMapVolumeNode"
    proxy = browser.GetProxyNode(sequence)
    assert proxy.GetClassName() == "vtkMRMLLabelMapVolumeNode"
    colors = proxy.GetDisplayNode().GetColorNode()
    for value, (name, rgba) in LABEL_COLORS.items():
        assert colors.GetColorName(value) == name
        color = [0.0] * 4
        colors.GetColor(value, color)
        np.testing.assert_allclose(color, rgba, atol=1.0 / 255)  # 8-bit lookup table
    back = sequence_node_to_image_sequence(sequence)
    np.testing.assert_array_equal(back.array, labels.array)
    assert back.metadata["labels"] is True


def test_browser_proxy_shows_the_selected_phase(scene, tiny_study):
    image = tiny_study.sax[1].image
    browser = image_sequence_to_browser(scene, image)
    sequence = browser.GetMasterSequenceNode()
    proxy = browser.GetProxyNode(sequence)
    assert proxy.GetDisplayNode() is not None
    assert browser.GetPlaybackRateFps() == pytest.approx(image.n_frames / image.cycle_length_s)
    for frame in (0, 5, 3):
        browser.SetSelectedItemNumber(frame)
        np.testing.assert_array_equal(voxels_of(proxy), image.array[frame])
        np.testing.assert_allclose(ijk_to_ras_of(proxy), image.ijk_to_ras, atol=1e-9)


def test_inconsistent_or_empty_sequences_are_refused(scene, tiny_study):
    empty = scene.AddNewNodeByClass("vtkMRMLSequenceNode", "empty")
    with pytest.raises(MRMLBridgeError, match="no data nodes"):
        sequence_node_to_image_sequence(empty)
    with pytest.raises(MRMLBridgeError, match="no sequences"):
        create_sequence_browser(scene, [], "nothing")
    first, second = tiny_study.sax[0].image, tiny_study.lax[0].image
    sequence = image_sequence_to_sequence_node(scene, first)
    other = image_sequence_to_sequence_node(scene, second)
    sequence.SetDataNodeAtValue(other.GetNthDataNode(1), "0.9")
    with pytest.raises(MRMLBridgeError, match="another IJK->RAS"):
        sequence_node_to_image_sequence(sequence)
