"""Slice-to-slice intersection consistency: two cine slices that cross must show the same intensities
along their common line once both are moved by their rigid offsets (classic stack-to-stack motion
correction, independent of the network, so it also constrains slices the template fits poorly).

For every ordered pair of non-parallel slices (a, b), the modelled pixels of ``a`` lying within half a
pixel of ``b``'s nominal plane are kept. At each step a few of them are drawn; pixel ``(i, j)`` of ``a``
is moved by ``a``'s offset (canonical frame, :class:`~.slices.SubjectParameters`), mapped back through
``b``'s offset and nominal geometry to ``b``'s pixel coordinates, and ``b``'s image is read there
bilinearly (differentiable in both slices' offsets). The loss is the mean squared difference of the
intensity-scaled values ``(1 + d) I``, weighted by ``exp(-k^2 / 2 sigma^2)`` where ``k`` is the
distance to ``b``'s corrected plane in slice thicknesses (``sigma`` = half a thickness).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from ..geometry.affine import apply_affine
from .data import SubjectData
from .slices import SliceTable, SubjectParameters, rotation_from_vector_deg


class IntersectionSampler:
    """The crossing pixels of one subject's slices and their full images, on ``device``."""

    def __init__(self, subject: SubjectData, table: SliceTable, device: torch.device,
                 min_angle_deg: float = 20.0) -> None:
        self.device = device
        flat, offsets, sizes = [], [], []
        start = 0
        for slice_ in subject.slices:
            ny, nx = slice_.shape_yx
            image = np.zeros((slice_.intensities.shape[0], ny * nx), np.float32)
            image[:, slice_.roi_pixels] = slice_.intensities
            flat.append(image.ravel())
            offsets.append(start)
            sizes.append((slice_.intensities.shape[0], ny, nx))
            start += image.size
        self.images = torch.as_tensor(np.concatenate(flat), device=device)
        self.offsets = torch.as_tensor(offsets, dtype=torch.long, device=device)
        self.sizes = torch.as_tensor(sizes, dtype=torch.long, device=device)
        nominal = table.nominal.double().cpu().numpy()
        full = np.tile(np.eye(4), (len(nominal), 1, 1))
        full[:, :3] = nominal
        self.inverse_nominal = torch.as_tensor(np.linalg.inv(full)[:, :3], dtype=torch.float32, device=device)
        a_ids, b_ids, pixels = [], [], []
        cos_limit = np.cos(np.deg2rad(min_angle_deg))
        for a, slice_a in enumerate(subject.slices):
            ras = apply_affine(slice_a.nominal_ijk_to_ras, np.c_[slice_a.roi_ij, np.zeros(len(slice_a.roi_ij))])
            normal_a = slice_a.nominal_ijk_to_ras[:3, 2] / slice_a.spacing[2]
            half_pixel = 0.5 * float(slice_a.spacing[:2].min())
            for b, slice_b in enumerate(subject.slices):
                normal_b = slice_b.nominal_ijk_to_ras[:3, 2] / slice_b.spacing[2]
                if a == b or abs(normal_a @ normal_b) > cos_limit:
                    continue
                ijk_b = apply_affine(np.linalg.inv(slice_b.nominal_ijk_to_ras), ras)
                ny, nx = slice_b.shape_yx
                near = np.abs(ijk_b[:, 2]) * slice_b.spacing[2] < half_pixel
                inside = (ijk_b[:, 0] >= 0) & (ijk_b[:, 0] <= nx - 2) & (ijk_b[:, 1] >= 0) & (ijk_b[:, 1] <= ny - 2)
                rounded = np.rint(ijk_b[:, 1]).astype(int) * nx + np.rint(ijk_b[:, 0]).astype(int)
                modelled = np.isin(rounded, slice_b.roi_pixels)
                keep = np.flatnonzero(near & inside & modelled)
                a_ids.append(np.full(len(keep), a))
                b_ids.append(np.full(len(keep), b))
                pixels.append(slice_a.roi_ij[keep])
        self.a = torch.as_tensor(np.concatenate(a_ids) if a_ids else np.zeros(0), dtype=torch.long, device=device)
        self.b = torch.as_tensor(np.concatenate(b_ids) if b_ids else np.zeros(0), dtype=torch.long, device=device)
        self.ij = torch.as_tensor(np.concatenate(pixels) if pixels else np.zeros((0, 2)), dtype=torch.float32,
                                  device=device)

    def __len__(self) -> int:
        return int(self.a.shape[0])

    def _read(self, slices: torch.Tensor, frames: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Bilinear read of ``slices``' images at frame ``frames`` and pixel coordinates ``(i, j)``."""
        nx = self.sizes[slices, 2]
        ny = self.sizes[slices, 1]
        i = torch.minimum(i.clamp_min(0.0), (nx - 2).float())
        j = torch.minimum(j.clamp_min(0.0), (ny - 2).float())
        i0, j0 = i.floor().detach(), j.floor().detach()
        wi, wj = i - i0, j - j0
        base = self.offsets[slices] + frames * ny * nx
        at = lambda di, dj: self.images[base + (j0.long() + dj) * nx + i0.long() + di]  # noqa: E731
        return ((1 - wi) * (1 - wj) * at(0, 0) + wi * (1 - wj) * at(1, 0) + (1 - wi) * wj * at(0, 1)
                + wi * wj * at(1, 1))

    def loss(self, params: SubjectParameters, table: SliceTable, generator: torch.Generator, n_points: int,
             intensity_scaling: bool = True) -> Optional[torch.Tensor]:
        """Weighted mean squared intensity difference of ``n_points`` crossing pixels (None without any)."""
        if len(self) == 0:
            return None
        pick = torch.randint(len(self), (n_points,), generator=generator).to(self.device)
        a, b, ij = self.a[pick], self.b[pick], self.ij[pick]
        frames = (torch.rand(n_points, generator=generator).to(self.device) * self.sizes[a, 0]).long()
        ijk = torch.cat([ij, torch.zeros_like(ij[:, :1])], dim=1)
        nominal = table.nominal[a]
        points = params.slice_transform(table, a, torch.einsum("nab,nb->na", nominal[:, :, :3], ijk) + nominal[:, :, 3])
        rotation = rotation_from_vector_deg(params.slice_rotation_deg)[b]
        centre = table.centre[b]
        back = torch.einsum("nba,nb->na", rotation, points - centre - params.slice_shifts(table)[b]) + centre
        inverse = self.inverse_nominal[b]
        ijk_b = torch.einsum("nab,nb->na", inverse[:, :, :3], back) + inverse[:, :, 3]
        value_a = self._read(a, frames, ij[:, 0], ij[:, 1])
        value_b = self._read(b, frames, ijk_b[:, 0], ijk_b[:, 1])
        if intensity_scaling:
            value_a = (1.0 + params.slice_intensity[a]) * value_a
            value_b = (1.0 + params.slice_intensity[b]) * value_b
        weight = torch.exp(-0.5 * (ijk_b[:, 2] / 0.5) ** 2)
        return (weight * (value_a - value_b) ** 2).sum() / weight.sum().clamp_min(1e-6)


__all__ = ["IntersectionSampler"]
