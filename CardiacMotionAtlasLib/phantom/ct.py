"""Contrast-enhanced cardiac CT simulator: 3D volumes (HU) of a :class:`PhantomHeart` at chosen
phases, their label maps, and exact flow fields between any two phases on the same grid.

The grid is axial (RAS-aligned), centred on the heart. Tissue HU values are assigned at voxel centres,
blurred by a Gaussian scanner point-spread function and corrupted by Gaussian noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter

from ..data.displacement_field import DisplacementField
from ..data.image_sequence import ImageSequence
from ..geometry.affine import apply_affine
from .heart import PhantomHeart
from .tissues import LABEL_OF_TISSUE, ct_lookup


@dataclass
class CTConfig:
    """Reconstruction settings: isotropic voxel size (mm), cubic field of view (mm), PSF FWHM (mm),
    noise std (HU)."""

    voxel_mm: float = 1.5
    fov_mm: float = 180.0
    psf_fwhm_mm: float = 1.2
    noise_hu: float = 20.0

    @classmethod
    def tiny(cls) -> "CTConfig":
        return cls(voxel_mm=4.0, fov_mm=160.0)

    def to_dict(self) -> Dict:
        return asdict(self)


@dataclass
class SimulatedCT:
    """CT phases of one subject: HU volumes and labels ``(t, z, y, x)`` on one grid."""

    heart: PhantomHeart
    image: ImageSequence
    labels: ImageSequence

    def flow(self, source_phase: float, target_phase: float, heart_only: bool = True) -> DisplacementField:
        """Exact displacement field (RAS mm) on the CT grid from ``source_phase`` to ``target_phase``."""
        return self.heart.displacement_field(self.image.ijk_to_ras, self.image.shape_zyx, source_phase,
                                             target_phase, heart_only=heart_only)


def ct_grid(heart: PhantomHeart, config: CTConfig) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    """Axial IJK->RAS and (z, y, x) shape of a cube of side ``fov_mm`` centred on the heart."""
    n = int(round(config.fov_mm / config.voxel_mm))
    matrix = np.diag([config.voxel_mm] * 3 + [1.0])
    matrix[:3, 3] = heart.centre_ras - (n - 1) / 2.0 * config.voxel_mm
    return matrix, (n, n, n)


def simulate_ct(heart: PhantomHeart, phases: Sequence[float], config: Optional[CTConfig] = None,
                seed: int = 0) -> SimulatedCT:
    """CT volumes (HU, float32) and label maps (uint8) at ``phases``."""
    config = config or CTConfig()
    rng = np.random.default_rng([heart.params.seed, seed, 11])
    matrix, shape = ct_grid(heart, config)
    nz, ny, nx = shape
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    points = apply_affine(matrix, np.stack([i, j, k], -1).reshape(-1, 3).astype(float))
    background = heart.tissue_background(points)
    near = heart.near_heart_ras(points)
    lookup = ct_lookup(heart.params.blood_hu)
    sigma_vox = config.psf_fwhm_mm / 2.3548 / config.voxel_mm
    volumes, label_maps = [], []
    tissue = background.copy()
    for phase in phases:
        tissue[near] = heart.tissue_near(points[near], phase, background[near])
        hu = gaussian_filter(lookup[tissue].reshape(shape), sigma_vox)
        hu += rng.normal(0.0, config.noise_hu, shape).astype(np.float32)
        volumes.append(hu.astype(np.float32))
        label_maps.append(LABEL_OF_TISSUE[tissue].reshape(shape))
    phases = np.asarray(phases, float)
    image = ImageSequence(np.stack(volumes), matrix, phases, heart.cycle_length_s, name=f"{heart.subject_id}_ct")
    labels = ImageSequence(np.stack(label_maps), matrix, phases, heart.cycle_length_s,
                           name=f"{heart.subject_id}_ct_labels")
    return SimulatedCT(heart, image, labels)


__all__ = ["CTConfig", "SimulatedCT", "ct_grid", "simulate_ct"]
