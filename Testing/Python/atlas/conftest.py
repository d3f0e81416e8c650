"""Fixtures of the atlas tests: a tiny atlas trained once per test session (per xdist worker)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

TRAIN_PHASES = np.arange(6) / 6.0


@pytest.fixture(scope="session")
def phantom_hearts():
    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart

    # training: normal, normal, reduced EF; held out: a hypertrophic heart (unlike the mean shape)
    return [PhantomHeart.from_seed(0, index) for index in range(3)] + [PhantomHeart.from_seed(0, 3, kind="hypertrophy")]


@pytest.fixture(scope="session")
def tiny_subjects(phantom_hearts):
    """SDF samples of 4 phantom subjects (3 for training, 1 held out, its ES frame included)."""
    from CardiacMotionAtlasLib.atlas.config import AtlasConfig
    from CardiacMotionAtlasLib.atlas.sampling import subject_from_phantom

    sampling = AtlasConfig.tiny().sampling
    subjects = [subject_from_phantom(heart, TRAIN_PHASES, sampling, seed=index)
                for index, heart in enumerate(phantom_hearts[:3])]
    held = phantom_hearts[3]
    phases = np.sort(np.append(TRAIN_PHASES, held.es_phase))
    subjects.append(subject_from_phantom(held, phases, sampling, seed=3))
    return subjects


@pytest.fixture(scope="session")
def tiny_atlas(tiny_subjects):
    from CardiacMotionAtlasLib.atlas.config import AtlasConfig
    from CardiacMotionAtlasLib.atlas.train import train_atlas

    torch.set_num_threads(1)  # two xdist workers on two cores
    return train_atlas(tiny_subjects[:3], AtlasConfig.tiny(), device="cpu")


@pytest.fixture(scope="session")
def tiny_motion(tiny_atlas):
    from CardiacMotionAtlasLib.atlas.config import MeshConfig
    from CardiacMotionAtlasLib.atlas.meshing import track_template

    return track_template(tiny_atlas, MeshConfig.tiny())
