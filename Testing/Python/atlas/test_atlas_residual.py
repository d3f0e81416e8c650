"""The per-subject residual warp (fit stage after the codes) and the fitted subject's timing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.atlas.config import FitConfig, MeshConfig
from CardiacMotionAtlasLib.atlas.errors import AtlasConfigError, AtlasError
from CardiacMotionAtlasLib.atlas.fit import CodePrior, FittedSubject, cohort_es_phase, fit_subject, sdf_error_mm
from CardiacMotionAtlasLib.atlas.meshing import subject_mesh_sequence
from CardiacMotionAtlasLib.atlas.residual import (apply_residual, invert_residual, residual_displacement,
                                                  residual_jacobian_determinant)
from CardiacMotionAtlasLib.atlas.timing import (cohort_function, cyclic_phase_error, lvef_of, prediction_spread,
                                                recovered_es_phase)
from CardiacMotionAtlasLib.metrics import directed_surface_distances, mesh_topology


def test_residual_warp_is_smooth_invertible_and_identity_at_zero():
    generator = torch.Generator().manual_seed(0)
    coefficients = torch.randn(6, 6, 6, 3, generator=generator) * 0.03
    points = torch.rand(500, 3, generator=generator) * 2 - 1
    assert torch.equal(residual_displacement(points, torch.zeros(6, 6, 6, 3)), torch.zeros(500, 3))
    moved = apply_residual(points, coefficients)
    assert (moved - points).norm(dim=1).mean() > 1e-3  # it does move points
    assert torch.allclose(invert_residual(moved, coefficients), points, atol=1e-5)
    assert residual_jacobian_determinant(coefficients, resolution=10).min() > 0
    with pytest.raises(AtlasError, match="could not be inverted"):
        invert_residual(moved, coefficients * 40.0)  # far from a small warp: the fixed point diverges


def test_residual_inverse_holds_where_the_fixed_point_alone_diverges():
    """An 80-degree turn about z (det J = 1, but |grad u| = 2 sin 40deg > 1): the fixed point ``q = x - u(q)``
    diverges; the inverse (with its Newton steps) is still exact (the batch's tiny atlases hit this)."""
    import math

    from CardiacMotionAtlasLib.atlas.residual import DEFAULT_EXTENT

    knots = torch.linspace(-DEFAULT_EXTENT, DEFAULT_EXTENT, 8, dtype=torch.float64)
    x, y, z = torch.meshgrid(knots, knots, knots, indexing="ij")
    angle = math.radians(80.0)
    coefficients = torch.stack([math.cos(angle) * x - math.sin(angle) * y - x,
                                math.sin(angle) * x + math.cos(angle) * y - y, torch.zeros_like(z)], -1)
    points = torch.rand(300, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 0.5
    moved = apply_residual(points, coefficients)
    fixed_point = moved.clone()
    for _ in range(40):
        fixed_point = moved - residual_displacement(fixed_point, coefficients)
    assert (fixed_point - points).norm(dim=1).max() > 0.1  # the old inverse alone fails here
    assert torch.allclose(invert_residual(moved, coefficients, tolerance=1e-9), points, atol=1e-9)


def test_residual_config_is_checked():
    with pytest.raises(AtlasConfigError):
        FitConfig(residual_grid=3)
    with pytest.raises(AtlasConfigError):
        FitConfig(residual_weight=-1.0)
    assert FitConfig(residual_grid=0).residual_grid == 0


def test_residual_stage_fits_what_the_codes_cannot(tiny_atlas, tiny_subjects, tiny_motion, phantom_hearts, tmp_path):
    held, heart = tiny_subjects[3], phantom_hearts[3]  # hypertrophic: unlike the training hearts
    config = FitConfig.tiny()
    fitted = fit_subject(tiny_atlas, held, "ed", config)
    codes_only = fit_subject(tiny_atlas, held, "ed", replace(config, residual_steps=0))
    assert codes_only.residual is None and fitted.residual is not None
    # the residual stage leaves the codes as the code stages found them
    assert torch.equal(fitted.shape_code, codes_only.shape_code) and torch.equal(fitted.time_code, codes_only.time_code)
    assert fitted.sdf_error_mm < 0.9 * codes_only.sdf_error_mm, (fitted.sdf_error_mm, codes_only.sdf_error_mm)
    assert residual_jacobian_determinant(fitted.residual, resolution=12).min() > 0

    truth = heart.surface("myocardium", 0.0)
    mesh_config = MeshConfig.tiny()
    with_warp = subject_mesh_sequence(tiny_atlas, fitted, [0.0, 0.3], tiny_motion, mesh_config)
    without = subject_mesh_sequence(tiny_atlas, codes_only, [0.0, 0.3], tiny_motion, mesh_config)
    errors = [directed_surface_distances((m.vertices[0], m.faces), truth, samples=2000, seed=0).mean()
              for m in (with_warp, without)]
    assert errors[0] < errors[1], errors
    topology = mesh_topology(with_warp)  # a diffeomorphism keeps the template's topology
    assert topology.is_closed and topology.is_manifold
    assert topology.euler_characteristic == mesh_topology(without).euler_characteristic

    path = fitted.save(tmp_path / "subject.pt", config)
    again = FittedSubject.load(path)
    assert torch.equal(again.residual, fitted.residual)
    reloaded = subject_mesh_sequence(tiny_atlas, again, [0.0, 0.3], tiny_motion, mesh_config)
    np.testing.assert_allclose(reloaded.vertices, with_warp.vertices, atol=1e-6)
    assert sdf_error_mm(tiny_atlas, again, held.observed("ed")) == pytest.approx(fitted.sdf_error_mm, rel=1e-5)


def test_cyclic_phase_error():
    assert cyclic_phase_error(0.95, 0.05) == pytest.approx(0.1)
    assert cyclic_phase_error(0.3, 0.36) == pytest.approx(0.06)


def test_ed_es_fit_recovers_the_observed_es_phase(tiny_atlas, tiny_subjects):
    held = tiny_subjects[3]
    fitted = fit_subject(tiny_atlas, held, "ed_es", FitConfig.tiny())
    assert cyclic_phase_error(recovered_es_phase(tiny_atlas, fitted), held.es_phase) < 0.05


def test_ed_alone_prediction_states_a_spread_from_the_prior(tiny_atlas, tiny_subjects, tiny_motion):
    held = tiny_subjects[3]
    fitted = fit_subject(tiny_atlas, held, "ed", replace(FitConfig.tiny(), residual_steps=0))
    assert fitted.prior is not None
    mesh_config = MeshConfig.tiny()
    spread = prediction_spread(tiny_atlas, fitted, tiny_motion, mesh_config, n_samples=4, source="codes")
    assert 0.0 <= spread["es_phase"] < 1.0 and np.isfinite(spread["lvef"])
    assert spread["es_phase_sd"] > 0 and spread["lvef_sd"] > 0
    # no prior variance, no spread: the samples are the fitted codes
    narrow = CodePrior(fitted.shape_code, torch.full_like(fitted.shape_code, 1e-12), fitted.time_code,
                       torch.full_like(fitted.time_code, 1e-12))
    none = prediction_spread(tiny_atlas, fitted, tiny_motion, mesh_config, n_samples=2, prior=narrow)
    assert none["es_phase_sd"] < 1e-4 and none["lvef_sd"] < 0.5
    assert none["lvef_mean"] == pytest.approx(spread["lvef"], abs=0.5)


def test_ed_alone_spread_defaults_to_the_training_cohorts_own_variation(tiny_atlas, tiny_subjects, tiny_motion):
    """From ED alone the stated spread is the cohort's: its known ES phases and its subjects' LVEFs."""
    held = tiny_subjects[3]
    fitted = fit_subject(tiny_atlas, held, "ed", replace(FitConfig.tiny(), residual_steps=0))
    mesh_config = MeshConfig.tiny()
    cohort = cohort_function(tiny_atlas, tiny_motion, mesh_config)
    assert cohort["es_phase"] == pytest.approx([s.es_phase for s in tiny_subjects[:3]])
    assert np.all((cohort["lvef"] > 0) & (cohort["lvef"] < 100))
    spread = prediction_spread(tiny_atlas, fitted, tiny_motion, mesh_config)
    assert spread["source"] == "cohort" and spread["n_samples"] == 3
    assert spread["es_phase_sd"] == pytest.approx(np.std([s.es_phase for s in tiny_subjects[:3]]))
    assert spread["lvef_sd"] == pytest.approx(np.std(cohort["lvef"])) and spread["lvef_sd"] > 0
    assert spread["lvef_mean"] == pytest.approx(lvef_of(tiny_atlas, fitted, tiny_motion, mesh_config))
    with pytest.raises(ValueError, match="spread source"):
        prediction_spread(tiny_atlas, fitted, tiny_motion, mesh_config, source="guess")


def test_ed_alone_timing_targets_the_cohorts_mean_es_phase(tiny_atlas, tiny_subjects):
    """From ED alone the recovered ES phase is the training cohort's mean ES phase (the timing prior),
    not wherever the cohort-mean time code happens to put it."""
    held = tiny_subjects[3]
    target = cohort_es_phase(tiny_atlas)
    assert target == pytest.approx(np.mean([s.es_phase for s in tiny_subjects[:3]]))
    config = replace(FitConfig.tiny(), residual_steps=0)
    timed = recovered_es_phase(tiny_atlas, fit_subject(tiny_atlas, held, "ed", config))
    untimed = recovered_es_phase(tiny_atlas, fit_subject(tiny_atlas, held, "ed", replace(config, ed_timing=False)))
    assert cyclic_phase_error(timed, target) < 0.02
    assert cyclic_phase_error(timed, target) < cyclic_phase_error(untimed, target)


def test_material_residual_transport_moves_each_ed_correction_with_its_vertex(tiny_atlas, tiny_subjects, tiny_motion):
    held = tiny_subjects[3]
    fitted = fit_subject(tiny_atlas, held, "ed", FitConfig.tiny())
    assert fitted.residual is not None and float(fitted.residual.abs().max()) > 0
    phases = [0.0, 0.2, held.es_phase, 0.7]
    mesh_config = MeshConfig.tiny()
    material = subject_mesh_sequence(tiny_atlas, fitted, phases, tiny_motion, mesh_config, residual_transport="material")
    spatial = subject_mesh_sequence(tiny_atlas, fitted, phases, tiny_motion, mesh_config)  # default: as fitted
    codes = subject_mesh_sequence(tiny_atlas, replace(fitted, residual=None), phases, tiny_motion, mesh_config)
    np.testing.assert_allclose(material.vertices[0], spatial.vertices[0], atol=1e-3)  # the same observed ED shape
    correction = material.vertices - codes.vertices  # RAS mm, per vertex: the same at every phase
    np.testing.assert_allclose(correction, np.broadcast_to(correction[:1], correction.shape), atol=1e-3)
    assert np.abs(spatial.vertices - codes.vertices - correction[:1]).max() > 1e-3  # the spatial one differs
    with pytest.raises(AtlasError, match="residual_transport"):
        subject_mesh_sequence(tiny_atlas, fitted, phases, tiny_motion, mesh_config, residual_transport="guess")
