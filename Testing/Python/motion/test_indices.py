"""Clinical indices: from the phantom's labels against its analytic volumes, and the motion pipeline's
soft volumes (ED labels carried by the fields) against label counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.analysis.clinical_indices import clinical_indices_from_labels
from CardiacMotionAtlasLib.data.image_sequence import ImageSequence
from CardiacMotionAtlasLib.motion.evaluation import index_errors, soft_volumes


@pytest.fixture(scope="module")
def fine_labels(motion_heart):
    matrix, shape = motion_heart.bounding_grid(2.0, margin_mm=4.0)
    phases = [0.0, motion_heart.es_phase]
    return ImageSequence(motion_heart.label_volumes(matrix, shape, phases), matrix, phases)


def test_indices_from_phantom_labels_match_analytic(motion_heart, fine_labels):
    measured = clinical_indices_from_labels(fine_labels, ed_frame=0, es_frame=1).as_dict()
    truth = motion_heart.clinical_indices()
    for name in ("LVEDV", "LVESV", "RVEDV", "RVESV", "LVM"):
        assert measured[name] == pytest.approx(truth[name], rel=0.06), name
    assert measured["LVEF"] == pytest.approx(truth["LVEF"], abs=3.0)
    assert measured["RVEF"] == pytest.approx(truth["RVEF"], abs=4.0)


def test_soft_volumes_of_identity_fields_are_label_volumes(motion_heart, fine_labels):
    ed = fine_labels.array[0]
    voxel_ml = abs(np.linalg.det(fine_labels.ijk_to_ras[:3, :3])) / 1000
    volumes = soft_volumes(torch.zeros(2, 3, *ed.shape), ed, voxel_ml)
    for row, label in enumerate((1, 2, 3)):
        assert volumes[row] == pytest.approx([np.sum(ed == label) * voxel_ml] * 2, rel=1e-5)
    errors = index_errors(volumes, 1, motion_heart.clinical_indices())
    assert errors["LVEDV"] == pytest.approx(0.0, abs=0.06 * motion_heart.clinical_indices()["LVEDV"])
    assert errors["LVEF"] == pytest.approx(-motion_heart.clinical_indices()["LVEF"], abs=1e-6)  # no motion: EF 0
