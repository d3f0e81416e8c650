"""Tiny motion fixtures: a 4-frame, 24x24 SAX phantom sequence (5 mm pixels, no misalignment)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def motion_heart():
    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart

    return PhantomHeart.from_seed(0, 0, kind="normal")


@pytest.fixture(scope="session")
def small_cine(motion_heart):
    from CardiacMotionAtlasLib.phantom.cmr import CMRConfig, simulate_cine

    config = CMRConfig(n_frames=4, matrix=24, pixel_mm=5.0, lax_views=(), profile_samples=1,
                       misalignment_mm=0.0, misalignment_deg=0.0)
    return simulate_cine(motion_heart, config, seed=3)


@pytest.fixture(scope="session")
def small_sequence(small_cine):
    from CardiacMotionAtlasLib.motion import sequence_from_study

    return sequence_from_study(small_cine.study, ed_es_only=True)


@pytest.fixture(scope="session")
def tiny_trained(small_sequence, tmp_path_factory):
    from CardiacMotionAtlasLib.motion import MotionConfig, train_motion

    path = tmp_path_factory.mktemp("motion") / "motion.pt"
    config = MotionConfig.tiny().with_changes(seg_steps=6, steps=6, checkpoint_every=3)
    return train_motion([small_sequence], config, checkpoint_path=path, device="cpu")
