"""Displacement-field helpers on a voxel grid (torch, CPU or CUDA), on top of ``geometry.warp``:
upsampling half-resolution fields, inversion by fixed-point iteration, chains of frame-to-frame fields
(ED -> t and t -> ED), bending energy and local NCC. Fields are voxel displacements ``(N, 3, z, y, x)``
with channels ``(di, dj, dk)`` in the pull convention of :func:`~CardiacMotionAtlasLib.geometry.warp.warp`."""

from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..geometry.warp import compose, warp


def upsample_in_plane(field: torch.Tensor, shape_zyx: Sequence[int]) -> torch.Tensor:
    """Resize a voxel displacement field to ``shape_zyx`` (trilinear) and rescale its (di, dj, dk)
    components by the size ratios, so it stays in voxels of the new grid."""
    old = field.shape[2:]
    if tuple(old) == tuple(shape_zyx):
        return field
    out = F.interpolate(field, size=tuple(int(s) for s in shape_zyx), mode="trilinear", align_corners=True)
    scale = [(shape_zyx[2] - 1) / max(old[2] - 1, 1), (shape_zyx[1] - 1) / max(old[1] - 1, 1),
             (shape_zyx[0] - 1) / max(old[0] - 1, 1)]
    return out * torch.tensor(scale, device=field.device, dtype=field.dtype).view(1, 3, 1, 1, 1)


def invert_displacement(field: torch.Tensor, iterations: int = 20) -> torch.Tensor:
    """Inverse of ``p -> p + u(p)`` by the fixed point ``w(p) = -u(p + w(p))`` (smooth fields)."""
    inverse = -field
    for _ in range(iterations):
        inverse = -warp(field, inverse, padding_mode="border")
    return inverse


def chain_fields(forward_steps: torch.Tensor, backward_steps: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """From frame-to-frame fields ``u_{t-1 -> t}`` and their inverses ``u_{t -> t-1}`` (``(T-1, 3, ...)``),
    the fields ``u_{0 -> t}`` (on frame 0's grid) and ``u_{t -> 0}`` (on frame t's grid), ``(T, 3, ...)``
    with zeros at t = 0, composed consistently: ``u_{0->t} = u_{0->t-1} then u_{t-1->t}`` and
    ``u_{t->0} = u_{t->t-1} then u_{t-1->0}``."""
    zero = torch.zeros_like(forward_steps[:1])
    ed_to_t: List[torch.Tensor] = [zero]
    t_to_ed: List[torch.Tensor] = [zero]
    for step in range(forward_steps.shape[0]):
        ed_to_t.append(compose(ed_to_t[-1], forward_steps[step: step + 1]))
        t_to_ed.append(compose(backward_steps[step: step + 1], t_to_ed[-1]))
    return torch.cat(ed_to_t), torch.cat(t_to_ed)


def closed_chain_fields(forward_steps: torch.Tensor, backward_steps: torch.Tensor) -> dict:
    """Chains of a closed cycle: the ``T`` steps ``u_{t-1 -> t}`` (and inverses) of ``T + 1`` positions
    whose last one is ED again. Every ED -> t field has two estimates, the forward chain from the first
    ED (``0 -> 1 -> ... -> t``) and the backward chain from the closing ED (``T -> T-1 -> ... -> t``).
    If every step adds an independent error of variance ``s^2`` (a random walk), the forward chain's
    error variance is ``t s^2`` and the backward chain's ``(T - t) s^2``; the inverse-variance
    combination weights the backward chain by ``w_t = t / T`` and has variance ``s^2 t (T - t) / T``
    (a Brownian bridge pinned at both EDs), instead of ``t s^2`` for the forward chain alone.

    Returns ``ed_to_t`` / ``t_to_ed`` (the combination, ``(T + 1, 3, ...)``, identity at both ends),
    ``ed_to_t_forward`` / ``t_to_ed_forward`` (:func:`chain_fields`) and ``ed_to_t_backward`` /
    ``t_to_ed_backward`` (from the closing ED), and ``weights`` ``(T + 1,)`` (``w_t``)."""
    ed_to_t_f, t_to_ed_f = chain_fields(forward_steps, backward_steps)
    # backward chain: reverse time, the roles of the step fields swap
    rev_ed_to_t, rev_t_to_ed = chain_fields(backward_steps.flip(0), forward_steps.flip(0))
    ed_to_t_b, t_to_ed_b = rev_ed_to_t.flip(0), rev_t_to_ed.flip(0)
    n = forward_steps.shape[0]
    weights = torch.arange(n + 1, device=forward_steps.device, dtype=forward_steps.dtype) / max(n, 1)
    w = weights.view(-1, 1, 1, 1, 1)
    return {"ed_to_t": (1 - w) * ed_to_t_f + w * ed_to_t_b, "t_to_ed": (1 - w) * t_to_ed_f + w * t_to_ed_b,
            "ed_to_t_forward": ed_to_t_f, "t_to_ed_forward": t_to_ed_f, "ed_to_t_backward": ed_to_t_b,
            "t_to_ed_backward": t_to_ed_b, "weights": weights}


def bending_energy(field: torch.Tensor) -> torch.Tensor:
    """Mean squared second derivatives (all pure and mixed, voxel units) of ``(N, 3, z, y, x)``; axes of
    length < 3 contribute no pure term."""
    terms = []
    dims = [d for d in (2, 3, 4) if field.shape[d] >= 3]
    for d in dims:
        second = torch.diff(field, n=2, dim=d)
        terms.append((second ** 2).mean())
    for a in range(len(dims)):
        for b in range(a + 1, len(dims)):
            mixed = torch.diff(torch.diff(field, dim=dims[a]), dim=dims[b])
            terms.append(2.0 * (mixed ** 2).mean())
    return torch.stack(terms).sum() if terms else field.new_zeros(())


def local_ncc_map(a: torch.Tensor, b: torch.Tensor, window: Tuple[int, int, int] = (3, 7, 7),
                  eps: float = 1e-5, signed: bool = False) -> torch.Tensor:
    """Voxel-wise local normalised cross-correlation, squared (as in VoxelMorph), of ``(N, 1, z, y, x)``
    volumes over ``window`` (voxels, z y x); ``signed``: multiplied by the sign of the local covariance
    (anti-correlated patches count negative)."""
    pad = tuple(w // 2 for w in window)
    pool = lambda x: F.avg_pool3d(x, window, stride=1, padding=pad, count_include_pad=False)  # noqa: E731
    mu_a, mu_b = pool(a), pool(b)
    cov = pool(a * b) - mu_a * mu_b
    var_a = (pool(a * a) - mu_a ** 2).clamp_min(0)
    var_b = (pool(b * b) - mu_b ** 2).clamp_min(0)
    squared = cov * cov.abs() if signed else cov ** 2
    return squared / (var_a * var_b + eps)


def local_ncc(a: torch.Tensor, b: torch.Tensor, window: Tuple[int, int, int] = (3, 7, 7),
              eps: float = 1e-5) -> torch.Tensor:
    """Mean local normalised cross-correlation (squared, as in VoxelMorph) of ``(N, 1, z, y, x)`` volumes."""
    return local_ncc_map(a, b, window, eps).mean()


__all__ = ["bending_energy", "chain_fields", "closed_chain_fields", "invert_displacement", "local_ncc", "upsample_in_plane"]
