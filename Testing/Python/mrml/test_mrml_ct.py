"""CT phase volumes into the scene: voxels and geometry kept, phases indexed, bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from mrml_helpers import require_slicer_core

require_slicer_core()

from CardiacMotionAtlasLib.data.image_sequence import ImageSequence  # noqa: E402
from CardiacMotionAtlasLib.io.nifti import read_nifti, write_nifti  # noqa: E402
from CardiacMotionAtlasLib.mrml import CardiacMotionAtlasLogic, MRMLBridgeError  # noqa: E402
from CardiacMotionAtlasLib.mrml.segmentations import segmentation_node_to_labels  # noqa: E402
from CardiacMotionAtlasLib.mrml.volumes import sequence_node_to_image_sequence  # noqa: E402
from CardiacMotionAtlasLib.phantom.cohort import CohortConfig, write_cohort  # noqa: E402


@pytest.fixture(scope="module")
def ct_subject(tmp_path_factory):
    config = CohortConfig.tiny(1)
    return write_cohort(tmp_path_factory.mktemp("ct"), config)[0]


def test_phantom_ct_phases_load_with_geometry_labels_and_phases(scene, ct_subject):
    import json

    nodes = CardiacMotionAtlasLogic().load_ct(scene, ct_subject)
    image = sequence_node_to_image_sequence(nodes.image_sequence)
    ed = read_nifti(ct_subject / "ct_ED.nii.gz")
    es = read_nifti(ct_subject / "ct_ES.nii.gz")
    np.testing.assert_array_equal(image.array, np.concatenate([ed.array, es.array]))
    np.testing.assert_allclose(image.ijk_to_ras, ed.ijk_to_ras, atol=1e-6)
    es_phase = json.loads((ct_subject / "phantom.json").read_text())["es_phase"]
    np.testing.assert_allclose(image.phases, [0.0, es_phase], atol=1e-6)
    labels = segmentation_node_to_labels(nodes.segmentation, ed.ijk_to_ras, ed.shape_zyx)
    np.testing.assert_array_equal(labels.array[0], read_nifti(ct_subject / "seg_ct_ED.nii.gz", labels=True).array[0])
    assert nodes.browser.GetMasterSequenceNode() is nodes.image_sequence
    assert nodes.browser.IsSynchronizedSequenceNode(nodes.label_sequence.GetID())


def test_cine_file_or_mismatched_grids_are_refused(scene, ct_subject, tmp_path):
    logic = CardiacMotionAtlasLogic()
    before = scene.GetNumberOfNodes()
    with pytest.raises(MRMLBridgeError, match="frames; a CT phase is one 3D volume"):
        logic.load_ct(scene, [ct_subject / "sa.nii.gz"])
    ed = read_nifti(ct_subject / "ct_ED.nii.gz")
    shifted = ed.ijk_to_ras.copy()
    shifted[:3, 3] += 5.0
    other = write_nifti(ImageSequence(ed.array, shifted, ed.phases), tmp_path / "ct_other.nii.gz")
    with pytest.raises(MRMLBridgeError, match="grid differs"):
        logic.load_ct(scene, [ct_subject / "ct_ED.nii.gz", other])
    assert scene.GetNumberOfNodes() == before
