"""The implied-volume term of the CVAE loss (``index_weight``): ES LV masks pulled by the generated flow
against the same masks pulled by the training flow; the masks travel with the pairs and the augmentation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.synthesis import SynthConfig
from CardiacMotionAtlasLib.synthesis.config import AugmentConfig
from CardiacMotionAtlasLib.synthesis.data import augment, concat_pairs, stack_pairs
from CardiacMotionAtlasLib.synthesis.flow_loss import index_error, reconstruction_loss
from CardiacMotionAtlasLib.synthesis.errors import SynthesisError

def test_the_index_term_is_zero_for_the_training_flow_and_sees_a_too_weak_contraction(ball_points, ball_lv_masks):
    masks = ball_lv_masks
    true_flow = 0.15 * ball_points  # pull from farther out: the ED (generated) LV is larger than the ES one
    assert index_error(true_flow, true_flow, masks).item() == pytest.approx(0.0, abs=1e-7)
    half = index_error(0.5 * true_flow, true_flow, masks).item()
    assert half > 0.01
    assert index_error(0.9 * true_flow, true_flow, masks).item() < 0.25 * half
    # a pure translation changes no volume: the term does not see it (the endpoint error does)
    shift = torch.zeros_like(true_flow)
    shift[:, 0] = 1.0
    assert index_error(shift, torch.zeros_like(true_flow), masks).item() < 1e-3


def test_the_index_term_enters_the_loss_only_with_masks_and_a_weight(ball_points, ball_lv_masks):
    masks = ball_lv_masks
    target = 0.15 * ball_points
    predicted = 0.5 * target
    config = replace(SynthConfig.tiny(), jacobian_weight=0.0, index_weight=0.0, index_log_ratio=False)
    off, endpoint = reconstruction_loss(predicted, target, config, masks)
    assert off.item() == pytest.approx(endpoint.item())
    on, _ = reconstruction_loss(predicted, target, replace(config, index_weight=10.0), masks)
    assert on.item() == pytest.approx(endpoint.item() + 10.0 * index_error(predicted, target, masks).item(), rel=1e-5)
    without_masks, _ = reconstruction_loss(predicted, target, replace(config, index_weight=10.0))
    assert without_masks.item() == pytest.approx(endpoint.item())
    with pytest.raises(SynthesisError):
        replace(config, index_weight=-1.0).validate()


def test_gradient_descent_on_the_index_term_restores_the_contraction(ball_points, ball_lv_masks):
    masks = ball_lv_masks
    target = 0.15 * ball_points
    scale = torch.tensor(0.4, requires_grad=True)
    optimizer = torch.optim.SGD([scale], lr=2.0)
    for _ in range(60):
        optimizer.zero_grad()
        index_error(scale * target, target, masks).backward()
        optimizer.step()
    assert scale.item() == pytest.approx(1.0, abs=0.1)


def test_masks_travel_with_the_pairs_and_the_augmentation(synth_pairs, synth_config):
    data = stack_pairs(synth_pairs, synth_config)
    assert data.masks_es is not None and data.masks_es.shape[1] == 2
    labels = np.stack([p.labels_es for p in synth_pairs])
    assert torch.equal(data.masks_es[:, 0].bool(), torch.as_tensor(labels == 1))
    assert torch.equal(data.masks_es[:, 1].bool(), torch.as_tensor(labels == 2))
    assert concat_pairs(data, data).masks_es.shape[0] == 2 * len(synth_pairs)
    no_labels = [replace(p, labels_es=None) for p in synth_pairs]
    assert stack_pairs(no_labels, synth_config).masks_es is None
    options = AugmentConfig(noise_hu=5.0, shift_vox=2.0, zoom=0.1)
    plain = augment(data.es, data.ed, data.flow, options, 512.0, torch.Generator().manual_seed(3))
    with_masks = augment(data.es, data.ed, data.flow, options, 512.0, torch.Generator().manual_seed(3), data.masks_es)
    for a, b in zip(plain, with_masks[:3]):  # the same draws with or without masks
        assert torch.equal(a, b)
    # the masks moved like the ES frame: masked mean intensity of the blood pool stays that of blood
    es_aug, masks_aug = with_masks[0], with_masks[3]
    blood = (masks_aug[:, :1] > 0.5)
    assert es_aug[blood].mean() > es_aug[~blood].mean() + 0.2


def test_a_tiny_cvae_trains_with_the_index_term(synth_pairs, synth_config):
    from CardiacMotionAtlasLib.synthesis.train import train_cvae, train_flow_estimator

    config = replace(synth_config, index_weight=5.0)
    estimator = train_flow_estimator(synth_pairs, config, device="cpu")
    trained = train_cvae(synth_pairs, estimator, config, device="cpu")
    assert trained.result.step == config.cvae_steps
    assert np.isfinite(trained.result.metrics["index"]) and trained.result.metrics["index"] >= 0.0
    assert np.isfinite(trained.result.metrics["loss"])
    assert trained.config.index_weight == 5.0
    plain = train_cvae(synth_pairs, estimator, replace(config, index_weight=0.0), device="cpu")
    assert "index" not in plain.result.metrics


def test_the_implied_volume_term_is_on_by_default_and_travels_in_the_checkpoint(trained_synth):
    """The default CVAE trains with the term (chosen on held-out training-family hearts); a loaded model
    keeps the value it was trained with."""
    from CardiacMotionAtlasLib.synthesis.train import load_synthesis

    assert SynthConfig().index_weight > 0
    loaded = load_synthesis(trained_synth.checkpoint_path, device="cpu")
    assert loaded.config.index_weight == trained_synth.config.index_weight > 0
    assert "index" in trained_synth.result.metrics if trained_synth.result is not None else True
