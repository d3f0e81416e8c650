"""Cine CMR simulator: a SAX stack and 2/3/4-chamber LAX slices of a :class:`PhantomHeart`.

Each slice is a 2D+t image with DICOM-like geometry (origin, direction, spacing; slice thickness as the
through-plane spacing). The header holds the *nominal* (planned) geometry; the anatomy is sampled on
the *true* plane, displaced by a per-slice rigid breath-hold misalignment (ground truth returned).
Signal: bSSFP-like tissue contrast integrated over the slice thickness (rectangular slice profile,
``profile_samples`` points), times a per-slice intensity scale, with Rician noise, stored as int16
(``stored_units_per_signal`` per unit of signal, blood ~850) like DICOM pixel data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..data.cine_study import CineSlice, CineStudy
from ..data.image_sequence import ImageSequence
from ..geometry.affine import apply_affine, make_ijk_to_ras, rigid_matrix, rotation_matrix
from .heart import PhantomHeart
from .tissues import LABEL_OF_TISSUE, MR_SIGNAL


@dataclass
class CMRConfig:
    """Acquisition settings (mm, degrees). Defaults are a realistic UK Biobank-like protocol."""

    n_frames: int = 50
    pixel_mm: float = 1.8
    matrix: int = 144
    slice_thickness_mm: float = 8.0
    slice_spacing_mm: float = 10.0
    min_sax: int = 8
    max_sax: int = 13
    lax_views: Tuple[str, ...] = ("2CH", "3CH", "4CH")
    profile_samples: int = 5
    misalignment_mm: float = 2.0  # std of each translation component, clipped at 2.5 std
    misalignment_deg: float = 1.5  # std of the rotation angle, clipped at 2.5 std
    intensity_scale_range: Tuple[float, float] = (0.8, 1.2)
    noise_sigma: float = 0.03  # Rician noise std (blood signal ~0.85)
    stored_units_per_signal: float = 1000.0  # images are stored as int16 like DICOM (blood ~850)

    @classmethod
    def tiny(cls) -> "CMRConfig":
        """Small and fast, for tests: 8 frames, 3.5 mm pixels, 48x48."""
        return cls(n_frames=8, pixel_mm=3.5, matrix=48, profile_samples=3)

    def to_dict(self) -> Dict:
        return asdict(self)


@dataclass
class SliceTruth:
    """Ground truth of one simulated slice."""

    name: str
    view: str
    nominal_ijk_to_ras: np.ndarray
    misalignment: np.ndarray  # 4x4 RAS rigid transform: true plane = misalignment @ nominal
    intensity_scale: float  # observed = scale * canonical signal
    noise_sigma: float

    @property
    def true_ijk_to_ras(self) -> np.ndarray:
        return self.misalignment @ self.nominal_ijk_to_ras

    def to_dict(self) -> Dict:
        return {
            "name": self.name, "view": self.view,
            "nominal_ijk_to_ras": self.nominal_ijk_to_ras.tolist(),
            "misalignment": self.misalignment.tolist(),
            "intensity_scale": self.intensity_scale, "noise_sigma": self.noise_sigma,
        }


@dataclass
class SimulatedCine:
    """A simulated study and its ground truth."""

    study: CineStudy
    truth: List[SliceTruth] = field(default_factory=list)


def _plane_axes(heart: PhantomHeart, view: str) -> Tuple[np.ndarray, np.ndarray]:
    """In-plane unit axes (i, j) in RAS of a view; the normal is i x j."""
    frame = heart.local_to_ras[:3, :3]
    ex, ey, ez = frame[:, 0], frame[:, 1], frame[:, 2]
    if view == "SAX":
        return ex, ey
    angle = {"4CH": 0.0, "3CH": np.deg2rad(120.0), "2CH": np.deg2rad(90.0)}[view]
    in_plane = np.cos(angle) * ex + np.sin(angle) * ey
    return in_plane, ez


def slice_geometry(centre_ras: np.ndarray, axis_i: np.ndarray, axis_j: np.ndarray, config: CMRConfig) -> np.ndarray:
    """Nominal IJK->RAS of a slice centred at ``centre_ras``."""
    direction = np.stack([axis_i, axis_j, np.cross(axis_i, axis_j)], axis=1)
    half = (config.matrix - 1) / 2.0 * config.pixel_mm
    origin = centre_ras - half * axis_i - half * axis_j
    return make_ijk_to_ras(origin, direction, (config.pixel_mm, config.pixel_mm, config.slice_thickness_mm))


def planned_slices(heart: PhantomHeart, config: CMRConfig) -> List[Tuple[str, str, np.ndarray]]:
    """(name, view, nominal IJK->RAS) of the SAX stack (base -> apex) and the LAX views."""
    base, apex = heart.lv_extent_local()
    top = base - 5.0
    bottom = apex + 2.0
    n_sax = int(np.clip(np.ceil((bottom - top) / config.slice_spacing_mm) + 1, config.min_sax, config.max_sax))
    first = 0.5 * (top + bottom) - 0.5 * (n_sax - 1) * config.slice_spacing_mm
    slices = []
    ax_i, ax_j = _plane_axes(heart, "SAX")
    for k in range(n_sax):
        centre = heart.to_ras(np.array([0.0, 0.0, first + k * config.slice_spacing_mm]))
        slices.append((f"sax_{k:02d}", "SAX", slice_geometry(centre, ax_i, ax_j, config)))
    centre = heart.to_ras(np.array([0.0, 0.0, 0.5 * (base + apex)]))
    for view in config.lax_views:
        ax_i, ax_j = _plane_axes(heart, view)
        slices.append((f"la_{view.lower()}", view, slice_geometry(centre, ax_i, ax_j, config)))
    return slices


def random_misalignment(rng: np.random.Generator, centre_ras: np.ndarray, config: CMRConfig) -> np.ndarray:
    """A rigid RAS transform: rotation about the slice centre plus translation (clipped Gaussians)."""
    axis = rng.normal(size=3)
    angle = np.deg2rad(np.clip(rng.normal(0.0, config.misalignment_deg), -2.5 * config.misalignment_deg,
                               2.5 * config.misalignment_deg))
    translation = np.clip(rng.normal(0.0, config.misalignment_mm, size=3), -2.5 * config.misalignment_mm,
                          2.5 * config.misalignment_mm)
    rotation = rotation_matrix(axis, angle)
    return rigid_matrix(rotation, centre_ras - rotation @ centre_ras + translation)


def _profile_offsets(config: CMRConfig) -> np.ndarray:
    """Through-plane sample offsets in voxel k units (midpoint rule over the slice thickness)."""
    n = config.profile_samples
    return (np.arange(n) + 0.5) / n - 0.5


def simulate_cine(heart: PhantomHeart, config: Optional[CMRConfig] = None, seed: int = 0,
                  progress=None) -> SimulatedCine:
    """Simulate all slices over ``config.n_frames`` equally spaced phases (ED first)."""
    config = config or CMRConfig()
    rng = np.random.default_rng([heart.params.seed, seed, 7])
    planned = planned_slices(heart, config)
    n = config.matrix
    jj, ii = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    offsets = _profile_offsets(config)
    truths: List[SliceTruth] = []
    points = []
    for name, view, nominal in planned:
        centre = apply_affine(nominal, [(n - 1) / 2.0, (n - 1) / 2.0, 0.0])
        misalignment = random_misalignment(rng, centre, config)
        scale = float(rng.uniform(*config.intensity_scale_range))
        truths.append(SliceTruth(name, view, nominal, misalignment, scale, config.noise_sigma))
        ijk = np.stack([np.broadcast_to(ii, (len(offsets), n, n)), np.broadcast_to(jj, (len(offsets), n, n)),
                        np.broadcast_to(offsets[:, None, None], (len(offsets), n, n))], axis=-1).astype(float)
        points.append(apply_affine(misalignment @ nominal, ijk))
    points = np.stack(points)  # (slices, profile, y, x, 3)
    flat = points.reshape(-1, 3)
    phases = np.arange(config.n_frames) / config.n_frames
    background = heart.tissue_background(flat)
    near = heart.near_heart_ras(flat)
    near_points = flat[near]
    signal = np.empty((config.n_frames, len(planned), n, n), np.float32)
    labels = np.empty((config.n_frames, len(planned), n, n), np.uint8)
    centre_index = len(offsets) // 2
    tissue = background.copy()
    for f, phase in enumerate(phases):
        tissue[near] = heart.tissue_near(near_points, phase, background[near])
        per_point = MR_SIGNAL[tissue].reshape(len(planned), len(offsets), n, n)
        signal[f] = per_point.mean(axis=1)
        labels[f] = LABEL_OF_TISSUE[tissue.reshape(len(planned), len(offsets), n, n)[:, centre_index]]
        if progress is not None:
            progress((f + 1) / config.n_frames, f"CMR frame {f + 1}/{config.n_frames}")
    es_frame = int(round(heart.es_phase * config.n_frames)) % config.n_frames
    slices = []
    sax_index = 0
    for s, (truth, (name, view, nominal)) in enumerate(zip(truths, planned)):
        clean = truth.intensity_scale * signal[:, s]
        noisy = np.sqrt((clean + rng.normal(0, config.noise_sigma, clean.shape)) ** 2
                        + rng.normal(0, config.noise_sigma, clean.shape) ** 2)
        noisy = np.round(noisy * config.stored_units_per_signal).astype(np.int16)
        trigger = phases * heart.cycle_length_s
        image = ImageSequence(noisy[:, None], nominal, phases, heart.cycle_length_s, trigger, name=name)
        label_seq = ImageSequence(labels[:, s][:, None], nominal, phases, heart.cycle_length_s, trigger,
                                  name=f"{name}_labels")
        labelled = list(range(config.n_frames)) if view == "SAX" else sorted({0, es_frame})
        slices.append(CineSlice(image, view, label_seq, labelled, slice_index=sax_index if view == "SAX" else 0))
        sax_index += view == "SAX"
    study = CineStudy(heart.subject_id, slices, ed_frame=0, es_frame=es_frame,
                      cycle_length_s=heart.cycle_length_s,
                      metadata={"source": "CardiacMotionAtlas phantom", "config": config.to_dict()})
    return SimulatedCine(study, truths)


__all__ = ["CMRConfig", "SliceTruth", "SimulatedCine", "planned_slices", "random_misalignment",
           "simulate_cine", "slice_geometry"]
