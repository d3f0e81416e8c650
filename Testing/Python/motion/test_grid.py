"""The model's training grid: a sequence at another pixel size or frame count is refused; motion training
on a subset of frames (ED and ES kept) whatever the acquisition's frame count."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError
from CardiacMotionAtlasLib.motion import MotionConfig, estimate_motion, train_motion
from CardiacMotionAtlasLib.motion.errors import MotionConfigError
from CardiacMotionAtlasLib.motion.preprocessing import check_grid
from CardiacMotionAtlasLib.motion.train import training_frames
from CardiacMotionAtlasLib.training import make_generator

RECORD = {"intensity_percentile": 99.0, "preset": None, "reduction": None, "pixel_mm": 4.0,
          "frames_per_sequence": 10, "slices": 12}


def test_check_grid_refuses_another_pixel_size_or_frame_count_and_names_both():
    check_grid(RECORD, "m.pt", 4.0, 10)
    check_grid(RECORD, "m.pt", 3.5, 12)  # within the tolerances
    check_grid({"intensity_percentile": 99.0}, "m.pt", 2.5, 20)  # an older record: nothing to check
    with pytest.raises(CardiacMotionAtlasError, match=r"^m\.pt: s1 has 2\.5 mm pixels \(trained at 4 mm\);"):
        check_grid(RECORD, "m.pt", 2.5, 10, "s1")
    with pytest.raises(CardiacMotionAtlasError, match=r"20 frames \(trained with 10\)"):
        check_grid(RECORD, "m.pt", 4.0, 20, "s1")


def test_estimate_refuses_a_model_trained_at_another_grid(tiny_trained, small_sequence):
    # the tiny model was trained at 5 mm / 4 frames; the same images declared at 2.5 mm are refused
    finer = dataclasses.replace(small_sequence, ijk_to_ras=small_sequence.ijk_to_ras @ np.diag([0.5, 0.5, 1.0, 1.0]))
    with pytest.raises(CardiacMotionAtlasError, match=r"motion\.pt: .*2\.5 mm pixels \(trained at 5 mm\)"):
        estimate_motion(tiny_trained, finer, samples=2)
    estimate = estimate_motion(tiny_trained, finer, samples=2, check_grid=False)  # explicitly allowed
    assert estimate.ed_to_t.shape[0] == small_sequence.n_frames


def test_training_frames_keep_the_labelled_positions_and_vary():
    picks = [training_frames(20, {0: None, 7: None}, 6, make_generator(0, stream=s)) for s in range(20)]
    for p in picks:
        assert len(p) == 6 and p == sorted(p) and {0, 7} <= set(p) and max(p) < 20
    assert len({tuple(p) for p in picks}) > 5  # different subsets from step to step
    assert training_frames(8, {0: None, 3: None}, 0, make_generator(0)) == list(range(8))
    assert training_frames(8, {0: None, 3: None}, 10, make_generator(0)) == list(range(8))
    with pytest.raises(MotionConfigError):
        MotionConfig.tiny().with_changes(train_frames=1).validate()


def test_training_on_a_subset_of_frames_changes_what_the_steps_see(small_sequence):
    config = MotionConfig.tiny().with_changes(seg_steps=2, steps=3, checkpoint_every=100)
    full = train_motion([small_sequence], config, device="cpu", calibrate=False)
    subset = train_motion([small_sequence], config.with_changes(train_frames=3), device="cpu", calibrate=False)
    names = [n for n, _ in full.model.named_parameters() if n.startswith("deformnet.")]
    a, b = dict(full.model.named_parameters()), dict(subset.model.named_parameters())
    assert any(not torch.equal(a[n], b[n]) for n in names)  # the steps saw other frames
    assert all(torch.isfinite(b[n]).all() for n in names)
    assert subset.config.train_frames == 3


def test_warped_labels_see_background_outside_the_field_of_view():
    from CardiacMotionAtlasLib.motion.evaluation import soft_volumes, warp_one_hot
    from CardiacMotionAtlasLib.motion.losses import one_hot

    labels = np.zeros((2, 12, 12), np.int64)
    labels[:, 4:8, 9:] = 3  # a structure touching the high-x edge
    shift = torch.zeros((1, 3, 2, 12, 12))
    shift[:, 0] = 2.0  # pull from two voxels further along x: the last two columns come from outside
    volumes = soft_volumes(shift, labels, 1.0)
    assert volumes[2, 0] == pytest.approx(3 * 4 * 2, abs=1e-4)  # columns 7-9 take 9-11; 10 and 11 pull background
    hot = one_hot(torch.as_tensor(labels)[None])
    replicated = warp_one_hot(hot.expand(1, -1, -1, -1, -1), shift, margin=0)  # the edge voxel's class, replicated
    assert float(replicated[:, 3].sum()) == pytest.approx(5 * 4 * 2, abs=1e-4)
    inside = torch.zeros_like(shift)
    assert soft_volumes(inside, labels, 1.0)[2, 0] == pytest.approx(np.count_nonzero(labels == 3), abs=1e-4)
    assert torch.allclose(warp_one_hot(hot, shift).sum(1), torch.ones((1, 2, 12, 12)))  # still probabilities
