"""Contrast-enhanced cardiac CT simulator: 3D volumes (HU) of a phantom heart (any family) at chosen
phases, their label maps, and exact flow fields between any two phases on the same grid.

The grid is centred on the heart: axial (RAS-aligned) by default, or rotated (gantry tilt / oblique
reformat, ``CTConfig.direction``), with in-plane and slice spacing that may differ. Tissue HU values are
assigned at voxel centres (blood from the subject or from the config's contrast timing), blurred by a
Gaussian scanner point-spread function and corrupted by Gaussian noise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter

from ..data.displacement_field import DisplacementField
from ..data.image_sequence import ImageSequence
from ..geometry.affine import apply_affine
from .heart_base import AnalyticHeart
from .tissues import LABEL_OF_TISSUE, Tissue, ct_lookup

UNENHANCED_BLOOD_HU = 40.0
"""Blood without contrast (HU): the zero of ``CTConfig.rv_enhancement``."""


@dataclass
class CTConfig:
    """Reconstruction settings: in-plane voxel size (mm, i and j), field of view (mm), PSF FWHM (mm,
    isotropic), noise std (HU).

    ``slice_mm``/``fov_z_mm`` give the spacing and extent along k (``None``: as in-plane, i.e. an
    isotropic cube). ``direction`` holds 9 values, a row-major 3x3 rotation whose columns are the i, j, k
    axes in RAS (empty: axial). ``blood_hu`` overrides the subject's blood HU (LV, atrium, aorta);
    ``rv_enhancement`` sets the RV blood enhancement above :data:`UNENHANCED_BLOOD_HU` as a fraction of
    the LV's (early arterial phase < 1); ``None`` keeps RV = LV - 40 HU. Defaults reproduce the axial
    isotropic grid and the subject's contrast."""

    voxel_mm: float = 1.5
    fov_mm: float = 180.0
    psf_fwhm_mm: float = 1.2
    noise_hu: float = 20.0
    slice_mm: Optional[float] = None
    fov_z_mm: Optional[float] = None
    direction: Tuple[float, ...] = ()
    blood_hu: Optional[float] = None
    rv_enhancement: Optional[float] = None

    @classmethod
    def tiny(cls) -> "CTConfig":
        return cls(voxel_mm=4.0, fov_mm=160.0)

    def to_dict(self) -> Dict:
        return asdict(self)

    @property
    def spacing_ijk(self) -> Tuple[float, float, float]:
        """Voxel spacing (mm) along i, j, k."""
        return (self.voxel_mm, self.voxel_mm, self.slice_mm or self.voxel_mm)

    @property
    def shape_zyx(self) -> Tuple[int, int, int]:
        """Grid shape ``(k, j, i)``."""
        n = int(round(self.fov_mm / self.voxel_mm))
        nz = int(round((self.fov_z_mm or self.fov_mm) / (self.slice_mm or self.voxel_mm)))
        return nz, n, n

    def hu_table(self, subject_blood_hu: float) -> np.ndarray:
        """HU of every :class:`~.tissues.Tissue` for a subject whose own blood HU is ``subject_blood_hu``."""
        blood = subject_blood_hu if self.blood_hu is None else self.blood_hu
        table = ct_lookup(blood)
        if self.rv_enhancement is not None:
            table[Tissue.RV_BLOOD] = UNENHANCED_BLOOD_HU + self.rv_enhancement * (blood - UNENHANCED_BLOOD_HU)
        return table


@dataclass
class SimulatedCT:
    """CT phases of one subject: HU volumes and labels ``(t, z, y, x)`` on one grid."""

    heart: AnalyticHeart
    image: ImageSequence
    labels: ImageSequence

    def flow(self, source_phase: float, target_phase: float, heart_only: bool = True) -> DisplacementField:
        """Exact displacement field (RAS mm) on the CT grid from ``source_phase`` to ``target_phase``."""
        return self.heart.displacement_field(self.image.ijk_to_ras, self.image.shape_zyx, source_phase,
                                             target_phase, heart_only=heart_only)


def ct_grid(heart: AnalyticHeart, config: CTConfig) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    """IJK->RAS and (z, y, x) shape of the reconstruction grid centred on the heart (``heart.centre_ras``):
    ``fov_mm`` in-plane, ``fov_z_mm`` along k, axes ``direction`` (axial by default)."""
    shape = config.shape_zyx
    spacing = np.asarray(config.spacing_ijk, float)
    half = (np.asarray(shape[::-1], float) - 1) / 2.0 * spacing
    if not len(config.direction) and config.slice_mm is None and config.fov_z_mm is None:
        matrix = np.diag([config.voxel_mm] * 3 + [1.0])
        matrix[:3, 3] = heart.centre_ras - half[0]
        return matrix, shape
    direction = np.eye(3) if not len(config.direction) else np.asarray(config.direction, float).reshape(3, 3)
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-6) or np.linalg.det(direction) <= 0:
        raise ValueError("CTConfig.direction must be a rotation (9 values, row-major, columns = i, j, k in RAS)")
    matrix = np.eye(4)
    matrix[:3, :3] = direction * spacing[None, :]
    matrix[:3, 3] = heart.centre_ras - direction @ half
    return matrix, shape


def simulate_ct(heart: AnalyticHeart, phases: Sequence[float], config: Optional[CTConfig] = None,
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
    lookup = config.hu_table(heart.params.blood_hu)
    spacing_zyx = np.asarray(config.spacing_ijk[::-1], float)
    sigma_vox = config.psf_fwhm_mm / 2.3548 / (spacing_zyx if np.ptp(spacing_zyx) else config.voxel_mm)
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


__all__ = ["CTConfig", "SimulatedCT", "UNENHANCED_BLOOD_HU", "ct_grid", "simulate_ct"]
