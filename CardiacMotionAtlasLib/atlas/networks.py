"""The three networks of the atlas (all in canonical units; shapes in docstrings).

- :class:`TemplateSDF` ``T(p', t')``: the single-shape 4D template, a DeepSDF-style MLP (SiLU, one skip
  connection) on ``p'`` (plus ``template_frequencies`` octaves of sinusoidal features) and the cyclic
  phase ``(cos 2 pi t', sin 2 pi t')``.
- :class:`SpatialFlow` ``D1(p, c_p)``: ``flow_blocks`` neural-ODE blocks; block ``b`` integrates the
  autonomous velocity ``v_b(x, c_p)`` over ``s in [0, 1]`` with :func:`torchdiffeq.odeint` (fixed-step
  RK4 by default; adaptive solvers and the adjoint method as options). The inverse integrates each
  block backwards (``s: 1 -> 0``), last block first. The velocity's last layer starts at zero, so an
  untrained ``D1`` is the identity. The ODE state carries ``int |v|^2 ds`` for the velocity penalty.
- :class:`TemporalFlow` ``D2(t, c_t)``: ``D2(t) = int_0^t exp(h(s)) ds / int_0^1 exp(h(s)) ds`` with
  ``h`` a (softly bounded) Fourier series whose coefficients are linear in ``c_t``: strictly increasing, ``D2(0) = 0``,
  ``D2(1) = 1`` exactly (it can never fold time), identity at ``c_t = 0``. The integral is a cumulative
  trapezoid on ``time_quadrature`` intervals, interpolated linearly.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from .config import FIXED_STEP_METHODS, AtlasConfig

MAX_LOG_RATE = 3.0
"""Bound of ``D2``'s log-speed ``h``."""


def _mlp_layers(sizes) -> nn.ModuleList:
    return nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))


