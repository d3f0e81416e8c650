"""Training data: exact phantom flows, consistent augmentations, demons annotation, B-spline baseline."""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from CardiacMotionAtlasLib.geometry.warp import warp
from CardiacMotionAtlasLib.synthesis.config import AugmentConfig
from CardiacMotionAtlasLib.synthesis.data import annotate_flow_demons, augment, pair_from_frames, random_bspline_flow


def _smooth_image(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (gaussian_filter(rng.normal(0, 1, shape), 2.0) * 3000).astype(np.float32)


def test_phantom_pair_flow_maps_es_onto_ed(synth_pairs):
    pair = synth_pairs[0]
    heart = pair.labels_ed > 0
    assert np.linalg.norm(pair.flow_vox, axis=0)[heart].mean() > 0.3  # the heart moves by voxels
    moved = warp(torch.as_tensor(pair.es)[None, None], torch.as_tensor(pair.flow_vox)[None])[0, 0].numpy()
    error_identity = np.abs(pair.es - pair.ed)[heart].mean()
    error_flow = np.abs(moved - pair.ed)[heart].mean()
    assert error_flow < 0.8 * error_identity  # 8 mm voxels: partial volume and noise remain
    # labels too: the ES labels pulled by the flow overlap the ED labels better than unmoved
    from CardiacMotionAtlasLib.metrics import dice
    from CardiacMotionAtlasLib.synthesis.grid import warp_labels

    pulled = warp_labels(torch.as_tensor(pair.labels_es)[None, None], torch.as_tensor(pair.flow_vox)[None])[0, 0].numpy()
    assert dice(pulled == 1, pair.labels_ed == 1) > dice(pair.labels_es == 1, pair.labels_ed == 1) + 0.05


def test_augmentation_keeps_frames_and_flow_consistent():
    shape = (16, 16, 16)
    es = torch.as_tensor(_smooth_image(shape))[None, None]
    flow = torch.as_tensor(random_bspline_flow(shape, 1.0, np.random.default_rng(2)))[None]
    ed = warp(es, flow)
    options = AugmentConfig(noise_hu=0.0, shift_vox=2.0, zoom=0.15)
    generator = torch.Generator().manual_seed(5)
    es2, ed2, flow2 = augment(es, ed, flow, options, 1.0, generator)
    assert (flow2 - flow).abs().max() > 0.1  # the augmentation did something
    inner = (slice(None), slice(None), slice(4, 12), slice(4, 12), slice(4, 12))
    consistent = (warp(es2, flow2) - ed2)[inner].abs().mean()
    wrong_scale = (warp(es2, flow) - ed2)[inner].abs().mean()
    assert consistent < 0.25 * wrong_scale


def test_demons_annotation_recovers_a_known_smooth_flow():
    shape = (24, 24, 24)
    es = _smooth_image(shape, 1)
    truth = random_bspline_flow(shape, 1.2, np.random.default_rng(3), mesh_size=2)
    ed = warp(torch.as_tensor(es)[None, None], torch.as_tensor(truth)[None])[0, 0].numpy()
    estimate = annotate_flow_demons(ed, es, iterations=40)
    inner = (slice(None), slice(4, 20), slice(4, 20), slice(4, 20))
    epe = np.linalg.norm(estimate - truth, axis=0)[inner[1:]].mean()
    epe_zero = np.linalg.norm(truth, axis=0)[inner[1:]].mean()
    assert epe < 0.5 * epe_zero


def test_user_frames_are_resampled_to_the_working_grid(synth_hearts, synth_config):
    from CardiacMotionAtlasLib.phantom.ct import CTConfig, simulate_ct

    heart = synth_hearts[1]
    ct = simulate_ct(heart, [0.0, heart.es_phase], CTConfig(voxel_mm=5.0, fov_mm=150.0))
    pair = pair_from_frames(ct.image.array[0], ct.image.array[1], ct.image.ijk_to_ras, synth_config,
                            labels_ed=ct.labels.array[0], subject_id="s1")
    n = synth_config.working_size
    assert pair.es.shape == (n, n, n) and pair.flow_vox.shape == (3, n, n, n)
    assert np.allclose(np.diag(pair.ijk_to_ras)[:3], synth_config.working_voxel_mm)
    centre = pair.ijk_to_ras[:3, 3] + (n - 1) / 2 * synth_config.working_voxel_mm
    labels = ct.labels.array[0] > 0
    k, j, i = np.nonzero(labels)
    expected = (ct.image.ijk_to_ras @ np.array([i.mean(), j.mean(), k.mean(), 1.0]))[:3]
    assert np.allclose(centre, expected, atol=1e-6)
    assert np.abs(pair.flow_vox).max() > 0.05


def test_bspline_fields_are_smooth_random_and_scaled():
    a = random_bspline_flow((16, 16, 16), 1.0, np.random.default_rng(0))
    b = random_bspline_flow((16, 16, 16), 2.0, np.random.default_rng(0))
    c = random_bspline_flow((16, 16, 16), 1.0, np.random.default_rng(1))
    assert np.allclose(b, 2 * a, atol=1e-5)
    assert not np.allclose(a, c)
    assert np.abs(np.diff(a, axis=1)).max() < 0.5 * np.abs(a).max()
