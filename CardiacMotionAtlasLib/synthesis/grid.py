"""Frames, grids and the pull-flow convention of the synthesis.

**Flow convention.** A synthesis flow ``w`` lives on the grid of the *generated* (ED) frame: the
generated frame is the conditioning (ES) frame pulled by ``w``, ``ED(p) = ES(p + w(p))``
(:func:`~CardiacMotionAtlasLib.geometry.warp.warp`), exactly, voxel for voxel. Physically ``w(p)``
carries the material at ``p`` at ED to its ES position, i.e. it is the ES->ED motion expressed as the
backward (resampling) field of the ED grid; as a :class:`DisplacementField` it has
``source_phase = 0`` (ED) and ``target_phase = ES``. This is also the ITK/Slicer resampling
convention: a file written by :func:`~CardiacMotionAtlasLib.io.displacement_io.write_displacement_field`
loads in Slicer as a grid transform that, applied to the ES frame, reproduces the generated frame.

Inside the networks flows are voxel displacements ``(di, dj, dk)`` of the *working grid*: an
axis-aligned RAS cube of ``working_size`` voxels of ``working_voxel_mm`` centred on the heart.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..data.displacement_field import DisplacementField
from ..data.image_sequence import ImageSequence
from ..geometry.affine import check_ijk_to_ras
from ..geometry.warp import identity_grid, ras_to_voxel_displacement, voxel_to_ras_displacement, warp
from ..errors import GeometryError
from .config import SynthConfig
from .errors import SynthesisError

FrameLike = Union[ImageSequence, np.ndarray]


def as_frame(frame: FrameLike, ijk_to_ras: Optional[np.ndarray] = None, what: str = "frame") -> Tuple[np.ndarray, np.ndarray]:
    """``(volume (z, y, x) float32, IJK->RAS)`` from a one-frame :class:`ImageSequence` or an array plus
    its matrix; raises :class:`SynthesisError` for anything but one finite 3D volume."""
    name = what
    if isinstance(frame, ImageSequence):
        name = f"{what} {frame.name or ''}".strip()
        if frame.n_frames != 1:
            raise SynthesisError(f"{name}: expected one 3D frame, got a sequence of {frame.n_frames} frames")
        volume, ijk_to_ras = frame.array[0], frame.ijk_to_ras
    else:
        volume = np.asarray(frame)
        if ijk_to_ras is None:
            raise SynthesisError(f"{name}: an array frame needs its IJK->RAS matrix")
    if volume.ndim != 3:
        raise SynthesisError(f"{name}: expected a 3D (z, y, x) volume, got shape {tuple(volume.shape)}")
    if min(volume.shape) < 2:
        raise SynthesisError(f"{name}: degenerate grid {tuple(volume.shape)}")
    if not np.issubdtype(volume.dtype, np.number) or np.iscomplexobj(volume):
        raise SynthesisError(f"{name}: voxels must be real numbers, got {volume.dtype}")
    if not np.all(np.isfinite(volume)):
        raise SynthesisError(f"{name}: contains {int((~np.isfinite(volume)).sum())} NaN/inf voxels")
    try:
        ijk_to_ras = check_ijk_to_ras(ijk_to_ras)
    except GeometryError as error:
        raise SynthesisError(f"{name}: invalid geometry ({error})") from None
    return volume.astype(np.float32, copy=False), ijk_to_ras


def check_flow_matches(flow: DisplacementField, volume: np.ndarray, ijk_to_ras: np.ndarray,
                       what: str = "flow") -> None:
    """Raise :class:`SynthesisError` unless ``flow`` is finite and on exactly the frame's grid (shape,
    spacing, direction, origin)."""
    if not np.all(np.isfinite(flow.vectors)):
        raise SynthesisError(f"{what} {flow.name!r}: contains NaN/inf displacements")
    if flow.shape_zyx != tuple(volume.shape):
        raise SynthesisError(f"{what} {flow.name!r}: grid {flow.shape_zyx} != frame grid {tuple(volume.shape)}")
    if not np.allclose(flow.ijk_to_ras, ijk_to_ras, atol=1e-4):
        spacing_f = np.linalg.norm(flow.ijk_to_ras[:3, :3], axis=0)
        spacing_i = np.linalg.norm(ijk_to_ras[:3, :3], axis=0)
        raise SynthesisError(f"{what} {flow.name!r}: geometry differs from the frame's (spacing "
                             f"{np.round(spacing_f, 4).tolist()} vs {np.round(spacing_i, 4).tolist()} mm, origin "
                             f"{np.round(flow.ijk_to_ras[:3, 3], 3).tolist()} vs "
                             f"{np.round(ijk_to_ras[:3, 3], 3).tolist()}); resample one onto the other")


def working_grid(centre_ras: Sequence[float], config: SynthConfig) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    """Axis-aligned RAS IJK->RAS and ``(n, n, n)`` shape of the working cube centred at ``centre_ras``
    (mm); identical to :func:`~CardiacMotionAtlasLib.phantom.ct.ct_grid` for ``voxel_mm =
    working_voxel_mm, fov_mm = working_fov_mm``."""
    n, h = int(config.working_size), float(config.working_voxel_mm)
    matrix = np.diag([h, h, h, 1.0])
    matrix[:3, 3] = np.asarray(centre_ras, float) - (n - 1) / 2.0 * h
    return matrix, (n, n, n)


BLOOD_POOL_HU = 180.0
"""Contrast-enhanced blood (250-550 HU in the phantom's randomised protocols; cine frames on the HU-like
scale ~450) lies above it, myocardium (~100-150 HU) and fat/air below."""


def blood_pool_centre(volume: np.ndarray, threshold_hu: float = BLOOD_POOL_HU, sigma_vox: float = 1.0) -> Optional[np.ndarray]:
    """Voxel ``(i, j, k)`` centroid of the largest connected region above ``threshold_hu`` (HU) of the
    Gaussian-smoothed frame: the contrast-filled heart chambers; None when nothing is above it."""
    from scipy import ndimage

    mask = ndimage.gaussian_filter(np.asarray(volume, np.float32), sigma_vox) > threshold_hu
    regions, count = ndimage.label(mask)
    if count == 0:
        return None
    sizes = np.bincount(regions.ravel())[1:]
    k, j, i = np.nonzero(regions == 1 + int(np.argmax(sizes)))
    return np.array([i.mean(), j.mean(), k.mean()])


def heart_centre(volume_or_labels: np.ndarray, ijk_to_ras: np.ndarray, labels: Optional[np.ndarray] = None) -> np.ndarray:
    """RAS mm centre for the working crop: centroid of the heart labels (1..3) when given and not
    empty, else of the frame's contrast-filled blood pool (:func:`blood_pool_centre`), else the centre
    of the frame's grid."""
    if labels is not None and np.any(labels > 0):
        k, j, i = np.nonzero(labels > 0)
        ijk = np.array([i.mean(), j.mean(), k.mean(), 1.0])
    else:
        found = blood_pool_centre(volume_or_labels)
        nz, ny, nx = volume_or_labels.shape
        ijk = np.array([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2, 1.0]) if found is None else np.append(found, 1.0)
    return (np.asarray(ijk_to_ras) @ ijk)[:3]


