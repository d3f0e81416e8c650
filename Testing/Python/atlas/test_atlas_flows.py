"""D1 and D2 are diffeomorphisms: D1 inverted by backward integration, D2 monotone with fixed ends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.atlas.config import AtlasConfig
from CardiacMotionAtlasLib.atlas.networks import SpatialFlow, TemporalFlow


def _randomised_flow(method: str, steps: int = 4, blocks: int = 2) -> SpatialFlow:
    config = AtlasConfig(shape_code_dim=6, velocity_hidden=32, velocity_layers=3, flow_blocks=blocks,
                         ode_method=method, ode_steps=steps, ode_rtol=1e-7, ode_atol=1e-8)
    torch.manual_seed(0)
    flow = SpatialFlow(config)
    with torch.no_grad():  # the zero-initialised output layer would make D1 the identity
        for block in flow.blocks:
            block.out.weight.normal_(0.0, 0.15)
            block.out.bias.normal_(0.0, 0.05)
    return flow


@pytest.mark.parametrize("method,steps", [("rk4", 4), ("dopri5", 1)])
def test_d1_backward_integration_inverts_forward(method, steps):
    flow = _randomised_flow(method, steps)
    points = torch.rand(500, 3) * 2.0 - 1.0
    codes = torch.randn(2, 6) * 0.5
    index = torch.randint(0, 2, (500,))
    with torch.no_grad():
        mapped, energy = flow(points, codes, index)
        back = flow.inverse(mapped, codes, index)
    moved = (mapped - points).norm(dim=1)
    assert moved.mean() > 0.05, "the test flow must move points noticeably"
    assert torch.all(energy > 0)
    assert (back - points).norm(dim=1).max() < 1e-3


def test_d1_is_identity_when_untrained_and_codes_change_it():
    config = AtlasConfig.tiny()
    flow = SpatialFlow(config)
    points = torch.rand(50, 3)
    with torch.no_grad():
        mapped, energy = flow(points, torch.randn(1, config.shape_code_dim))
    assert torch.allclose(mapped, points) and torch.all(energy == 0)
    flow = _randomised_flow("rk4")
    with torch.no_grad():
        a, _ = flow(points, torch.zeros(1, 6))
        b, _ = flow(points, torch.ones(1, 6))
    assert (a - b).norm(dim=1).mean() > 1e-3


def test_d1_adjoint_gradients_match_direct_backpropagation():
    flow = _randomised_flow("rk4", steps=3, blocks=1)
    points = torch.rand(40, 3)
    codes = torch.randn(1, 6, requires_grad=True)
    mapped, energy = flow(points, codes)
    (mapped.sum() + energy.sum()).backward()
    direct = codes.grad.clone()
    codes.grad = None
    flow.adjoint = True
    mapped_adjoint, energy_adjoint = flow(points, codes)
    (mapped_adjoint.sum() + energy_adjoint.sum()).backward()
    assert torch.allclose(mapped, mapped_adjoint, atol=1e-5)
    assert torch.allclose(direct, codes.grad, rtol=1e-2, atol=1e-4)


def test_d2_fixes_both_ends_and_is_monotone_even_for_extreme_codes():
    torch.manual_seed(1)
    flow = TemporalFlow(code_dim=3, harmonics=4, quadrature=64)
    with torch.no_grad():
        flow.coefficients.weight.normal_(0.0, 2.0)
    codes = torch.randn(5, 3) * 3.0
    phases = torch.linspace(0.0, 1.0, 4001)
    for row in range(len(codes)):
        values = flow(phases, codes[row:row + 1])
        values = values.detach()
        assert abs(float(values[0])) < 1e-6 and abs(float(values[-1]) - 1.0) < 1e-6
        assert torch.all(values[1:] > values[:-1]), "D2 folded time"
    identity = flow(phases, torch.zeros(1, 3))
    assert torch.allclose(identity, phases, atol=1e-5)


def test_d2_folds_metric_on_trained_atlas(tiny_atlas):
    from CardiacMotionAtlasLib.atlas.evaluation import d1_jacobian_determinant, d2_folds

    for index in range(tiny_atlas.module.n_subjects):
        shape_code, time_code = tiny_atlas.subject_codes(index)
        report = d2_folds(tiny_atlas, time_code)
        assert report["folds"] == 0 and report["start"] == pytest.approx(0.0) and report["end"] == pytest.approx(1.0)
        assert np.min(d1_jacobian_determinant(tiny_atlas, shape_code, resolution=12)) > 0
