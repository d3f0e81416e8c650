"""Faster 4D sampling (benchmarks.nisf_speed): the shared per-chunk encoding gives the full forward's
values, and coarse-to-fine labels agree with every-voxel labels while the network sees far fewer
points."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.nisf import fit_subject
from CardiacMotionAtlasLib.nisf import sampling
from CardiacMotionAtlasLib.nisf.config import NetworkConfig
from CardiacMotionAtlasLib.nisf.network import NISFNetwork
from CardiacMotionAtlasLib.nisf.refine import sample_labels_coarse_to_fine


def test_static_plus_phase_preactivation_equals_the_full_forward():
    torch.manual_seed(0)
    network = NISFNetwork(NetworkConfig(hidden=32, layers=2, latent_dim=8, spatial_frequencies=(4, 3, 2),
                                        time_frequencies=3))
    points, latent = torch.rand(200, 3) * 2 - 1, torch.randn(8)
    phases = torch.tensor([0.0, 0.35, 0.9])
    static, offsets = network.static_preactivation(points, latent), network.phase_preactivation(phases)
    for t, phase in enumerate(phases):
        intensity, logits = network(points, torch.full((200,), float(phase)), latent)
        shared_intensity, shared_logits = network.from_preactivation(static + offsets[t])
        torch.testing.assert_close(shared_intensity, intensity, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(shared_logits, logits, atol=1e-5, rtol=1e-5)
    # the phase really matters: another phase's offset gives other values
    assert not torch.allclose(network.from_preactivation(static + offsets[0])[1],
                              network.from_preactivation(static + offsets[1])[1])


@pytest.fixture(scope="module")
def fitted(tiny_trained, nisf_sims):
    return fit_subject(tiny_trained, nisf_sims[0].study, replace(tiny_trained.config.fit, steps=5))


def test_shared_encoding_samples_the_same_grid(fitted):
    matrix, shape = sampling.standard_grid(fitted, 6.0)
    a = sampling.sample_grid(fitted, matrix, shape, [0.0, 0.5], shared_encoding=False)
    b = sampling.sample_grid(fitted, matrix, shape, [0.0, 0.5], shared_encoding=True)
    np.testing.assert_allclose(b.intensity.array, a.intensity.array, atol=1e-2 * float(np.abs(a.intensity.array).max()))
    assert (b.labels.array == a.labels.array).mean() > 0.999


@pytest.mark.parametrize("spacing", [3.5, 4.0])  # odd and even grid sizes
def test_coarse_to_fine_labels_agree_and_evaluate_fewer_points(fitted, monkeypatch, spacing):
    matrix, shape = sampling.standard_grid(fitted, spacing)
    phases = np.array([0.0, 0.5])
    full = sampling.sample_grid(fitted, matrix, shape, phases, want_intensity=False, coarse_to_fine=False,
                                largest_component=False).labels.array
    seen = []
    original = sampling.sample_points

    def counting(fit, points, phase_list, **kwargs):
        seen.append(len(points) * len(phase_list))
        return original(fit, points, phase_list, **kwargs)

    monkeypatch.setattr(sampling, "sample_points", counting)
    fast = sample_labels_coarse_to_fine(fitted, matrix, shape, phases, chunk=4096).reshape(full.shape)
    heart = (full > 0) | (fast > 0)
    assert heart.any()
    assert (fast[heart] == full[heart]).mean() > 0.97
    assert sum(seen) < 0.6 * full.size  # the coarse grid (~1/8) plus the boundary band
