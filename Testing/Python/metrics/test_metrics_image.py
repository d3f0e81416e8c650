"""PSNR, SSIM and NCC of images."""

import numpy as np
import pytest

from CardiacMotionAtlasLib.metrics.image import ncc, psnr, ssim


@pytest.fixture
def smooth_image():
    z, y, x = np.mgrid[0:16, 0:32, 0:32] / 8.0
    return np.sin(x) * np.cos(y) + 0.5 * np.sin(z + x)


def test_psnr_of_known_noise():
    rng = np.random.default_rng(0)
    reference = rng.random((32, 32))
    noisy = reference + 0.1 * rng.choice([-1.0, 1.0], size=reference.shape)  # MSE exactly 0.01
    assert psnr(reference, noisy, data_range=1.0) == pytest.approx(20.0, abs=1e-9)
    assert psnr(reference, noisy, data_range=2.0) == pytest.approx(20.0 + 20 * np.log10(2.0), abs=1e-9)
    assert psnr(reference, reference) == float("inf")
    with pytest.raises(ValueError):
        psnr(np.zeros((4, 4)), np.ones((4, 4)))  # constant reference, no data_range


def test_ssim_2d_and_3d(smooth_image):
    assert ssim(smooth_image, smooth_image) == pytest.approx(1.0)
    noisy = smooth_image + np.random.default_rng(1).normal(scale=0.3, size=smooth_image.shape)
    value = ssim(smooth_image, noisy)
    assert 0.0 < value < 0.9
    assert ssim(smooth_image[0], noisy[0]) < 0.95
    assert ssim(smooth_image[:1], smooth_image[:1]) == pytest.approx(1.0)  # (1, y, x) -> 2D
    assert ssim(smooth_image[:5, :5, :5], smooth_image[:5, :5, :5]) == pytest.approx(1.0)  # window 5
    with pytest.raises(ValueError):
        ssim(smooth_image[:2, :2, :2], smooth_image[:2, :2, :2])


def test_ncc_values(smooth_image):
    assert ncc(smooth_image, 3.0 * smooth_image + 2.0) == pytest.approx(1.0)
    assert ncc(smooth_image, -smooth_image) == pytest.approx(-1.0)
    rng = np.random.default_rng(2)
    assert abs(ncc(rng.normal(size=10000), rng.normal(size=10000))) < 0.05
    assert np.isnan(ncc(np.ones((4, 4)), np.arange(16.0).reshape(4, 4)))
    mask = np.zeros(smooth_image.shape, bool)
    mask[:8] = True
    other = smooth_image.copy()
    other[8:] = rng.normal(size=other[8:].shape)
    assert ncc(smooth_image, other, mask=mask) == pytest.approx(1.0)
    assert ncc(smooth_image, other) < 0.9
    with pytest.raises(ValueError):
        ncc(smooth_image, smooth_image[:-1])
