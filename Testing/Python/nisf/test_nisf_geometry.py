"""NISF++ geometry: standardised frame, slice mapping, rotations, PSF, and input validation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.stats import norm

from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError, CineStudyError
from CardiacMotionAtlasLib.geometry.affine import apply_affine, rotation_matrix
from CardiacMotionAtlasLib.nisf import NISFConfig, NISFInputError
from CardiacMotionAtlasLib.nisf.data import prepare_subject
from CardiacMotionAtlasLib.nisf.psf import blur_monte_carlo, psf_sigmas_mm
from CardiacMotionAtlasLib.nisf.slices import SubjectParameters, rotation_from_vector_deg
from CardiacMotionAtlasLib.nisf.model import SubjectFit
from CardiacMotionAtlasLib.nisf.network import NISFNetwork


def test_standard_frame_matches_the_phantom_lv_frame(tiny_cine, heart):
    subject = prepare_subject(tiny_cine.study, NISFConfig.tiny())
    frame = subject.frame
    truth = heart.local_to_ras[:3, :3]  # x towards RV, z base -> apex
    for axis in range(3):
        assert frame.axes_ras[:, axis] @ truth[:, axis] > np.cos(np.deg2rad(1.0))
    # origin on the LV long axis (the line shared by the LAX planes), within the misalignment-free headers
    offset = frame.origin_ras - heart.centre_ras
    off_axis = offset - (offset @ heart.long_axis_ras) * heart.long_axis_ras
    assert np.linalg.norm(off_axis) < 1.0
    points = np.random.default_rng(0).normal(size=(20, 3)) * 50
    assert np.allclose(frame.to_ras(frame.to_canonical(points)), points, atol=1e-9)
    assert np.abs(frame.to_canonical(heart.centre_ras)).max() < 0.5


def test_zero_offsets_give_the_input_geometry(tiny_cine):
    config = NISFConfig.tiny()
    subject = prepare_subject(tiny_cine.study, config)
    network = NISFNetwork(config.network)
    params = SubjectParameters(1, len(subject.slices), config.network.latent_dim)
    fit = SubjectFit(network, subject, params, config, torch.device("cpu"))
    pairs = zip(subject.slices, fit.corrected_geometries(), fit.slice_rigid_transforms_ras())
    for slice_, corrected, transform in pairs:
        assert np.allclose(corrected, slice_.nominal_ijk_to_ras, atol=1e-9)
        assert np.allclose(transform, np.eye(4), atol=1e-12)
    # the torch mapping of pixels equals the header geometry followed by the frame
    slice_id = 3
    slice_ = subject.slices[slice_id]
    ijk = np.concatenate([slice_.roi_ij[:50], np.zeros((50, 1))], axis=1).astype(np.float32)
    mapped = params.slice_points(fit.table, torch.full((50,), slice_id), torch.as_tensor(ijk)).detach().numpy()
    expected = subject.frame.to_canonical(apply_affine(slice_.nominal_ijk_to_ras, ijk))
    assert np.allclose(mapped, expected, atol=1e-5)


def test_offsets_move_the_slice_rigidly(tiny_cine):
    config = NISFConfig.tiny()
    subject = prepare_subject(tiny_cine.study, config)
    params = SubjectParameters(1, len(subject.slices), config.network.latent_dim)
    fit = SubjectFit(NISFNetwork(config.network), subject, params, config, torch.device("cpu"))
    with torch.no_grad():
        params.slice_rotation_deg[2] = torch.tensor([2.0, -1.0, 3.0])
        params.slice_translation_mm[2] = torch.tensor([1.5, -2.0])
        params.slice_through_plane_mm[2] = 0.5
    transform = fit.slice_rigid_transforms_ras()[2]
    rotation = transform[:3, :3]
    assert np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-9)
    angle = np.degrees(np.arccos((np.trace(rotation) - 1) / 2))
    assert angle == pytest.approx(np.linalg.norm([2.0, -1.0, 3.0]), abs=1e-6)
    slice_ = subject.slices[2]
    ny, nx = slice_.shape_yx
    centre = slice_.nominal_ijk_to_ras @ np.array([(nx - 1) / 2, (ny - 1) / 2, 0, 1])
    axes = slice_.nominal_ijk_to_ras[:3, :3] / slice_.spacing  # translations are along the slice's own axes
    assert np.allclose((transform @ centre - centre)[:3], axes @ [1.5, -2.0, 0.5], atol=1e-5)
    # the torch mapping agrees with the reported corrected geometry
    ijk = np.array([[3.0, 7.0, 0.0], [20.0, 11.0, 0.0]], np.float32)
    mapped = params.slice_points(fit.table, torch.full((2,), 2), torch.as_tensor(ijk)).detach().numpy()
    expected = subject.frame.to_canonical(apply_affine(fit.corrected_geometries()[2], ijk))
    assert np.allclose(mapped, expected, atol=1e-5)
    # other slices are untouched
    assert np.allclose(fit.corrected_geometries()[1], subject.slices[1].nominal_ijk_to_ras, atol=1e-9)


def test_rotation_vector_matches_rodrigues_and_is_smooth_at_zero():
    rng = np.random.default_rng(1)
    for _ in range(5):
        axis = rng.normal(size=3)
        angle = rng.uniform(-30, 30)
        vector = axis / np.linalg.norm(axis) * angle
        ours = rotation_from_vector_deg(torch.as_tensor(vector)).numpy()
        assert np.allclose(ours, rotation_matrix(axis, np.deg2rad(angle)), atol=1e-10)
    zero = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    rotation = rotation_from_vector_deg(zero)
    assert torch.allclose(rotation, torch.eye(3, dtype=torch.float64))
    (rotation @ torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    assert torch.all(torch.isfinite(zero.grad)) and zero.grad.abs().sum() > 0
    assert torch.autograd.gradcheck(rotation_from_vector_deg, (torch.tensor([3.0, -2.0, 1.0], dtype=torch.float64,
                                                                          requires_grad=True),))


def test_psf_matches_the_analytic_blur_of_a_step_edge():
    sigmas_mm = torch.as_tensor(psf_sigmas_mm([1.8, 1.8, 8.0]), dtype=torch.float64)
    assert sigmas_mm[2].item() == pytest.approx(8.0 / 2.3548, rel=1e-3)
    axes = torch.as_tensor(rotation_matrix([1.0, 2.0, 0.5], 0.7))  # an oblique slice
    normal = axes[:, 2]
    step = lambda points: (points @ normal > 0).to(torch.float64)  # noqa: E731  edge across the slice
    distance = torch.linspace(-8.0, 8.0, 33, dtype=torch.float64)
    points = distance[:, None] * normal[None, :]
    generator = torch.Generator().manual_seed(0)
    expected = norm.cdf(distance.numpy() / sigmas_mm[2].item())
    many = blur_monte_carlo(step, points, axes, sigmas_mm, 8192, generator=generator).numpy()
    assert np.abs(many - expected).max() < 0.03
    # K = 16 (the paper's): unbiased, so the mean over repeated voxels converges to the analytic blur
    repeats = points.repeat_interleave(400, dim=0)
    k16 = blur_monte_carlo(step, repeats, axes, sigmas_mm, 16, generator=generator).reshape(33, 400)
    assert np.abs(k16.mean(1).numpy() - expected).max() < 0.03
    assert k16.std(1).max().item() > 0.05  # and each K = 16 estimate is noisy, as expected
    # an edge parallel to the slice normal is hardly blurred in-plane (sigma 0.76 mm)
    in_plane = lambda points: (points @ axes[:, 0] > 0).to(torch.float64)  # noqa: E731
    sharp = blur_monte_carlo(in_plane, 3.0 * axes[:, 0][None, :], axes, sigmas_mm, 4096, generator=generator)
    assert sharp.item() > 0.99


def _first_slice_name(study):
    return study.slices[0].image.name


def test_mismatched_frames_raise_a_clear_error(tiny_cine):
    study = copy.deepcopy(tiny_cine.study)
    broken = study.slices[-1]
    broken.image.array = broken.image.array[:-1]
    broken.image.phases = broken.image.phases[:-1]
    expected = rf"{broken.image.name}: {study.n_frames - 1} frames, expected {study.n_frames}"
    with pytest.raises(NISFInputError, match=expected):
        prepare_subject(study, NISFConfig.tiny())


def test_nan_intensities_raise_a_clear_error(tiny_cine):
    study = copy.deepcopy(tiny_cine.study)
    target = study.slices[2]
    target.image.array = target.image.array.astype(np.float32)
    target.image.array[1, 0, 5, 5:8] = np.nan
    with pytest.raises(NISFInputError, match=rf"slice {target.image.name}: 3 NaN or infinite intensities") as info:
        prepare_subject(study, NISFConfig.tiny())
    assert isinstance(info.value, CineStudyError) and isinstance(info.value, CardiacMotionAtlasError)


def test_degenerate_direction_matrix_raises_a_clear_error(tiny_cine):
    study = copy.deepcopy(tiny_cine.study)
    target = study.slices[1]
    matrix = target.image.ijk_to_ras.copy()
    matrix[:3, 1] = matrix[:3, 0]  # j axis parallel to i: a degenerate direction matrix
    target.image.ijk_to_ras = matrix
    with pytest.raises(NISFInputError, match=rf"slice {target.image.name}: degenerate direction matrix"):
        prepare_subject(study, NISFConfig.tiny())


def test_no_sax_and_parallel_four_chamber_raise(tiny_cine):
    study = copy.deepcopy(tiny_cine.study)
    study.slices = [s for s in study.slices if s.view != "SAX"]
    with pytest.raises(NISFInputError, match="no SAX slice"):
        prepare_subject(study, NISFConfig.tiny())
    study = copy.deepcopy(tiny_cine.study)
    four = study.view("4CH")[0]
    four.image.ijk_to_ras = study.sax[0].image.ijk_to_ras.copy()
    with pytest.raises(NISFInputError, match="4CH slice .* parallel to the SAX stack"):
        prepare_subject(study, NISFConfig.tiny())


def test_prepared_subject_is_normalised_and_cropped(tiny_cine):
    config = NISFConfig.tiny()
    subject = prepare_subject(tiny_cine.study, config)
    values = np.concatenate([s.intensities.ravel() for s in subject.slices])
    assert np.percentile(values, config.intensity_percentile) == pytest.approx(0.9, rel=1e-3)
    for slice_ in subject.slices:
        canonical = subject.frame.to_canonical(apply_affine(slice_.nominal_ijk_to_ras,
                                                            np.c_[slice_.roi_ij, np.zeros(len(slice_.roi_ij))]))
        assert np.abs(canonical).max() <= config.roi_half_size + 1e-9
        if slice_.view != "SAX":  # LAX slices are labelled at ED and ES only
            labelled = np.flatnonzero((slice_.labels >= 0).all(axis=1))
            assert labelled.tolist() == sorted({0, tiny_cine.study.es_frame})
    unlabelled = prepare_subject(tiny_cine.study, config, use_labels=False, exclude_views=("4CH",))
    assert not unlabelled.has_labels and all(s.view != "4CH" for s in unlabelled.slices)


def test_keep_largest_components_removes_islands():
    from CardiacMotionAtlasLib.nisf.sampling import keep_largest_components

    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:5, 1:5, 1:5] = 2  # the myocardium
    labels[7:9, 7:9, 7:9] = 2  # an island far away
    labels[2:4, 2:4, 2:4] = 1  # blood pool inside (one piece)
    cleaned = keep_largest_components(labels)
    assert (cleaned == 2).sum() == (labels == 2).sum() - 8 and (cleaned[7:9, 7:9, 7:9] == 0).all()
    assert np.array_equal(cleaned == 1, labels == 1)
