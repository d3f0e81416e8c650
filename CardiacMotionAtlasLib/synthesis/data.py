"""Training pairs on the working grid: phantom ES/ED pairs with their exact flows, pairs of user frames
annotated by SimpleITK diffeomorphic demons (the paper's "flow field annotation process"), the
augmentations, and random smooth B-spline fields (the hand-crafted baseline generator).

Every flow here follows :mod:`.grid`: working-grid voxels ``(di, dj, dk)`` on the ED grid with
``ED(p) = ES(p + w(p))``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import List, Optional, Sequence, Union

import numpy as np
import SimpleITK as sitk
import torch

from ..geometry.registration import multiresolution_demons
from ..geometry.warp import identity_grid, ras_to_voxel_displacement, warp
from ..phantom.ct import CTConfig, simulate_ct
from ..phantom.heart import PhantomHeart
from .config import AugmentConfig, SynthConfig
from .errors import SynthesisError
from .grid import as_frame, normalise_hu, resample


@dataclass
class FlowPair:
    """One CT phase pair on one grid. ``es``/``ed``: HU ``(z, y, x)``; ``flow_vox``: ``(3, z, y, x)``
    voxel pull flow with ``ed(p) ~ es(p + w(p))``; labels ``uint8`` (0 bg, 1 LV, 2 myo, 3 RV) or None."""

    subject_id: str
    es: np.ndarray
    ed: np.ndarray
    flow_vox: np.ndarray
    ijk_to_ras: np.ndarray
    labels_es: Optional[np.ndarray] = None
    labels_ed: Optional[np.ndarray] = None
    es_phase: float = 0.35

    @property
    def flow_mm(self) -> np.ndarray:
        """RAS mm flow ``(3, z, y, x)``."""
        return np.einsum("ab,b...->a...", self.ijk_to_ras[:3, :3], self.flow_vox).astype(np.float32)


def working_ct_config(config: SynthConfig, noise_hu: float = 20.0) -> CTConfig:
    """A CT simulation whose grid *is* the working grid (centred on the heart)."""
    return CTConfig(voxel_mm=config.working_voxel_mm, fov_mm=config.working_fov_mm, noise_hu=noise_hu)


def phantom_pair(heart: PhantomHeart, config: SynthConfig, seed: int = 0) -> FlowPair:
    """ES/ED CT frames of a phantom heart on the working grid and the exact ED-grid flow ED->ES
    (material at ``p`` at ED is at ``p + w(p)`` at ES, so ``ED(p) = ES(p + w(p))``)."""
    ct = simulate_ct(heart, [0.0, heart.es_phase], working_ct_config(config), seed=seed)
    flow = ct.flow(0.0, heart.es_phase)
    flow_vox = ras_to_voxel_displacement(flow.vectors, ct.image.ijk_to_ras)
    return FlowPair(heart.subject_id, ct.image.array[1], ct.image.array[0], flow_vox.astype(np.float32),
                    ct.image.ijk_to_ras, ct.labels.array[1], ct.labels.array[0], float(heart.es_phase))


def phantom_pairs(hearts: Sequence[PhantomHeart], config: SynthConfig, seed: int = 0) -> List[FlowPair]:
    return [phantom_pair(heart, config, seed) for heart in hearts]


def _sitk(volume: np.ndarray) -> sitk.Image:
    return sitk.GetImageFromArray(np.ascontiguousarray(volume, dtype=np.float32))  # spacing 1: voxel units


def annotate_flow_demons(ed: np.ndarray, es: np.ndarray, iterations: int = 60, smoothing_vox: float = 1.5,
                         levels: int = 3, hu_window: float = 1024.0) -> np.ndarray:
    """Flow ``(3, z, y, x)`` (voxels, ED grid, ``ED(p) ~ ES(p + w(p))``) between two frames of one grid
    by multi-resolution SimpleITK diffeomorphic demons (fixed ED, moving ES) on HU clipped to
    ``+-hu_window``; for data without ground-truth flows."""
    ed, _ = as_frame(ed, np.eye(4), "ED frame")
    es, _ = as_frame(es, np.eye(4), "ES frame")
    if ed.shape != es.shape:
        raise SynthesisError(f"demons annotation: ED grid {ed.shape} != ES grid {es.shape}")
    fixed = _sitk(np.clip(ed, -hu_window, hu_window) / hu_window)
    moving = _sitk(np.clip(es, -hu_window, hu_window) / hu_window)
    field = multiresolution_demons(fixed, moving, [[2 ** level] * 3 for level in reversed(range(levels))],
                                   iterations, smoothing_vox, min_size=4)
    array = sitk.GetArrayFromImage(field)  # (z, y, x, 3): physical = fine voxels, components (x, y, z)
    return np.moveaxis(array, -1, 0).astype(np.float32)


def annotated_pair(ed: np.ndarray, es: np.ndarray, ijk_to_ras: np.ndarray, subject_id: str = "subject",
                   **demons_options) -> FlowPair:
    """A :class:`FlowPair` for frames without flows, annotated by :func:`annotate_flow_demons`."""
    flow = annotate_flow_demons(ed, es, **demons_options)
    return FlowPair(subject_id, np.asarray(es, np.float32), np.asarray(ed, np.float32), flow, np.asarray(ijk_to_ras, float))


def pair_from_frames(ed: np.ndarray, es: np.ndarray, ijk_to_ras: np.ndarray, config: SynthConfig,
                     labels_ed: Optional[np.ndarray] = None, subject_id: str = "subject",
                     **demons_options) -> FlowPair:
    """User CT frames (HU, one shared grid, any spacing) -> a working-grid :class:`FlowPair`: both frames
    resampled into the working cube around the heart (label centroid, else the grid centre), the flow
    annotated by :func:`annotate_flow_demons`."""
    from .grid import heart_centre, working_grid

    ed, matrix = as_frame(ed, ijk_to_ras, f"{subject_id} ED frame")
    es, matrix_es = as_frame(es, ijk_to_ras, f"{subject_id} ES frame")
    if ed.shape != es.shape:
        raise SynthesisError(f"{subject_id}: ED grid {ed.shape} != ES grid {es.shape}")
    work_matrix, work_shape = working_grid(heart_centre(ed, matrix, labels_ed), config)
    stacked = torch.as_tensor(np.stack([ed, es]))[:, None]
    ed_w, es_w = resample(stacked, matrix, work_matrix, work_shape)[:, 0].numpy()
    return annotated_pair(ed_w, es_w, work_matrix, subject_id, **demons_options)


CINE_PERCENTILE = 99.0
CINE_HU_SCALE = 500.0
"""Cine MR frames (arbitrary units) enter the CT networks on a HU-like scale: ``CINE_HU_SCALE * v / p``
with ``p`` the frame's ``CINE_PERCENTILE`` percentile (bright bSSFP blood ~450, myocardium ~150, air 0),
so a CMR cohort without CT (ACDC, M&Ms) trains the same networks on its SAX ED/ES frames."""


def cine_to_hu(volume: np.ndarray, percentile: float = CINE_PERCENTILE, scale: float = CINE_HU_SCALE) -> np.ndarray:
    """A cine MR frame ``(z, y, x)`` on the HU-like scale of :data:`CINE_HU_SCALE` (float32)."""
    volume = np.asarray(volume, np.float32)
    reference = float(np.percentile(volume, percentile)) if volume.size else 0.0
    if not np.isfinite(reference) or reference <= 0:
        raise SynthesisError(f"cine frame: its {percentile} percentile intensity is {reference}; cannot normalise")
    return (scale * volume / reference).astype(np.float32)


def random_bspline_flow(shape: Sequence[int], amplitude_vox: float, rng: np.random.Generator,
                        mesh_size: int = 3) -> np.ndarray:
    """A random smooth cubic B-spline field ``(3, z, y, x)`` (voxels): control-point displacements
    ~ ``N(0, amplitude_vox^2)`` on a ``mesh_size``^3 mesh (SimpleITK), the classic hand-crafted flow."""
    reference = _sitk(np.zeros(tuple(shape), np.float32))
    transform = sitk.BSplineTransformInitializer(reference, [int(mesh_size)] * 3, 3)
    params = rng.normal(0.0, amplitude_vox, len(transform.GetParameters()))
    transform.SetParameters(params.tolist())
    field = sitk.TransformToDisplacementField(transform, sitk.sitkVectorFloat64, reference.GetSize(),
                                              reference.GetOrigin(), reference.GetSpacing(), reference.GetDirection())
    return np.moveaxis(sitk.GetArrayFromImage(field), -1, 0).astype(np.float32)


@dataclass
class PairTensors:
    """Stacked pairs on a device: normalised frames ``(N, 1, n, n, n)``, voxel flows ``(N, 3, ...)`` and,
    where every pair has ES labels, ``masks_es`` ``(N, 2, ...)``: the ES frame's LV blood pool (label 1)
    and LV myocardium (label 2) as 0/1 floats (for the implied-volume term of :mod:`.flow_loss`)."""

    es: torch.Tensor
    ed: torch.Tensor
    flow: torch.Tensor
    masks_es: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return int(self.es.shape[0])


def stack_pairs(pairs: Sequence[FlowPair], config: SynthConfig, device: Union[str, torch.device] = "cpu") -> PairTensors:
    """Pairs -> tensors (working grid required); flows clipped to ``flow_clip_mm``."""
    from .grid import clip_flow_vox

    if not pairs:
        raise SynthesisError("no training pairs")
    n = config.working_size
    for pair in pairs:
        for what, volume in (("ES", pair.es), ("ED", pair.ed)):
            as_frame(volume, pair.ijk_to_ras, f"{pair.subject_id} {what} frame")
        if pair.es.shape != (n, n, n) or pair.ed.shape != (n, n, n) or pair.flow_vox.shape != (3, n, n, n):
            raise SynthesisError(f"{pair.subject_id}: pair grid {pair.es.shape}/{pair.flow_vox.shape} is not the "
                                 f"working grid ({n}^3); resample it first")
        if not np.all(np.isfinite(pair.flow_vox)):
            raise SynthesisError(f"{pair.subject_id}: flow contains NaN/inf")
    es = normalise_hu(torch.as_tensor(np.stack([p.es for p in pairs]), device=device)[:, None], config)
    ed = normalise_hu(torch.as_tensor(np.stack([p.ed for p in pairs]), device=device)[:, None], config)
    flow = clip_flow_vox(torch.as_tensor(np.stack([p.flow_vox for p in pairs]), device=device), config)
    masks = None
    if all(p.labels_es is not None and np.shape(p.labels_es) == (n, n, n) for p in pairs):
        masks = lv_masks(torch.as_tensor(np.stack([np.asarray(p.labels_es) for p in pairs]), device=device)[:, None])
    return PairTensors(es.float(), ed.float(), flow.float(), masks)


def lv_masks(labels: torch.Tensor) -> torch.Tensor:
    """``(N, 2, z, y, x)`` float masks of the LV blood pool (label 1) and LV myocardium (label 2) of label
    maps ``(N, 1, z, y, x)``."""
    return torch.cat([labels == 1, labels == 2], 1).float()


def augment(es: torch.Tensor, ed: torch.Tensor, flow: torch.Tensor, options: AugmentConfig, hu_scale: float,
            generator: torch.Generator, masks: Optional[torch.Tensor] = None):
    """Random zoom + shift ``A p = c + s (p - c) + t`` applied to both frames and the flow (then
    ``w'(p) = w(A p) / s`` keeps ``ED' = ES' o (id + w')``), and independent Gaussian HU noise. ES-frame
    ``masks`` (optional, ``(N, C, ...)``) move with the ES frame (trilinear, no noise) and are returned
    as a fourth element; the random draws are the same with or without them."""
    if not options.enabled:
        return (es, ed, flow) if masks is None else (es, ed, flow, masks)
    n, device, dtype = es.shape[0], es.device, es.dtype
    u = lambda *shape: torch.rand(shape, generator=generator, device=generator.device).to(device, dtype)  # noqa: E731
    scale = 1.0 + options.zoom * (2 * u(n) - 1)
    shift = options.shift_vox * (2 * u(n, 3) - 1)
    shape = es.shape[2:]
    centre = torch.tensor([(s - 1) / 2 for s in shape[::-1]], device=device, dtype=dtype).view(1, 3, 1, 1, 1)
    points = identity_grid(shape, device, dtype)
    mapped = centre + scale.view(n, 1, 1, 1, 1) * (points - centre) + shift.view(n, 3, 1, 1, 1)
    sizes = torch.tensor(shape[::-1], device=device, dtype=dtype).view(1, 3, 1, 1, 1)
    grid = (mapped * 2.0 / (sizes - 1) - 1.0).permute(0, 2, 3, 4, 1)
    sample = lambda x: torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border",  # noqa: E731
                                                       align_corners=True)
    es, ed = sample(es), sample(ed)
    flow = sample(flow) / scale.view(n, 1, 1, 1, 1)
    noise = options.noise_hu / hu_scale
    es = es + noise * torch.randn(es.shape, generator=generator, device=generator.device).to(device, dtype)
    ed = ed + noise * torch.randn(ed.shape, generator=generator, device=generator.device).to(device, dtype)
    if masks is None:
        return es, ed, flow
    return es, ed, flow, torch.nn.functional.grid_sample(masks.to(dtype), grid, mode="bilinear", padding_mode="zeros",
                                                         align_corners=True)


def generated_pair_tensors(es_tensor: torch.Tensor, flows_vox: torch.Tensor, config: SynthConfig, noise_hu: float,
                           seed: int) -> PairTensors:
    """Pairs (normalised ES, ES pulled by the flow + independent noise, flow) from normalised ES frames
    and voxel flows. The noise (``noise_hu``, the scanner's level) keeps the generated frame from sharing
    the ES frame's noise pattern exactly, which an estimator would otherwise learn to match."""
    generator = torch.Generator().manual_seed(seed)
    ed = warp(es_tensor, flows_vox)
    ed = ed + (noise_hu / config.hu_scale) * torch.randn(ed.shape, generator=generator).to(ed.device)
    return PairTensors(es_tensor, ed, flows_vox)


def concat_pairs(*parts: PairTensors, masks_optional: bool = False) -> PairTensors:
    """One :class:`PairTensors` of several, in order. ES masks are kept only when every part has them;
    when some parts have them and others not they are dropped (the CVAE's implied-volume term then
    turns off) with a warning naming the parts without them, unless ``masks_optional`` (e.g. pairs for
    the flow estimator, which never reads masks)."""
    has = [p.masks_es is not None for p in parts]
    masks = torch.cat([p.masks_es for p in parts]) if all(has) else None
    if any(has) and not all(has) and not masks_optional:
        missing = [index for index, flag in enumerate(has) if not flag]
        warnings.warn(f"concat_pairs: parts {missing} of {len(parts)} have no ES labels (masks_es); the ES masks of "
                      f"the others are dropped and the implied-volume term (index_weight) is off for these pairs",
                      UserWarning, stacklevel=2)
    return PairTensors(torch.cat([p.es for p in parts]), torch.cat([p.ed for p in parts]), torch.cat([p.flow for p in parts]),
                       masks)


def acquired_pair(heart, index: int, protocol, config: SynthConfig, seed: int = 0) -> FlowPair:
    """:func:`phantom_pair` with the subject's acquisition (``protocol``: a
    :class:`~CardiacMotionAtlasLib.benchmarks.common.FamilyProtocol`): the heart posed and the CT
    contrast, noise and PSF drawn per subject when the protocol's acquisition is randomised; the grid is
    the working grid either way. Flow ``ED(p) = ES(p + w(p))`` in working-grid voxels."""
    base = working_ct_config(config)
    _, drawn, _ = protocol.acquire(heart, index, None, base)
    ct_config = base if drawn is None or drawn is base else replace(
        base, blood_hu=drawn.blood_hu, rv_enhancement=drawn.rv_enhancement, noise_hu=drawn.noise_hu,
        psf_fwhm_mm=drawn.psf_fwhm_mm)
    ct = simulate_ct(heart, [0.0, heart.es_phase], ct_config, seed=seed)
    flow = ras_to_voxel_displacement(ct.flow(0.0, heart.es_phase).vectors, ct.image.ijk_to_ras)
    return FlowPair(heart.subject_id, ct.image.array[1], ct.image.array[0], flow.astype(np.float32),
                    ct.image.ijk_to_ras, ct.labels.array[1], ct.labels.array[0], float(heart.es_phase))


__all__ = ["acquired_pair", "concat_pairs", "generated_pair_tensors", "CINE_HU_SCALE", "CINE_PERCENTILE", "FlowPair", "PairTensors", "annotate_flow_demons", "annotated_pair", "lv_masks",
           "augment", "cine_to_hu", "phantom_pair",
           "pair_from_frames", "phantom_pairs", "random_bspline_flow", "stack_pairs", "working_ct_config"]
