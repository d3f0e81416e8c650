"""The time-varying residual warp ``R(p, t) = p + u0(p) + m(D2(t)) u1(p)`` (issue 16: each heart's own
contraction amplitude)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.atlas.config import FitConfig, MeshConfig
from CardiacMotionAtlasLib.atlas.errors import AtlasConfigError
from CardiacMotionAtlasLib.atlas.fit import FittedSubject, fit_subject, sdf_error_mm
from CardiacMotionAtlasLib.atlas.meshing import subject_mesh_sequence
from CardiacMotionAtlasLib.atlas.residual import (apply_motion_residual, apply_residual, coefficients_at,
                                                  contraction_profile, invert_residual,
                                                  motion_residual_jacobian_determinant)
from CardiacMotionAtlasLib.metrics import mesh_topology


def test_contraction_profile_is_zero_at_ed_one_at_es_and_periodic():
    es = 0.35
    phases = torch.tensor([0.0, es / 2, es, (1 + es) / 2, 1.0, 1.0 + es, 0.999], dtype=torch.float64)
    m = contraction_profile(phases, es)
    assert m[0] == pytest.approx(0.0) and m[2] == pytest.approx(1.0) and m[5] == pytest.approx(1.0)
    assert m[1] == pytest.approx(0.5) and m[3] == pytest.approx(0.5) and m[4] == pytest.approx(0.0)
    assert m[6] < 1e-3
    dense = contraction_profile(torch.linspace(0, 1, 2001, dtype=torch.float64), es)
    assert float(dense.min()) >= 0.0 and float(dense.max()) <= 1.0
    assert float(torch.diff(dense).abs().max()) < 5e-3  # continuous (no jump at ES)


def test_motion_residual_is_one_warp_per_phase():
    generator = torch.Generator().manual_seed(0)
    c0, c1 = (torch.randn(6, 6, 6, 3, generator=generator, dtype=torch.float64) * 0.02 for _ in range(2))
    points = torch.rand(200, 3, generator=generator, dtype=torch.float64) * 2 - 1
    m = torch.full((200,), 0.7, dtype=torch.float64)
    combined = coefficients_at(c0, c1, 0.7)
    np.testing.assert_allclose(apply_motion_residual(points, c0, c1, m), apply_residual(points, combined), atol=1e-12)
    assert torch.equal(apply_motion_residual(points, c0, None, m), apply_residual(points, c0))
    assert torch.allclose(coefficients_at(None, c1, 0.5), 0.5 * c1)
    assert torch.allclose(invert_residual(apply_residual(points, combined), combined), points, atol=1e-6)
    assert motion_residual_jacobian_determinant(c0, c1, resolution=8).min() > 0
    with pytest.raises(AtlasConfigError):
        FitConfig(motion_residual_weight=-1.0)


def test_motion_residual_fits_the_frames_beyond_ed(tiny_atlas, tiny_subjects, tiny_motion, tmp_path):
    held = tiny_subjects[3]
    config = FitConfig.tiny()
    fitted = fit_subject(tiny_atlas, held, "all", config)
    previous = fit_subject(tiny_atlas, held, "all", replace(config, motion_residual=False))
    assert fitted.motion_residual is not None and float(fitted.motion_residual.abs().max()) > 0
    assert previous.motion_residual is None
    assert torch.equal(fitted.shape_code, previous.shape_code)  # the code stages are unchanged
    # the amplitude term fits the moving frames better than a time-invariant warp
    assert fitted.sdf_error_mm < previous.sdf_error_mm, (fitted.sdf_error_mm, previous.sdf_error_mm)
    assert motion_residual_jacobian_determinant(fitted.residual, fitted.motion_residual, resolution=12).min() > 0
    # from ED alone the amplitude is not observed: no motion residual
    assert fit_subject(tiny_atlas, held, "ed", config).motion_residual is None

    mesh_config = MeshConfig.tiny()
    phases = [0.0, 0.2, held.es_phase]
    mesh = subject_mesh_sequence(tiny_atlas, fitted, phases, tiny_motion, mesh_config)
    static_part = subject_mesh_sequence(tiny_atlas, replace(fitted, motion_residual=None), phases, tiny_motion,
                                        mesh_config)
    np.testing.assert_allclose(mesh.vertices[0], static_part.vertices[0], atol=1e-4)  # m = 0 at ED
    assert np.abs(mesh.vertices[2] - static_part.vertices[2]).max() > 1e-2  # it moves the ES frame
    topology = mesh_topology((mesh.vertices[2], mesh.faces))
    assert topology.is_closed and topology.is_manifold
    material = subject_mesh_sequence(tiny_atlas, fitted, phases, tiny_motion, mesh_config,
                                     residual_transport="material")
    np.testing.assert_allclose(material.vertices[0], mesh.vertices[0], atol=1e-3)

    again = FittedSubject.load(fitted.save(tmp_path / "subject.pt", config))
    assert torch.equal(again.motion_residual, fitted.motion_residual)
    assert sdf_error_mm(tiny_atlas, again, held) == pytest.approx(fitted.sdf_error_mm, rel=1e-5)


def test_training_subjects_carry_their_own_amplitude_and_it_survives_a_checkpoint(tiny_atlas, tiny_subjects,
                                                                                   tiny_motion, tmp_path):
    from CardiacMotionAtlasLib.atlas.fit import training_subject
    from CardiacMotionAtlasLib.atlas.model import load_atlas

    residuals = tiny_atlas.training_residuals
    assert residuals is not None and len(residuals) == tiny_atlas.module.n_subjects
    assert all(float(c1.abs().max()) > 0 for _, c1 in residuals)
    subject = training_subject(tiny_atlas, 0)
    codes_only = training_subject(tiny_atlas, 0, with_residual=False)
    assert codes_only.residual is None and torch.equal(subject.motion_residual, residuals[0][1])
    # the residual with its amplitude term fits the subject's own frames better than its codes alone
    assert sdf_error_mm(tiny_atlas, subject, tiny_subjects[0]) < sdf_error_mm(tiny_atlas, codes_only, tiny_subjects[0])
    again = load_atlas(tiny_atlas.save(tmp_path / "atlas.pt"), "cpu")
    assert again.training_residuals is not None
    for (a0, a1), (b0, b1) in zip(again.training_residuals, residuals):
        assert torch.allclose(a0, b0.float()) and torch.allclose(a1, b1.float())
