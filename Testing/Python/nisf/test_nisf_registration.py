"""A known rigid offset applied to one phantom slice is recovered (within 1 mm / 1 degree).

Slow-ish (~20 s on one CPU core): a small network must represent the anatomy accurately enough for the
offset to be observable (a 3-degree tilt moves the slice by ~2.5 mm at 50 mm from its centre).
Out-of-plane tilts of a slice through an almost axisymmetric LV are only weakly observable, so the
network first learns the anatomy from the correctly placed slices (all of them, as acquired), then
the slice whose header was moved is registered alone, with the network, latent and the other slices
frozen (``fit_subject(..., optimise=("slices",), only_slices=[...])``).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.geometry.affine import apply_affine, rigid_matrix, rotation_matrix
from CardiacMotionAtlasLib.nisf import FitConfig, NISFConfig, fit_subject, train_nisf
from CardiacMotionAtlasLib.nisf.config import NetworkConfig
from CardiacMotionAtlasLib.nisf.data import prepare_subject
from CardiacMotionAtlasLib.phantom.cmr import CMRConfig, simulate_cine
from CardiacMotionAtlasLib.phantom.heart import PhantomHeart


@pytest.mark.slow
def test_known_rigid_offset_of_one_slice_is_recovered():
    heart = PhantomHeart.from_seed(5, 0, kind="normal")
    acquisition = CMRConfig(n_frames=1, pixel_mm=2.0, matrix=80, profile_samples=3, misalignment_mm=0.0,
                            misalignment_deg=0.0, intensity_scale_range=(1.0, 1.0), noise_sigma=0.01)
    study = simulate_cine(heart, acquisition, seed=0).study
    config = NISFConfig.tiny()
    config.network = NetworkConfig(hidden=96, layers=3, latent_dim=4, spatial_frequencies=(6, 6, 5), time_frequencies=1)
    config.steps, config.slices_per_step, config.points_per_slice = 700, 6, 256
    config.motion_correction = False  # the acquired slices are where their headers say
    config.regularisation.rotation = config.regularisation.translation = config.regularisation.through_plane = 1e-5
    trained = train_nisf([study], config, device="cpu")

    moved = copy.deepcopy(study)
    target = moved.view("4CH")[0]
    _, ny, nx = target.image.shape_zyx
    centre = apply_affine(target.image.ijk_to_ras, [(nx - 1) / 2, (ny - 1) / 2, 0])
    rotation = rotation_matrix([0.3, 1.0, -0.5], np.deg2rad(3.0))  # oblique: in- and out-of-plane parts
    offset = rigid_matrix(rotation, centre - rotation @ centre + np.array([2.0, -2.5, 1.5]))  # 3.5 mm
    target.image.ijk_to_ras = np.linalg.inv(offset) @ target.image.ijk_to_ras  # the header is now wrong
    target.labels.ijk_to_ras = target.image.ijk_to_ras.copy()

    subject = prepare_subject(moved, config, frame=trained.subjects[0].frame)
    register = FitConfig(steps=300, slices_per_step=1, points_per_slice=1024, lr_rotation_deg=0.05,
                         lr_translation_mm=0.05, lr_through_plane_mm=0.05, offset_warmup_fraction=0.0)
    fit = fit_subject(trained, subject, register,
                      initial=trained.subject_fit(0), optimise=("slices",), only_slices=[target.image.name],
                      motion_correction=True)
    position = [s.name for s in fit.subject.slices].index(target.image.name)
    residual = fit.slice_rigid_transforms_ras()[position] @ np.linalg.inv(offset)  # identity when recovered
    error_mm = np.linalg.norm((residual @ np.r_[centre, 1.0])[:3] - centre)
    error_deg = np.degrees(np.arccos(np.clip((np.trace(residual[:3, :3]) - 1) / 2, -1, 1)))
    assert error_mm < 1.0 and error_deg < 1.0, (error_mm, error_deg)
    # the other slices did not move
    for other, geometry in zip(fit.subject.slices, fit.corrected_geometries()):
        if other.name != target.image.name:
            assert np.allclose(geometry, other.nominal_ijk_to_ras, atol=1e-9)
    assert torch.equal(fit.latent, trained.subject_fit(0).latent)
