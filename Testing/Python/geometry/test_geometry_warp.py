"""Warping by displacement fields: identity, translations, composition, RAS<->voxel conversion."""

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.geometry.affine import make_ijk_to_ras
from CardiacMotionAtlasLib.geometry.warp import (
    compose, integrate_velocity, jacobian_determinant_voxels, ras_to_voxel_displacement,
    voxel_to_ras_displacement, warp,
)


def _blob(shape=(12, 14, 16)):
    k, j, i = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    volume = np.exp(-((i - 8.0) ** 2 + (j - 7.0) ** 2 + (k - 6.0) ** 2) / 8.0)
    return torch.tensor(volume, dtype=torch.float64)[None, None]


def test_zero_field_is_identity():
    image = _blob()
    out = warp(image, torch.zeros(1, 3, *image.shape[2:], dtype=image.dtype))
    assert torch.allclose(out, image, atol=1e-12)


def test_integer_translation_moves_mask_by_that_translation():
    mask = torch.zeros(1, 1, 10, 12, 14, dtype=torch.float64)
    mask[..., 3:6, 4:8, 5:9] = 1.0
    shift = torch.zeros(1, 3, 10, 12, 14, dtype=torch.float64)
    shift[:, 0] = 2.0   # di: +2 voxels along x
    shift[:, 2] = -1.0  # dk: -1 voxel along z
    out = warp(mask, shift, mode="nearest")
    # out(p) = mask(p + u): the object appears shifted by -u
    expected = torch.zeros_like(mask)
    expected[..., 4:7, 4:8, 3:7] = 1.0
    assert torch.equal(out, expected)


def test_compose_of_translations_adds():
    a = torch.zeros(1, 3, 8, 8, 8)
    b = torch.zeros(1, 3, 8, 8, 8)
    a[:, 1] = 1.5
    b[:, 0] = -0.5
    c = compose(a, b)
    assert torch.allclose(c[:, 0], torch.full_like(c[:, 0], -0.5))
    assert torch.allclose(c[:, 1], torch.full_like(c[:, 1], 1.5))


def test_integrated_velocity_is_invertible_and_unfolded():
    torch.manual_seed(0)
    velocity = torch.nn.functional.interpolate(torch.randn(1, 3, 4, 4, 4) * 0.8, size=(20, 20, 20),
                                               mode="trilinear", align_corners=True)
    forward = integrate_velocity(velocity)
    backward = integrate_velocity(-velocity)
    roundtrip = compose(forward, backward)
    assert roundtrip[..., 4:-4, 4:-4, 4:-4].abs().max() < 0.2  # trilinear resampling error of the composition, voxels
    assert jacobian_determinant_voxels(forward).min() > 0


def test_ras_voxel_conversion_round_trips_with_anisotropic_oblique_grid():
    ijk_to_ras = make_ijk_to_ras(spacing=(1.5, 1.5, 8.0), origin=(10.0, -5.0, 3.0),
                                 direction=np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    voxels = np.zeros((3, 2, 2, 2), np.float32)
    voxels[0] = 1.0  # one voxel along i
    ras = voxel_to_ras_displacement(voxels, ijk_to_ras)
    assert np.allclose(ras[:, 0, 0, 0], ijk_to_ras[:3, 0])
    assert np.allclose(ras_to_voxel_displacement(ras, ijk_to_ras), voxels, atol=1e-6)
    tensor = torch.tensor(voxels)[None]
    assert torch.allclose(ras_to_voxel_displacement(voxel_to_ras_displacement(tensor, ijk_to_ras), ijk_to_ras),
                          tensor, atol=1e-5)


def test_mismatched_grids_raise():
    with pytest.raises(ValueError, match="grid"):
        warp(torch.zeros(1, 1, 4, 4, 4), torch.zeros(1, 3, 4, 4, 5))
