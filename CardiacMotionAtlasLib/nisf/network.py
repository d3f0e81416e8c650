"""The shared NISF++ network: sinusoidal encoding of ``(x, y, z, sin pi t', cos pi t')`` plus a per-subject
latent, a residual ReLU MLP, an intensity head (sigmoid, ``[0, 1]``) and a 4-class label head (logits).

Coordinates are canonical (standardised frame, about ``[-1, 1]``); ``t' = 2 phase - 1`` so that
``(sin pi t', cos pi t')`` is a cyclic embedding of the normalised phase in ``[0, 1)``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from .config import NetworkConfig
from .data import N_CLASSES


class SinusoidalEncoding(nn.Module):
    """``v -> [v, sin(2^k pi v_c), cos(2^k pi v_c)]`` for each input component ``c`` and ``k < n_c``.

    ``alpha`` (optional, coarse-to-fine) weights band ``k`` by ``(1 - cos(pi clamp(alpha - k, 0, 1))) / 2``.
    """

    def __init__(self, frequencies: Sequence[int]) -> None:
        super().__init__()
        self.frequencies = tuple(int(n) for n in frequencies)
        columns, bands, scales = [], [], []
        for column, count in enumerate(self.frequencies):
            for k in range(count):
                columns.append(column)
                bands.append(k)
                scales.append(math.pi * 2.0**k)
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.long), persistent=False)
        self.register_buffer("bands", torch.tensor(bands, dtype=torch.float32), persistent=False)
        self.register_buffer("scales", torch.tensor(scales, dtype=torch.float32), persistent=False)

    @property
    def out_features(self) -> int:
        return len(self.frequencies) + 2 * sum(self.frequencies)

    def forward(self, values: torch.Tensor, alpha: Optional[float] = None) -> torch.Tensor:
        """``values`` ``(N, len(frequencies))`` -> ``(N, out_features)``."""
        angles = values[:, self.columns] * self.scales
        sin, cos = torch.sin(angles), torch.cos(angles)
        if alpha is not None:
            weight = (1.0 - torch.cos(math.pi * (alpha - self.bands).clamp(0.0, 1.0))) / 2.0
            sin, cos = sin * weight, cos * weight
        return torch.cat([values, sin, cos], dim=1)


class ResidualBlock(nn.Module):
    """``h -> h + W relu(h)`` (pre-activation residual layer)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)
        nn.init.kaiming_uniform_(self.linear.weight, a=math.sqrt(5))
        self.linear.weight.data.mul_(0.5)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.linear(torch.relu(hidden))


class NISFNetwork(nn.Module):
    """Shared MLP: (canonical points, phases, latents) -> (intensity in [0, 1], 4-class logits)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        spatial = tuple(config.spatial_frequencies)
        self.encoding = SinusoidalEncoding(spatial + (config.time_frequencies, config.time_frequencies))
        self.input = nn.Linear(self.encoding.out_features + config.latent_dim, config.hidden)
        self.blocks = nn.ModuleList(ResidualBlock(config.hidden) for _ in range(config.layers))
        self.intensity_head = nn.Linear(config.hidden, 1)
        self.label_head = nn.Linear(config.hidden, N_CLASSES)

    def features(self, points: torch.Tensor, phases: torch.Tensor, latents: torch.Tensor,
                 alpha: Optional[float] = None) -> torch.Tensor:
        """Last hidden layer (after ReLU) ``(N, hidden)``. ``points`` ``(N, 3)`` canonical, ``phases``
        ``(N,)`` normalised, ``latents`` ``(N, latent_dim)`` or ``(latent_dim,)`` (one subject)."""
        angle = math.pi * (2.0 * phases - 1.0)
        encoded = self.encoding(torch.cat([points, torch.sin(angle)[:, None], torch.cos(angle)[:, None]], 1), alpha)
        if self.config.latent_dim:
            if latents.dim() == 1:
                latents = latents.expand(points.shape[0], -1)
            encoded = torch.cat([encoded, latents], dim=1)
        hidden = self.input(encoded)
        for block in self.blocks:
            hidden = block(hidden)
        return torch.relu(hidden)

    def _time_columns(self) -> torch.Tensor:
        """Boolean mask over the input layer's encoded columns that depend on the phase only (the raw
        ``sin pi t', cos pi t'`` and their bands); the latent columns are not included."""
        spatial = len(self.config.spatial_frequencies)
        raw = torch.arange(self.encoding.out_features - 2 * int(self.encoding.columns.numel()),
                           device=self.encoding.columns.device) >= spatial
        banded = self.encoding.columns >= spatial
        return torch.cat([raw, banded, banded])

    def static_preactivation(self, points: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        """The input layer's pre-activation without its phase columns ``(N, hidden)``: the part shared by
        every phase of the same points (bias, spatial encoding, latent). With :meth:`phase_preactivation`
        it gives :meth:`features` for many phases without re-encoding the points (sampling)."""
        zeros = torch.zeros(points.shape[0], 2, dtype=points.dtype, device=points.device)
        encoded = self.encoding(torch.cat([points, zeros], 1))
        encoded = encoded.masked_fill(self._time_columns()[None, :], 0.0)
        if self.config.latent_dim:
            if latents.dim() == 1:
                latents = latents.expand(points.shape[0], -1)
            encoded = torch.cat([encoded, latents], dim=1)
        return self.input(encoded)

    def phase_preactivation(self, phases: torch.Tensor) -> torch.Tensor:
        """The input layer's phase columns times their weights ``(T, hidden)`` for normalised ``phases``
        ``(T,)`` (no bias): add one row to :meth:`static_preactivation` for that phase."""
        angle = math.pi * (2.0 * phases - 1.0)
        zeros = torch.zeros(phases.shape[0], len(self.config.spatial_frequencies), dtype=phases.dtype,
                            device=phases.device)
        encoded = self.encoding(torch.cat([zeros, torch.sin(angle)[:, None], torch.cos(angle)[:, None]], 1))
        encoded = encoded.masked_fill(~self._time_columns()[None, :], 0.0)
        weight = self.input.weight[:, :encoded.shape[1]]
        return encoded @ weight.t()

    def from_preactivation(self, preactivation: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(intensity (N,), label logits (N, 4))`` from an input-layer pre-activation ``(N, hidden)``."""
        hidden = preactivation
        for block in self.blocks:
            hidden = block(hidden)
        hidden = torch.relu(hidden)
        return torch.sigmoid(self.intensity_head(hidden)[:, 0]), self.label_head(hidden)

    def forward(self, points: torch.Tensor, phases: torch.Tensor, latents: torch.Tensor,
                alpha: Optional[float] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(intensity (N,), label logits (N, 4))``."""
        hidden = self.features(points, phases, latents, alpha)
        return torch.sigmoid(self.intensity_head(hidden)[:, 0]), self.label_head(hidden)

    def intensity(self, points: torch.Tensor, phases: torch.Tensor, latents: torch.Tensor,
                  alpha: Optional[float] = None) -> torch.Tensor:
        return torch.sigmoid(self.intensity_head(self.features(points, phases, latents, alpha))[:, 0])

    def weight_norm_squared(self) -> torch.Tensor:
        """Sum of squared weights (not biases), for the L2 regulariser."""
        return sum((p * p).sum() for name, p in self.named_parameters() if name.endswith("weight"))


__all__ = ["SinusoidalEncoding", "ResidualBlock", "NISFNetwork"]
