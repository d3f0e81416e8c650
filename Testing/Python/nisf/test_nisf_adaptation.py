"""Test-time adaptation of the network to a new subject (``FitConfig.lr_network``): the shared network
stays as trained, the subject's copy fits its own slices better than the frozen network, and the copy
travels with the saved fit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from CardiacMotionAtlasLib.nisf import FitConfig, fit_subject
from CardiacMotionAtlasLib.nisf.fit import load_subject_fit, save_subject_fit
from CardiacMotionAtlasLib.nisf.sampling import sample_grid, standard_grid

FIT = FitConfig(steps=80, slices_per_step=6, points_per_slice=128, rv_probe_steps=0, intersection_weight=0.0)


def _state(network):
    return {k: v.detach().clone() for k, v in network.state_dict().items()}


def _late_mse(fit):
    mse = fit.history["mse"]
    return float(np.mean(mse[-20:]))


def test_adapted_fit_keeps_the_shared_network_and_fits_the_subject_better(tiny_trained, nisf_sims):
    study = nisf_sims[1].study  # not a training subject of the tiny model
    before = _state(tiny_trained.network)
    frozen = fit_subject(tiny_trained, study, replace(FIT, lr_network=0.0))
    adapted = fit_subject(tiny_trained, study, replace(FIT, lr_network=1e-3, network_anchor=0.0))
    assert frozen.network is tiny_trained.network and not frozen.adapted
    assert adapted.network is not tiny_trained.network and adapted.adapted
    after = _state(tiny_trained.network)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the shared model is untouched
    moved = max(float((adapted.network.state_dict()[k] - before[k]).abs().max()) for k in before)
    assert moved > 1e-4
    assert not any(p.requires_grad for p in adapted.network.parameters())
    # same seed, same batches: only the network's freedom differs, and it buys a lower intensity error
    assert _late_mse(adapted) < 0.95 * _late_mse(frozen)


def test_the_anchor_holds_the_network_near_the_trained_weights(tiny_trained, nisf_sims):
    study = nisf_sims[1].study
    trained = _state(tiny_trained.network)

    def drift(anchor: float) -> float:
        fit = fit_subject(tiny_trained, study, replace(FIT, lr_network=1e-3, network_anchor=anchor))
        state = fit.network.state_dict()
        return float(sum(((state[k] - trained[k]) ** 2).sum() for k in trained))

    assert drift(100.0) < 0.5 * drift(0.0)


def test_adapted_fit_round_trips_with_its_network(tiny_trained, nisf_sims, tmp_path):
    study = nisf_sims[1].study
    fit = fit_subject(tiny_trained, study, replace(FIT, steps=30, lr_network=1e-3))
    path = save_subject_fit(fit, tmp_path / "fit.pt")
    restored = load_subject_fit(tiny_trained, path)
    assert restored.adapted and restored.network is not tiny_trained.network
    matrix, shape = standard_grid(fit, spacing_mm=8.0)
    a = sample_grid(fit, matrix, shape, [0.0, 0.5])
    b = sample_grid(restored, matrix, shape, [0.0, 0.5])
    assert np.array_equal(a.labels.array, b.labels.array)
    assert np.allclose(a.intensity.array, b.intensity.array, atol=1e-6)
    # the shared network gives a different field: the saved copy is what made the samples
    shared = load_subject_fit(tiny_trained, path)
    shared.network = tiny_trained.network
    c = sample_grid(shared, matrix, shape, [0.0, 0.5])
    assert not np.allclose(a.intensity.array, c.intensity.array, atol=1e-4)
