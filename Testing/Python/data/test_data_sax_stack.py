"""CineStudy.sax_stack: the SAX slices as one (t, z, y, x) sequence on the stack grid (k spacing = slice spacing)."""

import dataclasses

import numpy as np
import pytest

from CardiacMotionAtlasLib.data.cine_study import CineStudy, stack_slices
from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError


def test_sax_stack_stacks_slices_on_the_slice_spacing(tiny_cine):
    study = tiny_cine.study
    sax = study.sax
    images = study.sax_stack()
    assert images.array.shape == (study.n_frames, len(sax)) + sax[0].image.array.shape[2:]
    for k, s in enumerate(sax):
        assert np.array_equal(images.array[:, k], s.image.array[:, 0])
    # k axis: the 10 mm step between slice origins (not the 8 mm thickness), so voxel counts give disk volumes
    assert np.linalg.norm(images.ijk_to_ras[:3, 2]) == pytest.approx(10.0)
    assert np.allclose(images.ijk_to_ras[:3, 3], sax[0].image.ijk_to_ras[:3, 3])
    assert np.allclose(images.ijk_to_ras @ [0, 0, len(sax) - 1, 1], [*sax[-1].image.origin, 1])
    assert np.array_equal(images.phases, sax[0].image.phases)
    labels = study.sax_stack(labels=True)
    assert labels.name == f"{study.subject_id}_sax_labels"
    assert np.array_equal(labels.array[:, 2], sax[2].labels.array[:, 0])
    assert np.array_equal(labels.ijk_to_ras, images.ijk_to_ras)
    assert np.array_equal(stack_slices(sax)[0], images.ijk_to_ras)


def test_sax_stack_refuses_missing_labels_no_sax_and_uneven_slices(tiny_cine):
    study = tiny_cine.study
    unlabelled = dataclasses.replace(study.sax[1], labels=None, labelled_frames=None)
    partly = CineStudy("p1", [study.sax[0], unlabelled] + study.sax[2:])
    assert partly.sax_stack().array.shape[1] == len(study.sax)
    with pytest.raises(CardiacMotionAtlasError, match="'p1': some SAX slices have no labels"):
        partly.sax_stack(labels=True)
    with pytest.raises(CardiacMotionAtlasError, match="'p2' has no SAX slices"):
        CineStudy("p2", study.lax).sax_stack()
    gap = CineStudy("p3", [study.sax[0], study.sax[1], study.sax[3]])
    with pytest.raises(CardiacMotionAtlasError, match="not equally spaced"):
        gap.sax_stack()
