"""Warping volumes by dense displacement fields on their own voxel grid (torch; CPU or CUDA).

Conventions (shared by ``motion/`` and ``synthesis/``):
- Volumes are tensors ``(N, C, z, y, x)``.
- Voxel displacements are tensors ``(N, 3, z, y, x)`` whose channels are ``(di, dj, dk)``: voxels along
  the array axes ``x``, ``y``, ``z`` (the IJK order of the grid's IJK->RAS matrix).
- :func:`warp` *pulls*: ``out(p) = image(p + u(p))``. If ``u`` is the displacement that carries the
  material at voxel ``p`` of frame A to ``p + u(p)`` in frame B (the phantom's flows and
  :class:`~CardiacMotionAtlasLib.data.DisplacementField` follow this convention), then
  ``warp(image_B, u)`` brings frame B back onto frame A's grid.
- :func:`ras_to_voxel_displacement` / :func:`voxel_to_ras_displacement` convert between these voxel
  displacements and RAS millimetre fields ``(3, z, y, x)`` for a grid with a given IJK->RAS matrix.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
import torch.nn.functional as F

ArrayOrTensor = Union[np.ndarray, torch.Tensor]


def _check_pair(image: torch.Tensor, displacement: torch.Tensor) -> None:
    if image.dim() != 5:
        raise ValueError(f"warp: image must be (N, C, z, y, x), got shape {tuple(image.shape)}")
    if displacement.dim() != 5 or displacement.shape[1] != 3:
        raise ValueError(f"warp: displacement must be (N, 3, z, y, x), got shape {tuple(displacement.shape)}")
    if image.shape[2:] != displacement.shape[2:]:
        raise ValueError(f"warp: image grid {tuple(image.shape[2:])} != displacement grid "
                         f"{tuple(displacement.shape[2:])}")
    if displacement.shape[0] not in (1, image.shape[0]):
        raise ValueError(f"warp: batch sizes differ ({image.shape[0]} images, {displacement.shape[0]} fields)")


def identity_grid(shape_zyx, device=None, dtype=torch.float32) -> torch.Tensor:
    """Voxel coordinates ``(1, 3, z, y, x)`` with channels ``(i, j, k)``."""
    nz, ny, nx = (int(s) for s in shape_zyx)
    k, j, i = torch.meshgrid(torch.arange(nz, device=device, dtype=dtype),
                             torch.arange(ny, device=device, dtype=dtype),
                             torch.arange(nx, device=device, dtype=dtype), indexing="ij")
    return torch.stack([i, j, k])[None]


def _normalised_grid(displacement: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` grid ``(N, z, y, x, 3)`` (x, y, z in [-1, 1], align_corners=True) of ``p + u(p)``."""
    shape = displacement.shape[2:]
    positions = identity_grid(shape, displacement.device, displacement.dtype) + displacement
    sizes = torch.tensor([shape[2], shape[1], shape[0]], device=displacement.device, dtype=displacement.dtype)
    scale = 2.0 / torch.clamp(sizes - 1, min=1)
    normalised = positions * scale.view(1, 3, 1, 1, 1) - 1.0
    return normalised.permute(0, 2, 3, 4, 1)


def warp(image: torch.Tensor, displacement: torch.Tensor, mode: str = "bilinear",
         padding_mode: str = "border") -> torch.Tensor:
    """``out(p) = image(p + u(p))`` by trilinear (``"bilinear"``) or ``"nearest"`` interpolation.

    Differentiable in both ``image`` and ``displacement``; label maps are warped one-hot (or as
    probabilities) with ``"bilinear"``, or as integers with ``"nearest"``.
    """
    _check_pair(image, displacement)
    grid = _normalised_grid(displacement)
    if grid.shape[0] != image.shape[0]:
        grid = grid.expand(image.shape[0], *grid.shape[1:])
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def compose(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Displacement of ``p -> p + u1(p) -> (p + u1) + u2(p + u1)``: first ``first``, then ``second``.

    With material-motion fields (A->B then B->C on their own grids sharing one voxel grid) this is A->C.
    """
    return first + warp(second, first, padding_mode="border")


def integrate_velocity(velocity: torch.Tensor, steps: int = 7) -> torch.Tensor:
    """Diffeomorphic displacement ``exp(v)`` of a stationary velocity field by scaling and squaring
    (``2**steps`` sub-steps); both in voxels, ``(N, 3, z, y, x)``."""
    if steps < 0:
        raise ValueError(f"integrate_velocity: steps must be >= 0, got {steps}")
    displacement = velocity / (2 ** steps)
    for _ in range(steps):
        displacement = compose(displacement, displacement)
    return displacement


def _linear_part(ijk_to_ras: np.ndarray) -> np.ndarray:
    matrix = np.asarray(ijk_to_ras, dtype=float)
    if matrix.shape != (4, 4):
        raise ValueError(f"IJK->RAS must be 4x4, got {matrix.shape}")
    return matrix[:3, :3]


def _apply_linear(matrix: np.ndarray, field: ArrayOrTensor) -> ArrayOrTensor:
    """``matrix @ field`` along the component axis (-4: ``(..., 3, z, y, x)``)."""
    if isinstance(field, torch.Tensor):
        m = torch.as_tensor(matrix, dtype=field.dtype, device=field.device)
        return torch.einsum("ab,...bzyx->...azyx", m, field)
    return np.einsum("ab,...bzyx->...azyx", matrix, np.asarray(field)).astype(np.asarray(field).dtype, copy=False)


def voxel_to_ras_displacement(displacement_ijk: ArrayOrTensor, ijk_to_ras: np.ndarray) -> ArrayOrTensor:
    """Voxel displacements ``(..., 3, z, y, x)`` (di, dj, dk) -> RAS millimetres (R, A, S)."""
    return _apply_linear(_linear_part(ijk_to_ras), displacement_ijk)


def ras_to_voxel_displacement(displacement_ras: ArrayOrTensor, ijk_to_ras: np.ndarray) -> ArrayOrTensor:
    """RAS millimetre displacements ``(..., 3, z, y, x)`` -> voxel displacements (di, dj, dk)."""
    return _apply_linear(np.linalg.inv(_linear_part(ijk_to_ras)), displacement_ras)


def jacobian_determinant_voxels(displacement: torch.Tensor) -> torch.Tensor:
    """Jacobian determinant of ``p -> p + u(p)`` (voxel units) by central differences, ``(N, z, y, x)``."""
    grads = []
    for axis in (4, 3, 2):  # d/di, d/dj, d/dk
        grads.append(torch.gradient(displacement, dim=axis)[0])
    jac = torch.stack(grads, dim=2)  # (N, 3 comps, 3 derivs, z, y, x)
    eye = torch.eye(3, device=displacement.device, dtype=displacement.dtype).view(1, 3, 3, 1, 1, 1)
    jac = (jac + eye).permute(0, 3, 4, 5, 1, 2)
    return torch.linalg.det(jac)


__all__ = [
    "compose",
    "identity_grid",
    "integrate_velocity",
    "jacobian_determinant_voxels",
    "ras_to_voxel_displacement",
    "voxel_to_ras_displacement",
    "warp",
]
