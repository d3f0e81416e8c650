"""Sampling a fitted subject: any 4D grid (RAS mm, any phases) of intensities and labels, in chunks so
that memory stays bounded (``chunk`` points through the network at a time, plus the output arrays);
predictions on the input slices; meshes of sampled labels.

Only points inside the modelled box (``roi_half_size`` in network space, 5 % margin) go through the
network; the rest get intensity 0 and label 0 (background). Labels are also background beyond the
slab the SAX stack covers along the long axis (:func:`sax_coverage_mm`, half a slice spacing past the
first and last slice): no slice observed the anatomy there, so the field must not invent a blood pool
from the training cohort's shapes. Intensities come back in the study's stored units (canonical
intensity x the subject's normalisation), i.e. corrected for slice scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.image_sequence import ImageSequence
from ..geometry.affine import apply_affine
from ..training.seeding import make_generator
from .model import SubjectFit
from .psf import psf_offsets

BOX_MARGIN = 1.05


@dataclass
class SampledSequence:
    """Sampled 4D intensities (float32, stored units) and labels (uint8), ``(t, z, y, x)``, same grid."""

    intensity: Optional[ImageSequence]
    labels: Optional[ImageSequence]


def standard_grid(fit: SubjectFit, spacing_mm: float,
                  half_size: Optional[float] = None) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    """An isotropic grid aligned with the subject's standardised frame covering ``[-h, h]^3`` canonical
    (``h`` = the modelled box): (IJK->RAS, (z, y, x) shape)."""
    frame = fit.subject.frame
    half = (fit.config.roi_half_size if half_size is None else half_size) * frame.scale_mm
    n = int(np.ceil(2 * half / spacing_mm)) + 1
    origin = frame.origin_ras - half * frame.axes_ras.sum(axis=1)
    matrix = np.eye(4)
    matrix[:3, :3] = frame.axes_ras * spacing_mm
    matrix[:3, 3] = origin
    return matrix, (n, n, n)


def _phases(fit: SubjectFit, phases: Optional[Sequence[float]]) -> np.ndarray:
    if phases is None:
        return np.arange(fit.subject.n_frames, dtype=float) / fit.subject.n_frames
    return np.asarray(list(phases), float).reshape(-1) % 1.0


def sax_coverage_mm(fit: SubjectFit) -> Optional[Tuple[float, float]]:
    """``(low, high)`` heights (mm along the subject frame's z, base -> apex, from its origin) of the slab
    the modelled SAX slices cover on their corrected planes: the first and last slice centres widened by
    half the slice spacing (the slice thickness for a single slice). None without SAX slices."""
    sax = [(position, s) for position, s in enumerate(fit.subject.slices) if s.view == "SAX"]
    if not sax:
        return None
    geometries = fit.corrected_geometries()
    frame = fit.subject.frame
    heights = []
    for position, slice_ in sax:
        ny, nx = slice_.shape_yx
        centre = apply_affine(geometries[position], [(nx - 1) / 2.0, (ny - 1) / 2.0, 0.0])
        heights.append(float(frame.to_canonical(centre)[2]) * frame.scale_mm)
    heights = np.sort(np.asarray(heights))
    half = 0.5 * (float(np.median(np.diff(heights))) if len(heights) > 1 else float(sax[0][1].spacing[2]))
    return float(heights[0] - half), float(heights[-1] + half)


@torch.no_grad()
def sample_points(fit: SubjectFit, points_ras: np.ndarray, phases: Sequence[float], *, chunk: Optional[int] = None,
                  want_intensity: bool = True, want_labels: bool = True,
                  clip_to_coverage: bool = True, shared_encoding: bool = True,
                  bf16: bool = False) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """Intensities (normalised canonical units) and labels at RAS points ``(N, 3)`` for each phase:
    ``((t, N) float32, (t, N) uint8)``; points outside the modelled box get 0, and with
    ``clip_to_coverage`` labels beyond the SAX stack's slab (:func:`sax_coverage_mm`) are background.
    ``shared_encoding`` (default) encodes each chunk's points and latent once for all phases
    (:meth:`~.network.NISFNetwork.static_preactivation`; the same values up to float rounding);
    False = the previous per-phase full forward. ``bf16``: the MLP under CPU/CUDA bfloat16 autocast
    (opt-in; labels may differ at class boundaries)."""
    phases = np.asarray(list(phases), float).reshape(-1)
    chunk = int(chunk or fit.config.sample_chunk)
    n = len(points_ras)
    intensity = np.zeros((len(phases), n), np.float32) if want_intensity else None
    labels = np.zeros((len(phases), n), np.uint8) if want_labels else None
    limit = fit.config.roi_half_size * BOX_MARGIN
    for start in range(0, n, chunk):
        template = fit.template_points(points_ras[start:start + chunk])
        inside = (template.abs().max(dim=1).values <= limit)
        index = torch.nonzero(inside).squeeze(1)
        if index.numel() == 0:
            continue
        points = template[index]
        where = start + index.cpu().numpy()
        with torch.autocast(points.device.type, dtype=torch.bfloat16, enabled=bool(bf16)):
            if shared_encoding:
                static = fit.network.static_preactivation(points, fit.latent)
                offsets = fit.network.phase_preactivation(torch.as_tensor(phases, dtype=points.dtype,
                                                                          device=points.device))
            for t, phase in enumerate(phases):
                if shared_encoding:
                    values, logits = fit.network.from_preactivation(static + offsets[t])
                else:
                    phase_column = torch.full((points.shape[0],), float(phase), device=points.device)
                    values, logits = fit.network(points, phase_column, fit.latent)
                if intensity is not None:
                    intensity[t, where] = values.float().cpu().numpy()
                if labels is not None:
                    labels[t, where] = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
    coverage = sax_coverage_mm(fit) if (labels is not None and clip_to_coverage) else None
    if coverage is not None:
        frame = fit.subject.frame
        heights = frame.to_canonical(np.asarray(points_ras, float))[:, 2] * frame.scale_mm
        labels[:, (heights < coverage[0]) | (heights > coverage[1])] = 0
    return intensity, labels


def keep_largest_components(labels: np.ndarray, classes: Sequence[int] = (1, 2, 3)) -> np.ndarray:
    """In a ``(z, y, x)`` label map, keep only the largest connected component (6-connectivity) of each
    class; smaller islands become background. Returns a new array."""
    from scipy import ndimage

    out = labels.copy()
    found = np.nonzero(labels)
    if not found[0].size:
        return out
    box = tuple(slice(int(f.min()), int(f.max()) + 1) for f in found)  # the labelled box: same components
    region, view = labels[box], out[box]
    for label in classes:
        components, count = ndimage.label(region == label)
        if count > 1:
            sizes = np.bincount(components.ravel())
            sizes[0] = 0
            view[(components != 0) & (components != int(np.argmax(sizes)))] = 0
    return out


def voxel_points_ras(ijk_to_ras: np.ndarray, k: np.ndarray, j: np.ndarray, i: np.ndarray) -> np.ndarray:
    """RAS points (mm) ``(N, 3)`` of voxels given by their ``k`` (z), ``j`` (y), ``i`` (x) indices."""
    return apply_affine(ijk_to_ras, np.stack([i, j, k], axis=1).astype(float))


def _sample_blocks(fit: SubjectFit, ijk_to_ras: np.ndarray, shape_zyx: Sequence[int], phases: np.ndarray, chunk: int,
                   intensity: Optional[np.ndarray], labels: Optional[np.ndarray], clip_to_coverage: bool,
                   shared_encoding: bool, bf16: bool, progress) -> None:
    """Every voxel of the grid, whole z-planes per block, into ``intensity`` / ``labels`` ``(t, z*y*x)``."""
    nz, ny, nx = shape_zyx
    total = nz * ny * nx
    rows = max(1, chunk // max(nx * ny, 1))  # whole z-planes per block; the network sees <= chunk points
    block = rows * nx * ny
    for start in range(0, total, block):
        flat = np.arange(start, min(start + block, total))
        k, rest = np.divmod(flat, nx * ny)
        j, i = np.divmod(rest, nx)
        points = voxel_points_ras(ijk_to_ras, k, j, i)
        values, classes = sample_points(fit, points, phases, chunk=chunk, want_intensity=intensity is not None,
                                        want_labels=labels is not None, clip_to_coverage=clip_to_coverage,
                                        shared_encoding=shared_encoding, bf16=bf16)
        if intensity is not None:
            intensity[:, flat] = values
        if labels is not None:
            labels[:, flat] = classes
        if progress is not None:
            progress(min(start + block, total) / total, f"sampled {min(start + block, total)}/{total} voxels")


def sample_grid(fit: SubjectFit, ijk_to_ras: np.ndarray, shape_zyx: Sequence[int],
                phases: Optional[Sequence[float]] = None,
                *, chunk: Optional[int] = None, want_intensity: bool = True, want_labels: bool = True,
                largest_component: bool = True, clip_to_coverage: bool = True, progress=None,
                name: str = "", shared_encoding: bool = True, bf16: bool = False,
                coarse_to_fine: bool = True) -> SampledSequence:
    """Sample a 4D grid (``ijk_to_ras`` 4x4 RAS mm, ``shape_zyx``, ``phases``; default: the study's
    frames) of intensities (stored units) and labels, chunk by chunk (bounded memory). With
    ``largest_component`` each class keeps its largest connected component per frame (the heart is
    one piece; islands are extrapolation far from the slices); with ``clip_to_coverage`` labels beyond
    the SAX stack's slab are background (:func:`sax_coverage_mm`). Labels alone (``want_intensity``
    False) are sampled ``coarse_to_fine`` (:mod:`.refine`: the network on every second voxel and the
    boundary band; False = every voxel, the previous way); ``shared_encoding`` / ``bf16`` as in
    :func:`sample_points`."""
    nz, ny, nx = (int(v) for v in shape_zyx)
    phases = _phases(fit, phases)
    chunk = int(chunk or fit.config.sample_chunk)
    total = nz * ny * nx
    intensity = np.zeros((len(phases), total), np.float32) if want_intensity else None
    labels = np.zeros((len(phases), total), np.uint8) if want_labels else None
    if labels is not None and intensity is None and coarse_to_fine:
        from .refine import sample_labels_coarse_to_fine

        labels = sample_labels_coarse_to_fine(fit, ijk_to_ras, (nz, ny, nx), phases, chunk=chunk,
                                              clip_to_coverage=clip_to_coverage, shared_encoding=shared_encoding,
                                              bf16=bf16)
        if progress is not None:
            progress(1.0, f"sampled {total} voxels (coarse to fine)")
    else:
        _sample_blocks(fit, ijk_to_ras, (nz, ny, nx), phases, chunk, intensity, labels, clip_to_coverage,
                       shared_encoding, bf16, progress)
    shape = (len(phases), nz, ny, nx)
    if labels is not None and largest_component:
        labels = np.stack([keep_largest_components(frame.reshape(shape[1:])) for frame in labels])
    cycle = fit.subject.cycle_length_s
    out_intensity = None if intensity is None else ImageSequence(
        (intensity * fit.subject.intensity_norm).reshape(shape), ijk_to_ras, phases, cycle,
        name=name or "nisf_intensity")
    out_labels = None if labels is None else ImageSequence(labels.reshape(shape), ijk_to_ras, phases, cycle,
                                                           name=(name + "_labels") if name else "nisf_labels")
    return SampledSequence(out_intensity, out_labels)


@torch.no_grad()
def predict_slice(fit: SubjectFit, slice_position: int, frames: Optional[Sequence[int]] = None, *,
                  psf_samples: Optional[int] = None, motion_correction: bool = True, seed: int = 0
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """The model's view of input slice ``slice_position`` (index into ``fit.subject.slices``) on its
    corrected plane: ``(intensities (t, n_roi) in the slice's observed normalised units, labels (t, n_roi))``
    at its modelled pixels (``roi_pixels``). PSF with ``psf_samples`` (default: the config's; 0 = off)."""
    slice_ = fit.subject.slices[slice_position]
    frames = list(range(len(slice_.phases))) if frames is None else list(frames)
    config = fit.config
    samples = (config.psf.samples if config.psf.enabled else 0) if psf_samples is None else int(psf_samples)
    n = len(slice_.roi_pixels)
    ids = torch.full((n,), slice_position, dtype=torch.long, device=fit.device)
    ij = torch.as_tensor(slice_.roi_ij, dtype=torch.float32, device=fit.device)
    ijk = torch.cat([ij, torch.zeros_like(ij[:, :1])], dim=1)
    centre = fit.params.slice_points(fit.table, ids, ijk, motion_correction=motion_correction)
    generator = make_generator(seed, stream=slice_position)
    scale = 1.0 + float(fit.params.slice_intensity[slice_position]) if config.intensity_scaling else 1.0
    out_intensity = np.zeros((len(frames), n), np.float32)
    out_labels = np.zeros((len(frames), n), np.uint8)
    for row, frame in enumerate(frames):
        phase = torch.full((n,), float(slice_.phases[frame]), device=fit.device)
        values, logits = fit.network(centre, phase, fit.latent)
        out_labels[row] = logits.argmax(1).to(torch.uint8).cpu().numpy()
        if samples:
            antithetic = config.psf.antithetic and samples % 2 == 0
            offsets = psf_offsets(fit.table.sigmas_mm[ids].cpu(), samples, antithetic=antithetic,
                                  generator=generator).to(fit.device)
            points = fit.params.slice_points(fit.table, ids.repeat_interleave(samples),
                                             ijk.repeat_interleave(samples, 0), offsets.reshape(-1, 3),
                                             motion_correction=motion_correction)
            values = fit.network.intensity(points, phase.repeat_interleave(samples), fit.latent)
            values = values.reshape(n, samples).mean(1)
        out_intensity[row] = (values / scale).float().cpu().numpy()
    return out_intensity, out_labels


def scatter_roi(slice_shape_yx: Tuple[int, int], roi_pixels: np.ndarray, values: np.ndarray, fill=0) -> np.ndarray:
    """``(t, n_roi)`` values -> ``(t, y, x)`` images (``fill`` outside the modelled pixels)."""
    out = np.full((values.shape[0], int(np.prod(slice_shape_yx))), fill, dtype=values.dtype)
    out[:, roi_pixels] = values
    return out.reshape((values.shape[0],) + tuple(slice_shape_yx))


def label_meshes(labels: ImageSequence, label: int = 2,
                 frames: Optional[Sequence[int]] = None) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Marching-cubes surfaces of ``labels == label`` per frame: ``[(vertices (n, 3) RAS mm, faces (m, 3))]``
    (empty arrays for a frame without that label)."""
    from skimage.measure import marching_cubes

    frames = range(labels.n_frames) if frames is None else frames
    meshes = []
    for f in frames:
        mask = np.pad(labels.array[f] == label, 1).astype(np.float32)  # (z, y, x), padded: closed surfaces
        if mask.max() == 0:
            meshes.append((np.zeros((0, 3)), np.zeros((0, 3), np.int64)))
            continue
        vertices_zyx, faces, _, _ = marching_cubes(mask, 0.5)
        ijk = vertices_zyx[:, ::-1] - 1.0  # (z, y, x) -> (i, j, k), undo the padding
        meshes.append((apply_affine(labels.ijk_to_ras, ijk), faces[:, ::-1].astype(np.int64)))
    return meshes


__all__ = ["SampledSequence", "standard_grid", "sax_coverage_mm", "sample_points", "sample_grid", "keep_largest_components",
           "voxel_points_ras",
           "predict_slice", "scatter_roi",
           "label_meshes"]
