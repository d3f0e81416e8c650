"""Fixtures of the NISF++ suite: tiny phantom studies and one tiny trained model, built once."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread():
    """One intra-op thread: these tests run many small batches, which several threads (on a shared
    machine, or beside another pytest-xdist worker) slow down many times over instead of speeding up."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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

    path = tmp_path_factory.mktemp("nisf") / "nisf.pt"
    config = NISFConfig.tiny()
    config.steps = 60
    config.checkpoint_every = 30
    losses = []

    class Record:
        def start(self, total, description="", *, initial=0):
            pass

        def update(self, step, **metrics):
            losses.append(metrics["loss"])

        def close(self):
            pass

    trained = train_nisf([nisf_sims[0].study], config, checkpoint_path=path, device="cpu", progress=Record())
    trained.losses = losses
    return trained
