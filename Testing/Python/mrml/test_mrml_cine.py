"""CineStudy -> one volume sequence per slice with a shared browser, and back."""

from __future__ import annotations

import numpy as np

from mrml_helpers import ijk_to_ras_of, nodes_by_class, require_slicer_core, voxels_of

require_slicer_core()

from CardiacMotionAtlasLib.mrml.cine import cine_study_from_browser, cine_study_to_nodes  # noqa: E402


def test_every_slice_is_a_sequence_played_by_one_browser(scene, tiny_study):
    nodes = cine_study_to_nodes(scene, tiny_study, include_labels=True)
    assert len(nodes_by_class(scene, "vtkMRMLSequenceBrowserNode")) == 1
    assert len(nodes.image_sequences) == len(tiny_study.slices)
    assert len(nodes.label_sequences) == len(tiny_study.slices)
    browser = nodes.browser
    assert browser.GetNumberOfSynchronizedSequenceNodes(True) == 2 * len(tiny_study.slices)
    assert browser.GetMasterSequenceNode() is nodes.image_sequences[tiny_study.slices[0].image.name]
    # one browser step moves every slice (images and labels) to the same phase
    for frame in (0, 4):
        browser.SetSelectedItemNumber(frame)
        for cine_slice in tiny_study.slices:
            proxy = nodes.proxy(cine_slice.image.name)
            np.testing.assert_array_equal(voxels_of(proxy), cine_slice.image.array[frame])
            np.testing.assert_allclose(ijk_to_ras_of(proxy), cine_slice.image.ijk_to_ras, atol=1e-9)
            labels = nodes.proxy(cine_slice.image.name, labels=True)
            np.testing.assert_array_equal(voxels_of(labels), cine_slice.labels.array[frame])


def test_study_rebuilt_from_the_browser_equals_the_original(scene, tiny_study):
    back = cine_study_from_browser(cine_study_to_nodes(scene, tiny_study).browser)
    assert back.subject_id == tiny_study.subject_id
    assert (back.ed_frame, back.es_frame) == (tiny_study.ed_frame, tiny_study.es_frame)
    assert [s.view for s in back.slices] == [s.view for s in tiny_study.slices]
    for mine, theirs in zip(back.slices, tiny_study.slices):
        assert mine.image.name == theirs.image.name
        assert mine.slice_index == theirs.slice_index
        np.testing.assert_array_equal(mine.image.array, theirs.image.array)
        np.testing.assert_allclose(mine.image.ijk_to_ras, theirs.image.ijk_to_ras, atol=1e-9)
        np.testing.assert_array_equal(mine.image.phases, theirs.image.phases)
        np.testing.assert_array_equal(mine.labels.array, theirs.labels.array)
        assert mine.labelled_frames == theirs.labelled_frames