def resample(volume: torch.Tensor, source_ijk_to_ras: np.ndarray, target_ijk_to_ras: np.ndarray,
             target_shape: Sequence[int], mode: str = "bilinear", padding_mode: str = "border") -> torch.Tensor:
    """Resample ``(N, C, z, y, x)`` from its grid onto another (trilinear or nearest), same device."""
    to_source = np.linalg.inv(source_ijk_to_ras) @ np.asarray(target_ijk_to_ras, float)
    points = identity_grid(target_shape, volume.device, volume.dtype)  # (1, 3, z, y, x) target ijk
    m = torch.as_tensor(to_source, dtype=volume.dtype, device=volume.device)
    src = torch.einsum("ab,nbzyx->nazyx", m[:3, :3], points) + m[:3, 3].view(1, 3, 1, 1, 1)
    sizes = torch.tensor(volume.shape[2:][::-1], dtype=volume.dtype, device=volume.device)  # x, y, z
    grid = (src * (2.0 / torch.clamp(sizes - 1, min=1)).view(1, 3, 1, 1, 1) - 1.0).permute(0, 2, 3, 4, 1)
    grid = grid.expand(volume.shape[0], *grid.shape[1:])
    return F.grid_sample(volume, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def normalise_hu(volume: torch.Tensor, config: SynthConfig) -> torch.Tensor:
    """HU -> network input ``clip(HU, +-hu_clip) / hu_scale`` (unitless)."""
    return torch.clamp(volume, -config.hu_clip, config.hu_clip) / config.hu_scale


def clip_flow_vox(flow_vox: torch.Tensor, config: SynthConfig) -> torch.Tensor:
    """Clip working-grid voxel flows ``(N, 3, ...)`` to ``+-flow_clip_mm`` per component (working
    grid is isotropic and axis-aligned, so mm = voxels x working_voxel_mm)."""
    bound = config.flow_clip_mm / config.working_voxel_mm
    return torch.clamp(flow_vox, -bound, bound)


def working_flow_to_frame(flow_vox: torch.Tensor, working_ijk_to_ras: np.ndarray, frame_ijk_to_ras: np.ndarray,
                          frame_shape: Sequence[int]) -> torch.Tensor:
    """Working-grid voxel flow ``(N, 3, n, n, n)`` -> RAS mm flow ``(N, 3, z, y, x)`` on the frame's
    grid (trilinear; zero outside the working cube, where the heart's motion is not modelled)."""
    ras = voxel_to_ras_displacement(flow_vox, working_ijk_to_ras)
    return resample(ras, working_ijk_to_ras, frame_ijk_to_ras, frame_shape, padding_mode="zeros")


def pull_frame(volume: np.ndarray, ijk_to_ras: np.ndarray, flow: DisplacementField,
               device: Union[str, torch.device] = "cpu", labels: bool = False) -> np.ndarray:
    """The generated frame ``out(p) = volume(p + w(p))`` on the frame's grid (trilinear; labels: warped
    one-hot and arg-maxed), with ``flow`` checked against the frame (NaNs, grid, geometry)."""
    volume, ijk_to_ras = as_frame(volume, ijk_to_ras, "labels" if labels else "frame")
    check_flow_matches(flow, volume, ijk_to_ras)
    u = torch.as_tensor(ras_to_voxel_displacement(flow.vectors, ijk_to_ras), device=device)[None]
    if labels:
        return warp_labels(torch.as_tensor(volume, device=device)[None, None], u)[0, 0].cpu().numpy().astype(np.uint8)
    image = torch.as_tensor(volume, device=device)[None, None]
    return warp(image, u)[0, 0].cpu().numpy()


def warp_labels(labels: torch.Tensor, flow_vox: torch.Tensor, n_classes: int = 4) -> torch.Tensor:
    """Pull label maps ``(N, 1, z, y, x)`` (integers) by voxel flows: one-hot, trilinear, arg-max."""
    one_hot = F.one_hot(labels[:, 0].long().clamp(0, n_classes - 1), n_classes).permute(0, 4, 1, 2, 3).to(flow_vox.dtype)
    return warp(one_hot, flow_vox).argmax(1, keepdim=True)


__all__ = ["BLOOD_POOL_HU", "as_frame", "blood_pool_centre", "check_flow_matches", "clip_flow_vox", "heart_centre", "normalise_hu", "pull_frame",
           "resample", "warp_labels", "working_flow_to_frame", "working_grid"]
