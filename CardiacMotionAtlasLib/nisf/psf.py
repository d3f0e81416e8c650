"""The slice point-spread function: an anisotropic Gaussian, FWHM = voxel size (sigma = size / 2.355),
in-plane pixel size along i and j and the slice thickness along k, integrated by Monte-Carlo.

A voxel's modelled intensity is ``mean_k f(x + R d_k)`` with ``d_k ~ N(0, diag(sigma^2))`` in the
slice's own axes (mm) and ``R`` its direction matrix; with ``antithetic`` sampling the draws come in
pairs ``(d, -d)``, which removes the odd-order terms of the Monte-Carlo error.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # = 1 / 2.3548


def psf_sigmas_mm(spacing_mm: np.ndarray) -> np.ndarray:
    """Gaussian sigmas (mm) along i, j, k for voxel sizes (pixel, pixel, thickness) = FWHM."""
    return np.asarray(spacing_mm, float) * FWHM_TO_SIGMA


def psf_offsets(sigmas_mm: torch.Tensor, samples: int, *, antithetic: bool = True,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Monte-Carlo offsets ``(N, samples, 3)`` in mm along each voxel's (i, j, k) axes, for ``sigmas_mm``
    ``(N, 3)``."""
    n = sigmas_mm.shape[0]
    draws = samples // 2 if antithetic else samples
    normal = torch.randn((n, draws, 3), generator=generator, device=sigmas_mm.device, dtype=sigmas_mm.dtype)
    if antithetic:
        normal = torch.cat([normal, -normal], dim=1)
    return normal * sigmas_mm[:, None, :]


def blur_monte_carlo(function: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor,
                     axes: torch.Tensor, sigmas_mm: torch.Tensor, samples: int, *, antithetic: bool = True,
                     generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``E[f(x + axes @ d)]``, ``d ~ N(0, diag(sigma^2))``, estimated with ``samples`` draws per point.

    ``function`` maps ``(M, 3)`` points to ``(M,)`` values; ``points`` ``(N, 3)``; ``axes`` ``(3, 3)``
    (columns: the unit voxel axes) or ``(N, 3, 3)``; ``sigmas_mm`` ``(3,)`` or ``(N, 3)``.
    """
    n = points.shape[0]
    sigmas = sigmas_mm.expand(n, 3) if sigmas_mm.dim() == 1 else sigmas_mm
    offsets = psf_offsets(sigmas, samples, antithetic=antithetic, generator=generator)  # (N, K, 3)
    axes = axes.expand(n, 3, 3) if axes.dim() == 2 else axes
    moved = points[:, None, :] + torch.einsum("nab,nkb->nka", axes, offsets)
    return function(moved.reshape(-1, 3)).reshape(n, -1).mean(dim=1)


__all__ = ["FWHM_TO_SIGMA", "psf_sigmas_mm", "psf_offsets", "blur_monte_carlo"]
