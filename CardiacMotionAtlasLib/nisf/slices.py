"""Slice geometry in torch and the per-subject learnable parameters.

A pixel ``(i, j)`` of slice ``s`` (plus a PSF offset ``d`` in mm along the slice axes) maps to the
network's template space in three steps:

1. nominal: ``p = F M_s (i, j, 0) + A_s d`` (``M_s`` the header IJK->RAS, ``F`` RAS -> canonical,
   ``A_s`` canonical units per mm along the slice axes);
2. slice offset: ``p' = R(dtheta_s) (p - c_s) + c_s + A_s dtau_s`` (rotation about the slice centre
   ``c_s``; ``dtheta`` a rotation vector in degrees along canonical axes; ``dtau`` mm along the slice's
   own axes: in-plane (i, j) and through-plane (k) are separate parameters, because the through-plane
   shift of a thick slice is much less observable and gets its own learning rate and prior);
3. subject pose: ``q = R(gtheta) p' + gtau / scale`` (about the LV centre; identity for training
   subjects, fitted freely for a new subject); output grids use ``q = G(F x)``.

The corrected geometry of slice ``s`` in RAS is ``T_s M_s`` with ``T_s = F^-1 [R, c - R c + A dtau] F``;
with zero offsets it is exactly the header's.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch
from torch import nn

from .data import SubjectData
from .psf import psf_sigmas_mm


def rotation_from_vector_deg(vectors: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` from rotation vectors ``(..., 3)`` in degrees (Rodrigues,
    exact and smooth at zero)."""
    v = vectors * (np.pi / 180.0)
    theta2 = (v * v).sum(-1, keepdim=True)[..., None]
    theta = torch.sqrt(theta2.clamp_min(1e-12))
    small = theta2 < 1e-8
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / theta2.clamp_min(1e-12))
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(v.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand_as(skew)
    return eye + a * skew + b * (skew @ skew)


def rotation_from_vector_deg_numpy(vector: np.ndarray) -> np.ndarray:
    return rotation_from_vector_deg(torch.as_tensor(np.asarray(vector, float))).numpy()


class SliceTable:
    """Fixed geometry of a list of slices (one or several subjects), as tensors on ``device``.

    Attributes: ``nominal`` ``(S, 3, 4)`` pixel index -> canonical; ``centre`` ``(S, 3)`` canonical image
    centres; ``axes_per_mm`` ``(S, 3, 3)`` canonical units per mm along i, j, k; ``sigmas_mm`` ``(S, 3)``
    PSF sigmas; ``scale_mm`` ``(S,)``; ``subject`` ``(S,)`` subject index; ``offset`` per subject of its
    first slice.
    """

    def __init__(self, subjects: Sequence[SubjectData], device: torch.device) -> None:
        nominal, centre, axes, sigmas, scale, owner, self.offset = [], [], [], [], [], [], []
        for subject_index, subject in enumerate(subjects):
            self.offset.append(len(owner))
            to_canonical = subject.frame.ras_to_canonical
            for slice_ in subject.slices:
                matrix = to_canonical @ slice_.nominal_ijk_to_ras
                nominal.append(matrix[:3])
                ny, nx = slice_.shape_yx
                centre.append(matrix[:3] @ np.array([(nx - 1) / 2.0, (ny - 1) / 2.0, 0.0, 1.0]))
                spacing = slice_.spacing
                axes.append(matrix[:3, :3] / spacing[None, :])
                sigmas.append(psf_sigmas_mm(spacing))
                scale.append(subject.frame.scale_mm)
                owner.append(subject_index)
        as_tensor = lambda values: torch.as_tensor(np.asarray(values), dtype=torch.float32, device=device)  # noqa: E731
        self.nominal = as_tensor(nominal)
        self.centre = as_tensor(centre)
        self.axes_per_mm = as_tensor(axes)
        self.sigmas_mm = as_tensor(sigmas)
        self.scale_mm = as_tensor(scale)
        self.subject = torch.as_tensor(owner, dtype=torch.long, device=device)
        self.counts = [len(s.slices) for s in subjects]

    def __len__(self) -> int:
        return int(self.subject.shape[0])


class SubjectParameters(nn.Module):
    """Learnables of ``n_subjects`` subjects with ``n_slices`` slices in all: latents ``h``, a global
    pose per subject, and per slice a rotation (deg), an in-plane translation (mm, along the slice's i
    and j), a through-plane translation (mm, along its normal) and an intensity scale ``d``
    (``(1 + d) I_observed = I_canonical``). Offsets start at zero, latents at ``N(0, init_std^2)``."""

    def __init__(self, n_subjects: int, n_slices: int, latent_dim: int, init_std: float = 0.01,
                 generator: torch.Generator = None) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(n_subjects, latent_dim, generator=generator) * init_std)
        self.global_rotation_deg = nn.Parameter(torch.zeros(n_subjects, 3))
        self.global_translation_mm = nn.Parameter(torch.zeros(n_subjects, 3))
        self.slice_rotation_deg = nn.Parameter(torch.zeros(n_slices, 3))
        self.slice_translation_mm = nn.Parameter(torch.zeros(n_slices, 2))
        self.slice_through_plane_mm = nn.Parameter(torch.zeros(n_slices))
        self.slice_intensity = nn.Parameter(torch.zeros(n_slices))

    def slice_transform(self, table: SliceTable, slice_ids: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Apply step 2 (slice offsets) to canonical ``points`` ``(N, 3)`` of slices ``slice_ids``."""
        rotation = rotation_from_vector_deg(self.slice_rotation_deg)[slice_ids]
        centre = table.centre[slice_ids]
        return torch.einsum("nab,nb->na", rotation, points - centre) + centre + self.slice_shifts(table)[slice_ids]

    def slice_translations_mm(self) -> torch.Tensor:
        """``(S, 3)`` translations in mm along each slice's (i, j, k) axes."""
        return torch.cat([self.slice_translation_mm, self.slice_through_plane_mm[:, None]], dim=1)

    def slice_shifts(self, table: SliceTable) -> torch.Tensor:
        """``(S, 3)`` canonical translation of every slice."""
        return torch.einsum("sab,sb->sa", table.axes_per_mm, self.slice_translations_mm())

    def subject_transform(self, table_scale_mm: torch.Tensor, subject_ids: torch.Tensor,
                          points: torch.Tensor) -> torch.Tensor:
        """Apply step 3 (subject pose) to canonical ``points`` of subjects ``subject_ids``."""
        rotation = rotation_from_vector_deg(self.global_rotation_deg)[subject_ids]
        shift = self.global_translation_mm[subject_ids] / table_scale_mm[:, None]
        return torch.einsum("nab,nb->na", rotation, points) + shift

    def slice_points(self, table: SliceTable, slice_ids: torch.Tensor, ijk: torch.Tensor,
                     offsets_mm: torch.Tensor = None, motion_correction: bool = True) -> torch.Tensor:
        """Template-space points ``(N, 3)`` of pixels ``ijk`` ``(N, 3)`` of slices ``slice_ids`` (steps 1-3);
        ``offsets_mm`` ``(N, 3)`` PSF offsets along the slice axes."""
        nominal = table.nominal[slice_ids]
        points = torch.einsum("nab,nb->na", nominal[:, :, :3], ijk) + nominal[:, :, 3]
        if offsets_mm is not None:
            points = points + torch.einsum("nab,nb->na", table.axes_per_mm[slice_ids], offsets_mm)
        if motion_correction:
            points = self.slice_transform(table, slice_ids, points)
        subjects = table.subject[slice_ids]
        return self.subject_transform(table.scale_mm[slice_ids], subjects, points)

    def template_points(self, subject_index: int, points_canonical: torch.Tensor, scale_mm: float) -> torch.Tensor:
        """Step 3 for canonical points of one subject (output grids)."""
        ids = torch.full((points_canonical.shape[0],), subject_index, dtype=torch.long, device=points_canonical.device)
        scale = torch.full((points_canonical.shape[0],), float(scale_mm), device=points_canonical.device)
        return self.subject_transform(scale, ids, points_canonical)

    def slice_offset_matrices(self, table: SliceTable) -> np.ndarray:
        """``(S, 4, 4)`` canonical rigid transforms of step 2 (numpy, float64)."""
        with torch.no_grad():
            rotation = rotation_from_vector_deg(self.slice_rotation_deg.double()).cpu().numpy()
            centre = table.centre.double().cpu().numpy()
            shift = torch.einsum("sab,sb->sa", table.axes_per_mm.double(),
                                 self.slice_translations_mm().double()).cpu().numpy()
        out = np.tile(np.eye(4), (len(rotation), 1, 1))
        out[:, :3, :3] = rotation
        out[:, :3, 3] = centre - np.einsum("nab,nb->na", rotation, centre) + shift
        return out


def corrected_slice_geometries(subject: SubjectData, offsets_canonical: np.ndarray) -> List[np.ndarray]:
    """Corrected IJK->RAS of every slice of ``subject``: ``T_s M_s`` with ``T_s = F^-1 O_s F`` for its
    canonical offset matrices ``offsets_canonical`` ``(S, 4, 4)``. Returns ``[(4, 4)]``."""
    to_canonical = subject.frame.ras_to_canonical
    to_ras = subject.frame.canonical_to_ras
    return [to_ras @ offset @ to_canonical @ s.nominal_ijk_to_ras
            for s, offset in zip(subject.slices, offsets_canonical)]


def slice_rigid_transforms_ras(subject: SubjectData, offsets_canonical: np.ndarray) -> List[np.ndarray]:
    """The RAS rigid transform ``T_s`` (4x4, mm) of every slice: corrected = ``T_s`` @ nominal."""
    to_canonical = subject.frame.ras_to_canonical
    to_ras = subject.frame.canonical_to_ras
    return [to_ras @ offset @ to_canonical for offset in offsets_canonical]


__all__ = ["rotation_from_vector_deg", "rotation_from_vector_deg_numpy", "SliceTable", "SubjectParameters",
           "corrected_slice_geometries", "slice_rigid_transforms_ras"]
