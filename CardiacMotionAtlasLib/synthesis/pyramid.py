"""PWC-Net-style 3D feature pyramid and coarse-to-fine flow estimator (working-grid voxels).

The pyramid maps a normalised CT frame ``(N, 1, n, n, n)`` to features at ``n/2, n/4, ... n/2^L``
(stride-2 convolutions, so coarse voxel ``i`` sits on fine voxel ``2 i``). The estimator runs it on
both frames (shared weights) and, from coarse to fine, warps the moving (ES) features by the current
flow, correlates them with the fixed (ED) features over a ``(2r+1)^3`` search window and predicts a
flow update. Its flows follow the synthesis convention (:mod:`.grid`): ``ED(p) = ES(p + w(p))``.
After training it is frozen and its pyramid conditions the CVAE.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..geometry.warp import identity_grid, warp


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1), nn.LeakyReLU(0.1))


class FeaturePyramid(nn.Module):
    """Multi-scale 3D features: level ``l`` (1..L) has ``channels[l-1]`` channels at ``1/2^l`` size."""

    def __init__(self, channels: Sequence[int], in_channels: int = 1) -> None:
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        levels, c_in = [], in_channels
        for c in self.channels:
            levels.append(nn.Sequential(_conv(c_in, c, stride=2), _conv(c, c)))
            c_in = c
        self.levels = nn.ModuleList(levels)

    def forward(self, frame: torch.Tensor) -> List[torch.Tensor]:
        """Features finest (1/2) first."""
        out, x = [], frame
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


def correlation(fixed: torch.Tensor, moving: torch.Tensor, radius: int) -> torch.Tensor:
    """Cost volume ``(N, (2r+1)^3, z, y, x)``: channel-mean products of ``fixed(p)`` and ``moving(p+d)``."""
    if radius == 0:
        return (fixed * moving).mean(1, keepdim=True)
    padded = F.pad(moving, [radius] * 6)
    nz, ny, nx = fixed.shape[2:]
    size = 2 * radius + 1
    costs = [(fixed * padded[:, :, dz:dz + nz, dy:dy + ny, dx:dx + nx]).mean(1, keepdim=True)
             for dz in range(size) for dy in range(size) for dx in range(size)]
    return F.leaky_relu(torch.cat(costs, 1), 0.1)


def upsample_flow(flow: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Voxel flow of a coarse grid -> the grid ``factor`` times finer (coarse voxel ``i`` = fine
    ``factor i``): trilinear in position, values multiplied by ``factor``."""
    shape = tuple(s * factor for s in flow.shape[2:])
    coarse = identity_grid(shape, flow.device, flow.dtype) / factor
    sizes = torch.tensor(flow.shape[2:][::-1], dtype=flow.dtype, device=flow.device)
    grid = (coarse * (2.0 / torch.clamp(sizes - 1, min=1)).view(1, 3, 1, 1, 1) - 1.0).permute(0, 2, 3, 4, 1)
    grid = grid.expand(flow.shape[0], *grid.shape[1:])
    return F.grid_sample(flow, grid, mode="bilinear", padding_mode="border", align_corners=True) * factor


def downsample_flow(flow: torch.Tensor, factor: int) -> torch.Tensor:
    """Fine voxel flow -> the coarse grid whose voxel ``i`` is fine voxel ``factor i`` (exact samples)."""
    return flow[:, :, ::factor, ::factor, ::factor] / factor


class FlowEstimator(nn.Module):
    """3D PWC-Net: pyramid + per-level cost volume and flow decoder; ``forward(ed, es)`` returns the
    per-level flows (coarsest first, each in its level's voxels) and the full-resolution flow."""

    def __init__(self, channels: Sequence[int], search_radius: int = 2, hidden: int = 32) -> None:
        super().__init__()
        self.pyramid = FeaturePyramid(channels)
        self.radius = int(search_radius)
        n_cost = (2 * self.radius + 1) ** 3
        self.decoders = nn.ModuleList(
            nn.Sequential(_conv(n_cost + c + 3, hidden), _conv(hidden, hidden), nn.Conv3d(hidden, 3, 3, padding=1))
            for c in self.pyramid.channels)
        for decoder in self.decoders:  # start from zero flow updates
            nn.init.zeros_(decoder[-1].weight)
            nn.init.zeros_(decoder[-1].bias)

    def forward(self, ed: torch.Tensor, es: torch.Tensor):
        features_ed, features_es = self.pyramid(ed), self.pyramid(es)
        flows = []
        flow = torch.zeros_like(features_ed[-1][:, :3])
        for level in reversed(range(len(features_ed))):
            f_ed, f_es = features_ed[level], features_es[level]
            if flows:
                flow = upsample_flow(flow)
            cost = correlation(f_ed, warp(f_es, flow), self.radius)
            flow = flow + self.decoders[level](torch.cat([cost, f_ed, flow], 1))
            flows.append(flow)
        return flows, upsample_flow(flow)


def estimator_loss(flows: List[torch.Tensor], full: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Multi-scale endpoint error in full-resolution voxels: full-size EPE plus ``0.5^l`` weighted EPE of
    each level ``l`` (coarsest weighted least) against the exactly sub-sampled target."""
    loss = torch.linalg.vector_norm(full - target, dim=1).mean()
    n_levels = len(flows)
    for index, flow in enumerate(flows):
        level = n_levels - index  # coarsest first
        factor = 2 ** level
        reference = downsample_flow(target, factor)
        loss = loss + 0.5 ** (level - 1) * factor * torch.linalg.vector_norm(flow - reference, dim=1).mean() / n_levels
    return loss


__all__ = ["FeaturePyramid", "FlowEstimator", "correlation", "downsample_flow", "estimator_loss", "upsample_flow"]
