"""Test-time use of the study's own labels (motion.adapt): refinement targets and the adapted SegNet."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.metrics.overlap import dice
from CardiacMotionAtlasLib.motion import MotionConfig, estimate_motion, train_motion
from CardiacMotionAtlasLib.motion.adapt import adapt_segnet, refinement_targets
from CardiacMotionAtlasLib.motion.losses import one_hot, segmentation_loss
from CardiacMotionAtlasLib.motion.train import frame_order, sequence_tensors


def test_targets_are_the_given_labels_where_given_and_segnet_elsewhere(small_sequence, tiny_trained):
    images, labels = sequence_tensors(small_sequence, tiny_trained.config, "cpu")
    probabilities = torch.softmax(torch.randn(images.shape[0], 4, *images.shape[2:]), 1)
    targets = refinement_targets(probabilities, labels)
    assert sorted(labels) == [0, frame_order(small_sequence).index(small_sequence.es_frame)]
    for position in range(images.shape[0]):
        expected = one_hot(labels[position])[0] if position in labels else probabilities[position]
        assert torch.equal(targets[position], expected)
    assert not torch.equal(targets, probabilities)
    other_ed = torch.zeros_like(labels[0])  # the ED labels the estimate carries win at position 0
    assert torch.equal(refinement_targets(probabilities, labels, other_ed)[0], one_hot(other_ed)[0])


def test_adapted_segnet_fits_the_subjects_labels_and_leaves_the_model_alone(small_sequence, tiny_trained):
    model = tiny_trained.model
    images, labels = sequence_tensors(small_sequence, tiny_trained.config, "cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained_probs = adapt_segnet(model, images, labels, steps=0)
    adapted_probs = adapt_segnet(model, images, labels, steps=40, lr=3e-3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not p.requires_grad for p in model.parameters())
    for position, label in labels.items():
        loss_trained = segmentation_loss(torch.log(trained_probs[position: position + 1]), label)
        loss_adapted = segmentation_loss(torch.log(adapted_probs[position: position + 1]), label)
        assert float(loss_adapted) < 0.8 * float(loss_trained)
        lv = lambda p: (p[position].argmax(0) == 1).numpy()  # noqa: E731
        truth = (label[0] == 1).numpy()
        assert dice(lv(adapted_probs), truth) > dice(lv(trained_probs), truth)
    assert torch.allclose(adapted_probs.sum(1), torch.ones(()), atol=1e-5)


def test_given_es_labels_pull_the_es_cavity_to_them(small_sequence, tiny_trained):
    """The ED labels carried to ES match the study's ES labels better with the given targets than with the
    (barely trained) SegNet's, and the estimate says which targets it used."""
    es = small_sequence.es_frame
    given_es = small_sequence.labels[es]
    scores, notes = {}, {}
    for given in (False, True):
        estimate = estimate_motion(tiny_trained, small_sequence, samples=2, refine_steps=40, adapt_steps=0,
                                   given_label_targets=given)
        scores[given] = np.mean([dice(estimate.labels[es] == k, given_es == k) for k in (1, 2)])
        notes[given] = estimate.metadata["refine_targets"]
    assert scores[True] > scores[False] + 0.02, scores
    assert notes[True].startswith("given labels at frames") and str(es) in notes[True]
    assert notes[False].startswith("SegNet's labels")


@pytest.fixture(scope="module")
def segmenting(small_sequence):
    """A tiny model whose SegNet trained long enough to find an LV (the ED labels of an unlabelled study)."""
    config = MotionConfig.tiny().with_changes(seg_steps=80, steps=2)
    return train_motion([small_sequence], config, device="cpu", calibrate=False)


def test_a_study_without_labels_falls_back_to_segnet_and_says_so(small_sequence, segmenting):
    unlabelled = replace(small_sequence, labels={})
    estimate = estimate_motion(segmenting, unlabelled, samples=2, refine_steps=3)
    assert estimate.metadata["refine_targets"] == "SegNet's labels at every frame (the study gives no labels)"
    assert estimate.metadata["segnet_adapt_steps"] == 0
    assert np.isfinite(estimate.indices["LVEF"])
    labelled = estimate_motion(segmenting, small_sequence, samples=2, refine_steps=3)
    assert labelled.metadata["segnet_adapt_steps"] > 0
