"""Fixtures of the NISF++ suite: tiny phantom studies and one tiny trained model, built once."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def nisf_hearts():
    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart

    return [PhantomHeart.from_seed(5, i, kind="normal") for i in range(2)]


@pytest.fixture(scope="session")
def nisf_sims(nisf_hearts):
    from CardiacMotionAtlasLib.phantom.cmr import CMRConfig, simulate_cine

    config = CMRConfig(n_frames=4, pixel_mm=3.5, matrix=48, profile_samples=3)
    return [simulate_cine(heart, config, seed=2) for heart in nisf_hearts]


@pytest.fixture(scope="session")
def tiny_trained(nisf_sims, tmp_path_factory):
    """A tiny model trained on the first simulated study (with a checkpoint)."""
    from CardiacMotionAtlasLib.nisf import NISFConfig, train_nisf

    torch.set_num_threads(2)
    path = tmp_path_factory.mktemp("nisf") / "nisf.pt"
    config = NISFConfig.tiny()
    config.steps = 60
    config.checkpoint_every = 30
    trained = train_nisf([nisf_sims[0].study], config, checkpoint_path=path, device="cpu")
    return trained
