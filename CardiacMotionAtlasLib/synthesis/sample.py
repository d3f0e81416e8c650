"""Latents (random, along a line, on a grid) and flows decoded from them for one conditioning ES frame.

:func:`generate` works on any CT frame: it crops/resamples the frame to the working cube around the
heart, decodes flows there (working voxels, clipped to ``flow_clip_mm``), resamples them to the frame's
grid in RAS mm and pulls the frame (and its labels) by them, so that ``generated(p) = frame(p + w(p))``
holds exactly on the frame's grid (see :mod:`.grid` for the convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import torch

from ..data.displacement_field import DisplacementField
from ..geometry.warp import ras_to_voxel_displacement, warp
from .errors import SynthesisError
from .indices import implied_indices
from .grid import (FrameLike, as_frame, clip_flow_vox, heart_centre, normalise_hu, resample, warp_labels,
                   working_flow_to_frame, working_grid)
from .train import TrainedSynthesis

LATENT_MODES = ("random", "line", "grid")


def random_latents(n: int, dim: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``(n, dim)`` draws from the prior ``N(0, I)``."""
    return torch.randn((int(n), int(dim)), generator=generator)


def line_latents(n: int, dim: int, extent: float = 2.0, direction: Optional[torch.Tensor] = None,
                 generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``n`` equally spaced latents on the segment ``[-extent, extent] * d`` through the prior mean, ``d``
    a unit direction (random when not given)."""
    if direction is None:
        direction = torch.randn((int(dim),), generator=generator)
    direction = torch.as_tensor(direction, dtype=torch.float32).reshape(-1)
    if direction.numel() != dim or not torch.isfinite(direction).all() or direction.norm() == 0:
        raise SynthesisError(f"line direction must be a finite non-zero vector of length {dim}")
    steps = torch.linspace(-extent, extent, int(n)) if n > 1 else torch.zeros(1)
    return steps[:, None] * (direction / direction.norm())[None]


def grid_latents(n: int, dim: int, extent: float = 2.0, axes: Sequence[int] = (0, 1)) -> torch.Tensor:
    """About ``n`` latents on a square grid over ``[-extent, extent]^2`` of two latent ``axes`` (others 0),
    row-major; exactly ``ceil(sqrt(n))^2`` values, truncated to ``n``."""
    if dim < 2:
        axes = (0,)
    side = int(np.ceil(np.sqrt(n))) if len(axes) > 1 else int(n)
    values = torch.linspace(-extent, extent, side) if side > 1 else torch.zeros(1)
    latents = torch.zeros((side ** len(axes), dim))
    mesh = torch.meshgrid(*([values] * len(axes)), indexing="ij")
    for axis, coords in zip(axes, mesh):
        latents[:, axis] = coords.reshape(-1)
    return latents[: int(n)]


def make_latents(mode: str, n: int, dim: int, seed: int = 0, extent: float = 2.0) -> torch.Tensor:
    """Latents of ``mode`` (``random``, ``line``, ``grid``), deterministic in ``seed``."""
    if n < 1:
        raise SynthesisError(f"number of samples must be >= 1, got {n}")
    generator = torch.Generator().manual_seed(int(seed))
    if mode == "random":
        return random_latents(n, dim, generator)
    if mode == "line":
        return line_latents(n, dim, extent, generator=generator)
    if mode == "grid":
        return grid_latents(n, dim, extent)
    raise SynthesisError(f"unknown latent mode {mode!r}: expected one of {', '.join(LATENT_MODES)}")


def sample_flows(trained: TrainedSynthesis, es_working: torch.Tensor, latents: torch.Tensor,
                 batch: int = 8) -> torch.Tensor:
    """Decode voxel flows ``(N, 3, n, n, n)`` (working grid, clipped) for an ES frame on the working grid
    given in HU ``(n, n, n)`` or ``(1, 1, n, n, n)``. ``latents`` are standard-normal coordinates of the
    frame's prior (``z = mu_p + sigma_p * latent``, :meth:`~.cvae.ConditionalFlowVAE.latent_from_noise`):
    ``0`` decodes the prior mean; without a conditional prior they are ``z`` itself."""
    model, config = trained.model, trained.config
    frame = normalise_hu(es_working.to(trained.device, torch.float32).reshape(1, 1, *es_working.shape[-3:]), config)
    features = model.condition(frame)
    out = []
    with torch.no_grad():
        for start in range(0, latents.shape[0], batch):
            noise = latents[start:start + batch].to(trained.device, torch.float32)
            z = model.cvae.latent_from_noise(noise, frame, features)
            out.append(clip_flow_vox(model.cvae.decode(z, frame, features), config))
    return torch.cat(out)


@dataclass
class GeneratedSample:
    """One sample for a conditioning frame: its latent, the flow on the frame grid (``source_phase`` 0 =
    generated ED, ``target_phase`` = ES), the generated frame (HU), warped labels (or None) and ``stats``
    (flow magnitudes in mm; with labels the implied LVEF and myocardial volume change in %)."""

    latent: np.ndarray
    flow: DisplacementField
    generated: np.ndarray
    labels: Optional[np.ndarray] = None
    stats: dict = field(default_factory=dict)


def generate(trained: TrainedSynthesis, frame: FrameLike, ijk_to_ras: Optional[np.ndarray] = None,
             labels: Optional[np.ndarray] = None, latents: Optional[torch.Tensor] = None, n: int = 1,
             mode: str = "random", seed: int = 0, es_phase: float = 0.35) -> List[GeneratedSample]:
    """Samples for one ES ``frame`` (HU, any grid): flows from ``latents`` (or ``n`` of ``mode``; ``line``
    runs along the amplitude coordinate when the model has one, from weaker to stronger contraction), the
    frame and ``labels`` pulled by them on the frame's own grid."""
    volume, matrix = as_frame(frame, ijk_to_ras, "conditioning frame")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != volume.shape:
            raise SynthesisError(f"labels grid {labels.shape} != conditioning frame grid {volume.shape}")
    if latents is None:
        latents = make_latents(mode, n, trained.config.latent_dim, seed)
        if mode == "line" and trained.config.amplitude_latent:  # along the amplitude coordinate
            axis = torch.zeros(trained.config.latent_dim)
            axis[0] = 1.0
            latents = line_latents(n, trained.config.latent_dim, direction=axis)
    latents = torch.as_tensor(latents, dtype=torch.float32).cpu()
    if latents.dim() != 2 or latents.shape[1] != trained.config.latent_dim or not torch.isfinite(latents).all():
        raise SynthesisError(f"latents must be finite (N, {trained.config.latent_dim}), got {tuple(latents.shape)}")
    if not 0.0 <= es_phase < 1.0:
        raise SynthesisError(f"es_phase {es_phase} outside [0, 1)")
    device = trained.device
    work_matrix, work_shape = working_grid(heart_centre(volume, matrix, labels), trained.config)
    image = torch.as_tensor(volume, device=device)[None, None]
    es_working = resample(image, matrix, work_matrix, work_shape)
    flows_vox = sample_flows(trained, es_working, latents)
    samples = []
    for index in range(latents.shape[0]):
        flow_ras = working_flow_to_frame(flows_vox[index:index + 1], work_matrix, matrix, volume.shape)
        flow_ras_np = flow_ras[0].cpu().numpy().astype(np.float32)
        # the exact relation: pull by the float32 field that is written (no re-interpolation of w)
        u = torch.as_tensor(ras_to_voxel_displacement(flow_ras_np, matrix), device=device)[None]
        generated = warp(image, u)[0, 0].cpu().numpy()
        warped = None
        if labels is not None:
            warped = warp_labels(torch.as_tensor(labels, device=device)[None, None], u)[0, 0].cpu().numpy().astype(np.uint8)
        flow = DisplacementField(flow_ras_np, matrix, source_phase=0.0, target_phase=float(es_phase),
                                 name=f"synth_flow_{index:03d}")
        magnitude = np.linalg.norm(flow_ras_np, axis=0)
        stats = {"max_flow_mm": float(magnitude.max()), "mean_flow_mm": float(magnitude.mean())}
        if warped is not None:
            implied = implied_indices(labels, warped)
            stats.update(implied_lvef_pct=implied["lvef_pct"], myo_change_pct=implied["myo_change_pct"])
        samples.append(GeneratedSample(latents[index].numpy().astype(float), flow, generated, warped, stats))
    return samples


__all__ = ["GeneratedSample", "LATENT_MODES", "generate", "grid_latents", "line_latents", "make_latents",
           "random_latents", "sample_flows"]