class TemplateSDF(nn.Module):
    """``T``: ``(N, 3)`` template points and ``(N,)`` template phases -> ``(N,)`` signed distances."""

    def __init__(self, hidden: int, layers: int, frequencies: int = 0) -> None:
        super().__init__()
        self.frequencies = int(frequencies)
        in_features = 3 + 6 * self.frequencies + 2
        self.skip = layers // 2 if layers >= 4 else -1
        sizes = [in_features] + [hidden] * layers
        self.hidden = nn.ModuleList()
        for index in range(layers):
            extra = in_features if index == self.skip else 0
            self.hidden.append(nn.Linear(sizes[index] + extra, sizes[index + 1]))
        self.out = nn.Linear(hidden, 1)
        self.activation = nn.SiLU()

    def encode(self, points: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
        angle = 2.0 * math.pi * phases[:, None]
        parts = [points]
        for octave in range(self.frequencies):
            scaled = points * (math.pi * 2.0**octave)
            parts += [torch.sin(scaled), torch.cos(scaled)]
        parts += [torch.cos(angle), torch.sin(angle)]
        return torch.cat(parts, dim=1)

    def forward(self, points: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
        encoded = self.encode(points, phases)
        x = encoded
        for index, layer in enumerate(self.hidden):
            if index == self.skip:
                x = torch.cat([x, encoded], dim=1)
            x = self.activation(layer(x))
        return self.out(x).squeeze(1)


class VelocityField(nn.Module):
    """``v(x, c)``: ``(N, 3)`` points with per-point code features ``(N, layers * H)`` (from
    :meth:`code_features`, computed once per solve) -> ``(N, 3)`` velocities. The code conditions every
    hidden layer (its features are added to each pre-activation), so subjects differ from the start."""

    def __init__(self, code_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.point_in = nn.Linear(3, hidden)
        self.code_in = nn.Linear(code_dim, hidden * layers, bias=False)
        self.layers = _mlp_layers([hidden] * layers)
        self.out = nn.Linear(hidden, 3)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.activation = nn.Tanh()

    def code_features(self, codes: torch.Tensor) -> torch.Tensor:
        return self.code_in(codes)

    def forward(self, points: torch.Tensor, code_features: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(code_features, self.hidden, dim=1)
        x = self.activation(self.point_in(points) + chunks[0])
        for layer, chunk in zip(self.layers, chunks[1:]):
            x = self.activation(layer(x) + chunk)
        return self.out(x)


class _Dynamics(nn.Module):
    """ODE right-hand side on the state ``[x (N, 3), e (N, 1)]``: ``dx/ds = sign v(x)``, ``de/ds = |v|^2``."""

    def __init__(self, velocity: VelocityField, code_features: torch.Tensor, sign: float) -> None:
        super().__init__()
        self.velocity = velocity
        self.code_features = code_features
        self.sign = sign

    def forward(self, s: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        v = self.velocity(state[:, :3], self.code_features)
        return torch.cat([self.sign * v, (v * v).sum(dim=1, keepdim=True)], dim=1)


class SpatialFlow(nn.Module):
    """``D1``: subject canonical points -> template points, conditioned on shape codes."""

    def __init__(self, config: AtlasConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(VelocityField(config.shape_code_dim, config.velocity_hidden,
                                                  config.velocity_layers) for _ in range(config.flow_blocks))
        self.method = config.ode_method
        self.steps = config.ode_steps
        self.rtol, self.atol = config.ode_rtol, config.ode_atol
        self.adjoint = config.adjoint

    def _solve(self, block: VelocityField, points: torch.Tensor, features: torch.Tensor,
               sign: float) -> Tuple[torch.Tensor, torch.Tensor]:
        dynamics = _Dynamics(block, features, sign)
        state = torch.cat([points, points.new_zeros(len(points), 1)], dim=1)
        times = torch.tensor([0.0, 1.0], dtype=points.dtype, device=points.device)
        kwargs = {"method": self.method}
        if self.method in FIXED_STEP_METHODS:
            kwargs["options"] = {"step_size": 1.0 / self.steps}
        else:
            kwargs.update(rtol=self.rtol, atol=self.atol)
        if self.adjoint and torch.is_grad_enabled():
            params = tuple(p for p in block.parameters() if p.requires_grad)
            if features.requires_grad:
                params = params + (features,)
            out = odeint_adjoint(dynamics, state, times, adjoint_params=params, **kwargs)[-1]
        else:
            out = odeint(dynamics, state, times, **kwargs)[-1]
        return out[:, :3], out[:, 3]

    def forward(self, points: torch.Tensor, codes: torch.Tensor,
                subject_index: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(N, 3)`` points, codes ``(S, Lp)`` (with ``subject_index`` ``(N,)``) or ``(N, Lp)`` ->
        (``(N, 3)`` template points, ``(N,)`` kinetic energy ``sum_b int |v_b|^2 ds``)."""
        energy = points.new_zeros(len(points))
        for block in self.blocks:
            features = block.code_features(codes)
            if subject_index is not None:
                features = features[subject_index]
            points, block_energy = self._solve(block, points, features, 1.0)
            energy = energy + block_energy
        return points, energy

    def inverse(self, points: torch.Tensor, codes: torch.Tensor,
                subject_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Template points -> subject canonical points: every block integrated backwards, last first."""
        for block in reversed(self.blocks):
            features = block.code_features(codes)
            if subject_index is not None:
                features = features[subject_index]
            points, _ = self._solve(block, points, features, -1.0)
        return points


class TemporalFlow(nn.Module):
    """``D2``: subject phases ``(N,)`` in [0, 1] -> template phases ``(N,)``, conditioned on time codes."""

    def __init__(self, code_dim: int, harmonics: int, quadrature: int) -> None:
        super().__init__()
        self.harmonics = int(harmonics)
        self.quadrature = int(quadrature)
        self.coefficients = nn.Linear(code_dim, 2 * self.harmonics, bias=False)
        nodes = torch.linspace(0.0, 1.0, self.quadrature + 1)
        k = torch.arange(1, self.harmonics + 1, dtype=torch.float32)
        basis = torch.cat([torch.cos(2 * math.pi * nodes[:, None] * k), torch.sin(2 * math.pi * nodes[:, None] * k)], 1)
        self.register_buffer("basis", basis, persistent=False)  # (M + 1, 2K)

    def log_rate(self, codes: torch.Tensor) -> torch.Tensor:
        """``h`` at the quadrature nodes, ``(S, M + 1)``, softly bounded to ``+-MAX_LOG_RATE`` (so the
        re-timing speed stays within ``exp(+-2 MAX_LOG_RATE)`` of itself and float32 never flattens it)."""
        raw = self.coefficients(codes) @ self.basis.T
        return MAX_LOG_RATE * torch.tanh(raw / MAX_LOG_RATE)

    def table(self, codes: torch.Tensor) -> torch.Tensor:
        """``D2`` at the ``M + 1`` quadrature nodes for each of ``S`` codes: ``(S, M + 1)``, from 0 to 1."""
        rate = torch.exp(self.log_rate(codes))
        pieces = 0.5 * (rate[:, 1:] + rate[:, :-1])
        cumulative = torch.cat([rate.new_zeros(len(rate), 1), torch.cumsum(pieces, dim=1)], dim=1)
        return cumulative / cumulative[:, -1:]

    def forward(self, phases: torch.Tensor, codes: torch.Tensor,
                subject_index: Optional[torch.Tensor] = None) -> torch.Tensor:
        table = self.table(codes)
        if subject_index is None:
            subject_index = torch.arange(len(phases), device=phases.device) if len(table) > 1 else \
                torch.zeros(len(phases), dtype=torch.long, device=phases.device)
        position = phases.clamp(0.0, 1.0) * self.quadrature
        low = position.floor().long().clamp(max=self.quadrature - 1)
        weight = position - low.to(position.dtype)
        start = table[subject_index, low]
        end = table[subject_index, low + 1]
        return start + weight * (end - start)


__all__ = ["TemplateSDF", "VelocityField", "SpatialFlow", "TemporalFlow"]
