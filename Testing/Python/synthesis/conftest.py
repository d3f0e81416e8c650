"""Fixtures of the synthesis suite: tiny phantom CT pairs and one tiny trained model, built once."""

from __future__ import annotations

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
