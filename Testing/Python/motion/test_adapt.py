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
                                   given_label_targets=given, trajectory="chain")
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
    labelled = estimate_motion(segmenting, small_sequence, samples=2, refine_steps=3, adapt_steps=5)
    assert labelled.metadata["segnet_adapt_steps"] > 0


def _contracted(labels: torch.Tensor, factor: float) -> torch.Tensor:
    """``(1, z, y, x)`` labels shrunk in-plane towards the LV centroid by ``factor`` (nearest sampling)."""
    _, _, y, x = labels.shape
    jj, ii = torch.nonzero(labels[0] == 1, as_tuple=True)[1:]
    cy, cx = jj.float().mean(), ii.float().mean()
    gy, gx = torch.meshgrid(torch.arange(y).float(), torch.arange(x).float(), indexing="ij")
    sy = (cy + (gy - cy) / factor).round().long().clamp(0, y - 1)
    sx = (cx + (gx - cx) / factor).round().long().clamp(0, x - 1)
    return labels[:, :, sy, sx]


def test_the_relaxed_fold_penalty_lets_the_chain_reach_a_strong_contraction(small_sequence):
    """A systolic target whose cavity is much smaller: with the previous fold penalty (margin 0.2, weight
    0.1) the carried ED cavity stays too big; with the new default it gets closer, without folding."""
    from CardiacMotionAtlasLib.geometry.warp import jacobian_determinant_voxels, warp
    from CardiacMotionAtlasLib.motion.model import CardioMorphNet
    from CardiacMotionAtlasLib.motion.adapt import FOLD_MARGIN, FOLD_WEIGHT
    from CardiacMotionAtlasLib.motion.refine import refine_velocities

    config = MotionConfig.tiny()
    model = CardioMorphNet(config)
    _, labels = sequence_tensors(small_sequence, config, "cpu")
    ed = labels[0]
    frames = torch.cat([ed, _contracted(ed, 0.35)])
    shape = frames.shape[1:]
    initial = torch.zeros(2, 3, shape[0], shape[1] // 2, shape[2] // 2)
    target = float((frames[1] == 1).sum())
    volumes, folded = {}, {}
    for name, margin, weight in (("previous", 0.2, 0.1), ("new", FOLD_MARGIN, FOLD_WEIGHT)):
        refined = refine_velocities(model, initial, ed, one_hot(frames), shape, config, closed=True, steps=80,
                                    fold_margin=margin, fold_weight=weight)
        fields = model.fields(refined, shape, closed=True)
        carried = warp(one_hot(ed), fields["t_to_ed_forward"][1:2])
        volumes[name] = float(carried[0, 1].sum())
        folded[name] = int((jacobian_determinant_voxels(fields["ed_to_t_forward"][1:2]) <= 0).sum())
    assert float((ed == 1).sum()) > 4 * target
    assert abs(volumes["new"] - target) < 0.7 * abs(volumes["previous"] - target), (volumes, target)
    assert folded["new"] == 0
