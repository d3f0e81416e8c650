"""Bad inputs raise SynthesisError naming the input and the problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.data import DisplacementField, ImageSequence
from CardiacMotionAtlasLib.synthesis import SynthConfig, SynthesisError
from CardiacMotionAtlasLib.synthesis.data import stack_pairs
from CardiacMotionAtlasLib.synthesis.grid import as_frame, pull_frame
from CardiacMotionAtlasLib.synthesis.sample import generate


def _frame(shape=(8, 9, 10)):
    rng = np.random.default_rng(0)
    return rng.normal(0, 100, shape).astype(np.float32), np.diag([2.0, 2.0, 3.0, 1.0])


def test_non_3d_frames_are_refused():
    volume, matrix = _frame()
    with pytest.raises(SynthesisError, match="3D"):
        as_frame(volume[None], matrix)
    with pytest.raises(SynthesisError, match="3D"):
        as_frame(volume[0], matrix)
    sequence = ImageSequence(np.stack([volume, volume]), matrix, name="cine")
    with pytest.raises(SynthesisError, match="cine.*2 frames"):
        as_frame(sequence)
    with pytest.raises(SynthesisError, match="IJK->RAS"):
        as_frame(volume)


def test_nan_frame_and_nan_flow_are_refused():
    volume, matrix = _frame()
    bad = volume.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(SynthesisError, match="1 NaN"):
        as_frame(bad, matrix, "ES frame")
    flow = DisplacementField(np.zeros((3,) + volume.shape, np.float32), matrix, name="w")
    flow.vectors[0, 0, 0, 0] = np.inf
    with pytest.raises(SynthesisError, match="'w'.*NaN"):
        pull_frame(volume, matrix, flow)


def test_anisotropic_geometry_mismatch_between_frame_and_flow_is_refused():
    volume, matrix = _frame()
    good = DisplacementField(np.ones((3,) + volume.shape, np.float32), matrix, name="w")
    moved = pull_frame(volume, matrix, good)  # same grid: fine, and it moves the frame
    assert np.abs(moved - volume).max() > 1.0
    other = matrix.copy()
    other[2, 2] = 2.0  # 2 x 2 x 2 mm flow grid for a 2 x 2 x 3 mm frame, same shape
    flow = DisplacementField(np.zeros((3,) + volume.shape, np.float32), other, name="w")
    with pytest.raises(SynthesisError, match=r"geometry differs.*spacing \[2.0, 2.0, 2.0\] vs \[2.0, 2.0, 3.0\]"):
        pull_frame(volume, matrix, flow)
    small = DisplacementField(np.zeros((3, 8, 9, 9), np.float32), matrix, name="w")
    with pytest.raises(SynthesisError, match="grid"):
        pull_frame(volume, matrix, small)


def test_generate_refuses_bad_labels_latents_and_mode(trained_synth, es_frame):
    volume = es_frame.image.array[0]
    with pytest.raises(SynthesisError, match="labels grid"):
        generate(trained_synth, volume, es_frame.image.ijk_to_ras, labels=np.zeros((3, 3, 3)))
    with pytest.raises(SynthesisError, match="latents"):
        generate(trained_synth, volume, es_frame.image.ijk_to_ras, latents=torch.zeros(2, 99))
    with pytest.raises(SynthesisError, match="latents"):
        generate(trained_synth, volume, es_frame.image.ijk_to_ras,
                 latents=torch.full((1, trained_synth.config.latent_dim), float("nan")))
    with pytest.raises(SynthesisError, match="unknown latent mode"):
        generate(trained_synth, volume, es_frame.image.ijk_to_ras, mode="spiral")


def test_pairs_off_the_working_grid_and_bad_configs_are_refused(synth_pairs, synth_config):
    from dataclasses import replace

    pair = replace(synth_pairs[0], es=synth_pairs[0].es[:-1])
    with pytest.raises(SynthesisError, match="working grid"):
        stack_pairs([pair], synth_config)
    with pytest.raises(SynthesisError, match="divisible"):
        SynthConfig(working_size=20).validate()
    with pytest.raises(SynthesisError, match="one entry per pyramid level"):
        SynthConfig(cvae_channels=(4, 4)).validate()
