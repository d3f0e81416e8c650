"""Fixtures of the synthesis suite: tiny phantom CT pairs and one tiny trained model, built once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def synth_config():
    from CardiacMotionAtlasLib.synthesis import SynthConfig

    return SynthConfig.tiny()


@pytest.fixture(scope="session")
def synth_hearts():
    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart

    return [PhantomHeart.from_seed(3, i) for i in range(3)]


@pytest.fixture(scope="session")
def synth_pairs(synth_hearts, synth_config):
    from CardiacMotionAtlasLib.synthesis import phantom_pairs

    return phantom_pairs(synth_hearts, synth_config)


@pytest.fixture(scope="session")
def trained_synth(synth_pairs, synth_config, tmp_path_factory):
    from CardiacMotionAtlasLib.synthesis import train_synthesis

    out = tmp_path_factory.mktemp("synth_model")
    return train_synthesis(synth_pairs, synth_config, out_dir=out, device="cpu")


@pytest.fixture(scope="session")
def es_frame(synth_hearts):
    """A full-resolution-ish ES CT frame of the first heart (4 mm, own grid) with its labels."""
    from CardiacMotionAtlasLib.phantom.ct import CTConfig, simulate_ct

    heart = synth_hearts[0]
    return simulate_ct(heart, [heart.es_phase], CTConfig.tiny(), seed=1)


BALL_GRID = 16
"""Side (voxels) of the ball phantom's grid."""


@pytest.fixture()
def ball_points() -> torch.Tensor:
    """Voxel coordinates of a 16^3 grid centred at 0, ``(1, 3, 16, 16, 16)`` (x, y, z)."""
    k, j, i = torch.meshgrid(*(torch.arange(BALL_GRID, dtype=torch.float32),) * 3, indexing="ij")
    return torch.stack([i, j, k])[None] - (BALL_GRID - 1) / 2


@pytest.fixture()
def ball_lv_masks(ball_points) -> torch.Tensor:
    """An ES LV on that grid: blood ball of radius 3 voxels in a myocardial shell out to 5 voxels, as
    :func:`~CardiacMotionAtlasLib.synthesis.data.lv_masks` (blood, myocardium)."""
    from CardiacMotionAtlasLib.synthesis.data import lv_masks

    r = ball_points.pow(2).sum(1, keepdim=True).sqrt()
    return lv_masks(torch.where(r <= 3.0, 1, torch.where(r <= 5.0, 2, 0)))


@pytest.fixture()
def loads_as_before_options(synth_pairs, tmp_path):
    """``check(config, keys)``: train a tiny CVAE with ``config``, delete ``keys`` from its stored config (a
    checkpoint written before those options existed), and assert it loads with each of them False and
    samples exactly as the trained model. Returns the path of the unmodified checkpoint."""
    from CardiacMotionAtlasLib.synthesis import load_synthesis
    from CardiacMotionAtlasLib.synthesis.sample import sample_flows
    from CardiacMotionAtlasLib.synthesis.train import train_cvae, train_flow_estimator

    def check(config, keys) -> Path:
        estimator = train_flow_estimator(synth_pairs, config, steps=1, device="cpu")
        trained = train_cvae(synth_pairs, estimator, config, checkpoint_path=tmp_path / "synth.pt", device="cpu")
        raw = torch.load(tmp_path / "synth.pt", weights_only=True)
        stored = raw.get("config")
        assert isinstance(stored, dict) and all(key in stored for key in keys)
        for key in keys:
            del stored[key]
        torch.save(raw, tmp_path / "old.pt")
        loaded = load_synthesis(tmp_path / "old.pt", device="cpu")
        assert not any(getattr(loaded.config, key) for key in keys)
        latents = torch.randn(2, config.latent_dim, generator=torch.Generator().manual_seed(0))
        es = torch.as_tensor(synth_pairs[0].es)
        assert torch.equal(sample_flows(loaded, es, latents), sample_flows(trained, es, latents))
        return tmp_path / "synth.pt"

    return check
