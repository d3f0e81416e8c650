"""The shape-to-motion prior: its ridge regression, its use by the ED / ED+ES fits, its checkpoint."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.atlas.config import FitConfig
from CardiacMotionAtlasLib.atlas.fit import fit_shape_motion_prior, fit_subject, sdf_error_mm, training_subject
from CardiacMotionAtlasLib.atlas.model import Atlas
from CardiacMotionAtlasLib.atlas.shape_prior import ShapeMotionPrior, regress_shape_motion_prior, ridge_leave_one_out


def test_ridge_recovers_a_known_linear_relation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 4))
    weights = rng.normal(size=(4, 6))
    y = 0.5 + x @ weights + 0.01 * rng.normal(size=(30, 6))
    fitted, alpha, residuals = ridge_leave_one_out(x, y)
    assert np.allclose(fitted, weights, atol=0.03), np.abs(fitted - weights).max()
    assert alpha < 1.0 and np.sqrt((residuals**2).mean()) < 0.03
    prior = regress_shape_motion_prior(x, y, shape_code_dim=4)
    assert prior.explained > 0.99
    code_p, code_t = prior.predict(torch.tensor(x[0], dtype=torch.float32))
    assert code_p.shape == (4,) and code_t.shape == (2,)
    assert np.allclose(torch.cat([code_p, code_t]).numpy(), y[0], atol=0.05)


def test_ridge_falls_back_to_the_mean_when_shape_predicts_nothing():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(40, 3))  # unrelated: unpenalised weights ~0.2
    prior = regress_shape_motion_prior(x, y, shape_code_dim=5)
    assert prior.alpha >= 30.0 and prior.explained <= 0.0
    assert np.abs(prior.weights).max() < 0.2
    predicted = torch.cat(prior.predict(torch.tensor(x[3], dtype=torch.float32))).numpy()
    assert np.linalg.norm(predicted - y.mean(0)) < 0.5


def test_training_builds_the_prior_and_checkpoints_carry_it(tiny_atlas, tmp_path):
    prior = tiny_atlas.shape_motion_prior
    config = tiny_atlas.config
    assert prior is not None and prior.weights.shape == (config.shape_code_dim, config.shape_code_dim + config.time_code_dim)
    assert np.all(prior.residual_var > 0) and np.all(np.isfinite(prior.weights))
    loaded = Atlas.load(tiny_atlas.save(tmp_path / "atlas.pt"), device="cpu")
    code = torch.randn(config.shape_code_dim)
    for a, b in zip(prior.predict(code), loaded.shape_motion_prior.predict(code)):
        assert torch.allclose(a, b)
    again = ShapeMotionPrior.from_dict(prior.to_dict())
    assert again.alpha == prior.alpha and np.array_equal(again.weights, prior.weights)


def _forced_prior(atlas: Atlas, shape_code: torch.Tensor, time_code: torch.Tensor, variance: float) -> Atlas:
    """A copy of the atlas whose prior predicts the given codes whatever the ED code."""
    forced = copy.copy(atlas)
    lp, lt = len(shape_code), len(time_code)
    forced.shape_motion_prior = ShapeMotionPrior(np.zeros(lp), np.zeros((lp, lp + lt)),
                                                 torch.cat([shape_code, time_code]).numpy().astype(float),
                                                 np.full(lp + lt, variance), lp)
    return forced


def test_ed_fit_starts_from_and_stays_near_the_predicted_codes(tiny_atlas, tiny_subjects):
    shape_code, time_code = tiny_atlas.subject_codes(1)
    forced = _forced_prior(tiny_atlas, shape_code, time_code + 0.3, variance=1e-8)
    untimed = replace(FitConfig.tiny(), ed_timing=False)  # no cohort ES target: c_t is the prior's alone
    fitted = fit_subject(forced, tiny_subjects[3], "ed", untimed)
    assert torch.allclose(fitted.time_code, time_code + 0.3)  # ED says nothing about timing: the prediction
    assert torch.allclose(fitted.shape_code, shape_code, atol=2e-2)  # a very narrow prior holds c_p
    timed = fit_subject(forced, tiny_subjects[3], "ed", FitConfig.tiny())  # the ES target cannot beat that prior
    assert torch.allclose(timed.time_code, time_code + 0.3, atol=5e-3)
    plain = fit_subject(forced, tiny_subjects[3], "ed", untimed, use_shape_prior=False)
    assert torch.allclose(plain.time_code, tiny_atlas.module.code_prior_stats()["time_mean"])
    ed_es = fit_subject(forced, tiny_subjects[3], "ed_es", FitConfig.tiny())
    assert np.isfinite(ed_es.sdf_error_mm)


def test_a_prior_that_knows_the_motion_recovers_withheld_frames_from_ed(tiny_atlas, tiny_subjects):
    """In-sample: with ridge strength ~0 the cohort's regression returns each training subject's codes
    from its ED code, so an ED-alone fit with the prior explains the subject's other frames nearly as
    well as its learned codes, unlike the plain cohort-mean prior."""
    atlas = copy.copy(tiny_atlas)
    prior = fit_shape_motion_prior(atlas, tiny_subjects[:3], FitConfig.tiny())
    ed_codes = []
    for subject in tiny_subjects[:3]:
        ed_codes.append(fit_subject(atlas, subject, "ed", FitConfig.tiny(), use_shape_prior=False).shape_code.numpy())
    full = torch.cat([atlas.module.shape_codes.detach(), atlas.module.time_codes.detach()], dim=1).numpy()
    atlas.shape_motion_prior = regress_shape_motion_prior(np.stack(ed_codes), full, atlas.config.shape_code_dim,
                                                          alphas=(1e-6,))
    assert prior is not None
    subject = tiny_subjects[1]
    # the priors act on the codes: compare codes alone, without the cohort ES target (tested elsewhere)
    codes_only = replace(FitConfig.tiny(), residual_steps=0, ed_timing=False)
    with_prior = fit_subject(atlas, subject, "ed", codes_only)
    plain = fit_subject(atlas, subject, "ed", codes_only, use_shape_prior=False)
    later = subject.select(list(range(1, subject.n_frames)))  # every frame but ED: withheld from the fits
    learned = sdf_error_mm(atlas, training_subject(atlas, 1, with_residual=False), later)  # the codes trained on every frame
    error_prior, error_plain = sdf_error_mm(atlas, with_prior, later), sdf_error_mm(atlas, plain, later)
    assert error_plain - learned > 0.02, (learned, error_plain)  # ED alone leaves a gap with the plain prior
    assert error_prior - learned < 0.5 * (error_plain - learned), (learned, error_prior, error_plain)


def test_fewer_than_three_subjects_build_no_prior(tiny_atlas, tiny_subjects):
    assert fit_shape_motion_prior(tiny_atlas, tiny_subjects[:2], FitConfig.tiny()) is None
    with pytest.raises(Exception, match="3 training subjects"):
        ridge_leave_one_out(np.zeros((2, 3)), np.zeros((2, 2)))
