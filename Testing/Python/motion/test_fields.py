"""Warping, inversion, chaining and upsampling of voxel displacement fields."""

from __future__ import annotations

import numpy as np
import torch

from CardiacMotionAtlasLib.geometry.warp import compose, ras_to_voxel_displacement, warp
from CardiacMotionAtlasLib.motion.fields import (
    bending_energy,
    chain_fields,
    closed_chain_fields,
    invert_displacement,
    upsample_in_plane,
)
from CardiacMotionAtlasLib.motion.losses import one_hot


def _labels(small_sequence) -> torch.Tensor:
    return torch.as_tensor(small_sequence.labels[small_sequence.ed_frame].astype(np.int64))[None]


def test_zero_field_is_identity(small_sequence):
    labels = _labels(small_sequence)
    warped = warp(one_hot(labels), torch.zeros(1, 3, *labels.shape[1:])).argmax(1)
    assert torch.equal(warped, labels)
    image = torch.rand(1, 1, *labels.shape[1:])
    assert torch.allclose(warp(image, torch.zeros(1, 3, *labels.shape[1:])), image, atol=1e-5)


def test_known_translation_moves_the_mask(small_sequence):
    """Material moving by +2 voxels along i (and the matching RAS mm field): pulling the moved mask
    back with that displacement restores the ED mask; pulling the ED mask with the inverse moves it."""
    labels = _labels(small_sequence)
    moved = torch.roll(labels, shifts=2, dims=-1)  # the mask after the translation
    ras = np.zeros((3, *labels.shape[1:]), np.float32)
    ras += (small_sequence.ijk_to_ras[:3, 0] * 2.0)[:, None, None, None]  # 2 voxels along i, in RAS mm
    field = torch.as_tensor(ras_to_voxel_displacement(ras, small_sequence.ijk_to_ras))[None]
    assert torch.allclose(field[0, 0], torch.full_like(field[0, 0], 2.0), atol=1e-4)
    back = warp(one_hot(moved), field).argmax(1)
    assert torch.equal(back[..., 2:-2], labels[..., 2:-2])
    forward = warp(one_hot(labels), invert_displacement(field)).argmax(1)
    assert torch.equal(forward[..., 3:-3], moved[..., 3:-3])
    assert not torch.equal(forward, labels)


def _smooth_field(shape, amplitude=1.5, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 3, 2, 3, 3, generator=generator) * amplitude
    return torch.nn.functional.interpolate(coarse, size=shape, mode="trilinear", align_corners=True)


def test_inverse_composes_to_identity():
    field = _smooth_field((8, 24, 24), amplitude=0.8)
    inverse = invert_displacement(field, iterations=30)
    residual = compose(field, inverse)[..., 2:-2, 2:-2, 2:-2]
    assert residual.abs().max() < 0.06 and field.abs().max() > 1.0
    assert compose(field, -field)[..., 2:-2, 2:-2, 2:-2].abs().max() > 0.1  # the naive inverse is worse


def test_chains_are_consistent():
    steps = torch.cat([_smooth_field((8, 20, 20), 0.5, seed) for seed in range(3)])
    backward = torch.cat([invert_displacement(steps[i: i + 1], 30) for i in range(3)])
    ed_to_t, t_to_ed = chain_fields(steps, backward)
    assert ed_to_t.shape == (4, 3, 8, 20, 20) and torch.count_nonzero(ed_to_t[0]) == 0
    manual = compose(compose(steps[:1], steps[1:2]), steps[2:3])
    assert torch.allclose(ed_to_t[3:4], manual, atol=1e-5)
    round_trip = compose(ed_to_t[3:4], t_to_ed[3:4])[..., 2:-2, 3:-3, 3:-3]
    assert round_trip.abs().max() < 0.1 * ed_to_t[3].abs().max()


def test_upsampling_keeps_a_translation_in_place():
    half = torch.zeros(1, 3, 5, 12, 12)
    half[:, 0] = 1.0  # one half-resolution voxel along i
    full = upsample_in_plane(half, (5, 24, 24))
    assert torch.allclose(full[:, 0], torch.full_like(full[:, 0], 23 / 11), atol=1e-5)
    assert torch.count_nonzero(full[:, 1:]) == 0


def test_bending_energy_is_zero_for_affine_fields_only():
    k, j, i = torch.meshgrid(torch.arange(5.0), torch.arange(8.0), torch.arange(8.0), indexing="ij")
    affine = torch.stack([0.1 * i + 0.2 * j, 0.3 * k, 0.05 * i])[None]
    assert bending_energy(affine) < 1e-10
    assert bending_energy(affine + 0.01 * (i ** 2)[None, None]) > 1e-6


def test_closed_chains_meet_at_both_eds():
    """A cycle whose last step undoes the first two: the backward chain from the closing ED reaches
    frame 2 where the forward chain does, and the combination is the identity at both EDs."""
    first, second = _smooth_field((8, 20, 20), 0.5, 0), _smooth_field((8, 20, 20), 0.5, 1)
    loop = compose(first, second)
    steps = torch.cat([first, second, invert_displacement(loop, 40)])
    backward = torch.cat([invert_displacement(steps[i: i + 1], 40) for i in range(3)])
    out = closed_chain_fields(steps, backward)
    assert out["ed_to_t"].shape == (4, 3, 8, 20, 20)
    assert torch.allclose(out["weights"], torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))
    assert torch.count_nonzero(out["ed_to_t"][0]) == 0 and torch.count_nonzero(out["ed_to_t"][3]) == 0
    inner = (..., slice(2, -2), slice(3, -3), slice(3, -3))
    agree = (out["ed_to_t_backward"][2] - out["ed_to_t_forward"][2])[inner].abs().max()
    assert agree < 0.1 * loop.abs().max(), float(agree)
    assert torch.allclose(out["ed_to_t_forward"], chain_fields(steps, backward)[0])
    # a step that does not close the loop: the chains disagree and the combination lies between them
    broken = closed_chain_fields(torch.cat([first, second, torch.zeros_like(first)]),
                                 torch.cat([backward[:2], torch.zeros_like(first)]))
    gap = (broken["ed_to_t_backward"][2] - broken["ed_to_t_forward"][2])[inner].abs().max()
    assert gap > 0.5 * loop[inner].abs().max()
    mix = broken["ed_to_t"][2] - (broken["ed_to_t_forward"][2] + 2 * broken["ed_to_t_backward"][2]) / 3
    assert mix.abs().max() < 1e-5
