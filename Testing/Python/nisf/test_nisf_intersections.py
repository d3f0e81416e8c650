"""Slice-to-slice intersection consistency: a known in-plane shift of one LAX header is undone by the
crossing intensities alone (network term switched off), and the sampler finds the crossings."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from CardiacMotionAtlasLib.nisf import FitConfig, fit_subject
from CardiacMotionAtlasLib.nisf.data import prepare_subject
from CardiacMotionAtlasLib.nisf.evaluation import residual_misalignment
from CardiacMotionAtlasLib.nisf.intersections import IntersectionSampler
from CardiacMotionAtlasLib.nisf.slices import SliceTable
from CardiacMotionAtlasLib.phantom.cmr import CMRConfig, simulate_cine


def test_a_shifted_lax_header_is_realigned_by_its_crossings(tiny_trained, nisf_hearts):
    acquisition = CMRConfig(n_frames=2, pixel_mm=2.5, matrix=64, profile_samples=3, misalignment_mm=0.0,
                            misalignment_deg=0.0, intensity_scale_range=(1.0, 1.0), noise_sigma=0.01)
    study = simulate_cine(nisf_hearts[0], acquisition, seed=0).study
    truth = [np.asarray(s.image.ijk_to_ras, float).copy() for s in study.slices]
    moved = copy.deepcopy(study)
    target = moved.view("4CH")[0]
    shift = target.image.ijk_to_ras[:3, 0] / 2.5 * 3.0 - target.image.ijk_to_ras[:3, 1] / 2.5 * 2.0  # 3.6 mm
    target.image.ijk_to_ras[:3, 3] += shift  # the header is now wrong by 3.6 mm in-plane
    target.labels.ijk_to_ras = target.image.ijk_to_ras.copy()
    position = [s.image.name for s in moved.slices].index(target.image.name)

    config = tiny_trained.config.with_changes(intensity_weight=0.0)  # crossings alone move the slices
    subject = prepare_subject(moved, config, use_labels=False)
    sampler = IntersectionSampler(subject, SliceTable([subject], "cpu"), "cpu")
    assert len(sampler) > 100
    assert set(sampler.a.tolist()) == set(range(len(subject.slices)))  # every slice crosses another one
    register = FitConfig(steps=250, lr_translation_mm=0.05, lr_through_plane_mm=0.0, lr_rotation_deg=0.0,
                         lr_latent=0.0, lr_global_rotation_deg=0.0, lr_global_translation_mm=0.0, lr_intensity=0.0,
                         offset_warmup_fraction=0.0, intersection_weight=10.0, intersection_points=1024,
                         rv_probe_steps=0)
    fit = fit_subject(replace(tiny_trained, config=config), subject, register, optimise=("slices",))
    shapes = [s.image.shape_zyx[1:] for s in study.slices]
    nominal = [np.asarray(s.image.ijk_to_ras, float) for s in moved.slices]
    before = residual_misalignment(nominal, truth, shapes)["mm"][position]
    after = residual_misalignment(fit.corrected_geometries(), truth, shapes)["mm"][position]
    assert before > 3.0 and after < 0.4 * before, (before, after)
