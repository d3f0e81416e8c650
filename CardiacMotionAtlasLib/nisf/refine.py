"""Coarse-to-fine label sampling of a NISF++ fit on a grid: the labels are evaluated on every second
voxel of each axis (the voxels whose indices are all even: the same points as the fine grid's), and a
fine voxel is evaluated by the network only where the coarse voxels at the corners of its cell (up to 8)
disagree; elsewhere it takes their common label. The heart's labels are many voxels thick, so on a
1.25 mm grid the network runs on ~1/8 of the voxels plus a boundary band instead of all of them.

A structure thinner than two fine voxels that falls between coarse voxels can be missed; the NISF++ speed
benchmark (:mod:`..benchmarks.nisf_speed`) prints the agreement with full sampling beside the time.
"""

from __future__ import annotations

from itertools import product
from typing import Sequence

import numpy as np

from .model import SubjectFit
from .sampling import sample_points, voxel_points_ras


def _coarse_indices(n: int) -> np.ndarray:
    """Fine index -> (lower, upper) coarse index of its cell along one axis: ``(2, n)``."""
    fine = np.arange(n)
    return np.stack([fine // 2, (fine + 1) // 2])


def sample_labels_coarse_to_fine(fit: SubjectFit, ijk_to_ras: np.ndarray, shape_zyx: Sequence[int],
                                 phases: np.ndarray, *, chunk: int, clip_to_coverage: bool = True,
                                 shared_encoding: bool = True, bf16: bool = False) -> np.ndarray:
    """Labels ``(t, z*y*x)`` uint8 of the grid ``ijk_to_ras`` (RAS mm) / ``shape_zyx`` at ``phases``,
    as :func:`~.sampling.sample_points` gives them voxel by voxel, the network evaluated on the coarse
    grid (even indices) and on the fine voxels whose cell corners disagree (module docstring)."""
    nz, ny, nx = (int(v) for v in shape_zyx)
    cz, cy, cx = nz // 2 + 1, ny // 2 + 1, nx // 2 + 1  # even n: the last coarse voxel lies one past the grid
    kk, jj, ii = np.meshgrid(np.arange(cz) * 2, np.arange(cy) * 2, np.arange(cx) * 2, indexing="ij")
    coarse_points = voxel_points_ras(ijk_to_ras, kk.ravel(), jj.ravel(), ii.ravel())
    _, coarse = sample_points(fit, coarse_points, phases, chunk=chunk, want_intensity=False,
                              clip_to_coverage=clip_to_coverage, shared_encoding=shared_encoding, bf16=bf16)
    coarse = coarse.reshape(len(phases), cz, cy, cx)
    out = np.zeros((len(phases), nz, ny, nx), np.uint8)
    found = np.nonzero(coarse.any(axis=0))
    if not found[0].size:
        return out.reshape(len(phases), -1)
    # fine voxels whose cells touch no labelled coarse voxel are background: work in the labelled box
    # (one coarse voxel wider on every side), exactly as on the whole grid
    low = [max(int(f.min()) - 1, 0) * 2 for f in found]
    high = [min(int(f.max()) * 2 + 3, n) for f, n in zip(found, (nz, ny, nx))]
    (z0, y0, x0), (z1, y1, x1) = low, high
    az, ay, ax = _coarse_indices(nz)[:, z0:z1], _coarse_indices(ny)[:, y0:y1], _coarse_indices(nx)[:, x0:x1]
    for t, phase in enumerate(phases):
        grid = coarse[t]
        first = grid[np.ix_(az[0], ay[0], ax[0])]
        uncertain = np.zeros(first.shape, bool)
        for a, b, c in product((0, 1), repeat=3):
            if a == b == c == 0:
                continue
            uncertain |= grid[np.ix_(az[a], ay[b], ax[c])] != first
        labels = first.copy()
        k, j, i = np.nonzero(uncertain)
        if k.size:
            _, fine = sample_points(fit, voxel_points_ras(ijk_to_ras, k + z0, j + y0, i + x0), [phase], chunk=chunk,
                                    want_intensity=False, clip_to_coverage=clip_to_coverage,
                                    shared_encoding=shared_encoding, bf16=bf16)
            labels[k, j, i] = fine[0]
        out[t, z0:z1, y0:y1, x0:x1] = labels
    return out.reshape(len(phases), -1)


__all__ = ["sample_labels_coarse_to_fine"]
