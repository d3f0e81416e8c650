"""Cine CMR simulator: a SAX stack and 2/3/4-chamber LAX slices of a phantom heart of any family
(:class:`~.heart_base.AnalyticHeart`).

Each slice is a 2D+t image with DICOM-like geometry (origin, direction, spacing; slice thickness as the
through-plane spacing). The header holds the *nominal* (planned) geometry; the anatomy is sampled on
the *true* plane, displaced by a per-slice rigid breath-hold misalignment (ground truth returned).
Signal: bSSFP-like tissue contrast (optionally scaled per tissue, ``signal_multipliers``) integrated
over the slice thickness (rectangular slice profile, ``profile_samples`` points), times a smooth coil
bias field (:func:`bias_field`, fixed in scanner RAS, evaluated at the nominal pixel centres), times a
per-slice intensity scale, with Rician noise, stored as int16 (``stored_units_per_signal`` per unit of
signal, blood ~850) like DICOM pixel data.

The stack is prescribed as a radiographer would: the *planned* LV frame (:func:`planned_frame`) is the
true LV frame tilted by a prescription error and shifted by a stack offset; the SAX planes are normal to
its long axis and the LAX planes contain it. With the default (neutral) fields the planned frame is the
true one and the images are exactly those of earlier versions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..data.cine_study import CineSlice, CineStudy
from ..data.image_sequence import ImageSequence
from ..geometry.affine import apply_affine, make_ijk_to_ras, rigid_matrix, rotation_matrix
from .heart_base import AnalyticHeart
from .tissues import LABEL_OF_TISSUE, MR_SIGNAL, N_TISSUES

BIAS_TERMS = ("x", "y", "z", "xx", "yy", "zz", "xy", "xz", "yz")
"""Monomials of the coil bias polynomial, in the order of ``CMRConfig.bias_coefficients``."""


@dataclass
class CMRConfig:
    """Acquisition settings (mm, degrees). Defaults are a realistic UK Biobank-like protocol.

    ``matrix`` is the number of columns (image i / x axis); ``matrix_rows`` the number of rows (j / y),
    ``None`` = square. The prescription fields (``prescription_*``, ``sax_inplane_rotation_deg``) place
    the planned LV frame relative to the true one (:func:`planned_frame`). ``signal_multipliers`` scale
    the bSSFP signal of each :class:`~.tissues.Tissue` (empty = 1). ``bias_coefficients`` (empty = no
    bias) are those of :data:`BIAS_TERMS` in ``u = (p - bias_centre_ras) / bias_scale_mm`` (RAS mm):
    ``bias(p) = 1 + sum_k c_k m_k(u)`` (:func:`bias_field`). The defaults of all these are neutral."""

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
    matrix_rows: Optional[int] = None  # rows (y) per slice; None = matrix (square)
    prescription_tilt_deg: float = 0.0  # angle between the planned SAX normal and the true long axis
    prescription_azimuth_deg: float = 0.0  # tilt direction in the LV x-y plane (0 = towards the RV)
    prescription_offset_mm: Tuple[float, float, float] = (0.0, 0.0, 0.0)  # stack centre offset, LV frame
    sax_inplane_rotation_deg: float = 0.0  # SAX image axes rotated about the planned normal
    signal_multipliers: Tuple[float, ...] = ()  # per Tissue; () = all 1
    bias_coefficients: Tuple[float, ...] = ()  # per BIAS_TERMS; () = no coil bias
    bias_centre_ras: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    bias_scale_mm: float = 200.0

    @classmethod
    def tiny(cls) -> "CMRConfig":
        """Small and fast, for tests: 8 frames, 3.5 mm pixels, 48x48."""
        return cls(n_frames=8, pixel_mm=3.5, matrix=48, profile_samples=3)

    @property
    def rows(self) -> int:
        """Rows (y) of every slice image."""
        return int(self.matrix_rows or self.matrix)

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


def planned_frame(heart: AnalyticHeart, config: CMRConfig) -> np.ndarray:
    """4x4 planned LV frame -> RAS (mm): the true LV frame (``heart.local_to_ras``) with its long axis
    tilted by ``prescription_tilt_deg`` towards the LV-frame direction at ``prescription_azimuth_deg``
    (from x towards y) and its origin moved by ``prescription_offset_mm`` (LV frame). The SAX normal is
    its z column; the LAX planes contain its z axis."""
    offset = np.asarray(config.prescription_offset_mm, float)
    if config.prescription_tilt_deg == 0.0 and not offset.any():
        return heart.local_to_ras
    azimuth = np.deg2rad(config.prescription_azimuth_deg)
    local = np.eye(4)
    local[:3, :3] = rotation_matrix([-np.sin(azimuth), np.cos(azimuth), 0.0], np.deg2rad(config.prescription_tilt_deg))
    local[:3, 3] = offset
    return heart.local_to_ras @ local


def _plane_axes(frame: np.ndarray, view: str, inplane_deg: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """In-plane unit axes (i, j) in RAS of a view of the (planned) LV frame; the normal is i x j."""
    ex, ey, ez = frame[:3, 0], frame[:3, 1], frame[:3, 2]
    if view == "SAX":
        if inplane_deg == 0.0:
            return ex, ey
        a = np.deg2rad(inplane_deg)
        return np.cos(a) * ex + np.sin(a) * ey, -np.sin(a) * ex + np.cos(a) * ey
    angle = {"4CH": 0.0, "3CH": np.deg2rad(120.0), "2CH": np.deg2rad(90.0)}[view]
    in_plane = np.cos(angle) * ex + np.sin(angle) * ey
    return in_plane, ez


def slice_geometry(centre_ras: np.ndarray, axis_i: np.ndarray, axis_j: np.ndarray, config: CMRConfig) -> np.ndarray:
    """Nominal IJK->RAS of a slice (``matrix`` columns, ``rows`` rows) centred at ``centre_ras``."""
    direction = np.stack([axis_i, axis_j, np.cross(axis_i, axis_j)], axis=1)
    half_i = (config.matrix - 1) / 2.0 * config.pixel_mm
    half_j = (config.rows - 1) / 2.0 * config.pixel_mm
    origin = centre_ras - half_i * axis_i - half_j * axis_j
    return make_ijk_to_ras(origin, direction, (config.pixel_mm, config.pixel_mm, config.slice_thickness_mm))


def planned_slices(heart: AnalyticHeart, config: CMRConfig) -> List[Tuple[str, str, np.ndarray]]:
    """(name, view, nominal IJK->RAS) of the SAX stack (base -> apex) and the LAX views, planned on
    :func:`planned_frame`. The stack covers the LV (base - 5 mm to apex + 2 mm along the axis) with
    ``slice_spacing_mm``, its slice count clipped to ``[min_sax, max_sax]``."""
    base, apex = heart.lv_extent_local()
    top = base - 5.0
    bottom = apex + 2.0
    n_sax = int(np.clip(np.ceil((bottom - top) / config.slice_spacing_mm) + 1, config.min_sax, config.max_sax))
    first = 0.5 * (top + bottom) - 0.5 * (n_sax - 1) * config.slice_spacing_mm
    frame = planned_frame(heart, config)
    slices = []
    ax_i, ax_j = _plane_axes(frame, "SAX", config.sax_inplane_rotation_deg)
    for k in range(n_sax):
        centre = apply_affine(frame, np.array([0.0, 0.0, first + k * config.slice_spacing_mm]))
        slices.append((f"sax_{k:02d}", "SAX", slice_geometry(centre, ax_i, ax_j, config)))
    centre = apply_affine(frame, np.array([0.0, 0.0, 0.5 * (base + apex)]))
    for view in config.lax_views:
        ax_i, ax_j = _plane_axes(frame, view)
        slices.append((f"la_{view.lower()}", view, slice_geometry(centre, ax_i, ax_j, config)))
    return slices


def bias_field(config: CMRConfig, points_ras: np.ndarray) -> np.ndarray:
    """Multiplicative coil bias (dimensionless, ~1) at RAS points ``(..., 3)`` (see :class:`CMRConfig`);
    ones when ``bias_coefficients`` is empty. Inside the cube of half-side ``bias_scale_mm`` about
    ``bias_centre_ras`` it lies within ``1 +/- sum |c_k|``."""
    points = np.asarray(points_ras, float)
    if not len(config.bias_coefficients):
        return np.ones(points.shape[:-1])
    if len(config.bias_coefficients) != len(BIAS_TERMS):
        raise ValueError(f"bias_coefficients needs {len(BIAS_TERMS)} values ({', '.join(BIAS_TERMS)}), "
                         f"got {len(config.bias_coefficients)}")
    u = (points - np.asarray(config.bias_centre_ras, float)) / config.bias_scale_mm
    axes = {"x": 0, "y": 1, "z": 2}
    out = np.ones(points.shape[:-1])
    for c, term in zip(config.bias_coefficients, BIAS_TERMS):
        out += c * np.prod([u[..., axes[a]] for a in term], axis=0)
    return out


def mr_signal_table(config: CMRConfig) -> np.ndarray:
    """bSSFP signal of every tissue (:data:`~.tissues.MR_SIGNAL` times ``signal_multipliers``)."""
    if not len(config.signal_multipliers):
        return MR_SIGNAL
    if len(config.signal_multipliers) != N_TISSUES:
        raise ValueError(f"signal_multipliers needs {N_TISSUES} values (one per Tissue), "
                         f"got {len(config.signal_multipliers)}")
    return (MR_SIGNAL * np.asarray(config.signal_multipliers, np.float32)).astype(np.float32)


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


def simulate_cine(heart: AnalyticHeart, config: Optional[CMRConfig] = None, seed: int = 0,
                  progress=None) -> SimulatedCine:
    """Simulate all slices over ``config.n_frames`` equally spaced phases (ED first)."""
    config = config or CMRConfig()
    rng = np.random.default_rng([heart.params.seed, seed, 7])
    planned = planned_slices(heart, config)
    n, rows = config.matrix, config.rows
    jj, ii = np.meshgrid(np.arange(rows), np.arange(n), indexing="ij")
    offsets = _profile_offsets(config)
    table = mr_signal_table(config)
    biases = []
    truths: List[SliceTruth] = []
    points = []
    for name, view, nominal in planned:
        centre = apply_affine(nominal, [(n - 1) / 2.0, (rows - 1) / 2.0, 0.0])
        misalignment = random_misalignment(rng, centre, config)
        scale = float(rng.uniform(*config.intensity_scale_range))
        truths.append(SliceTruth(name, view, nominal, misalignment, scale, config.noise_sigma))
        shape = (len(offsets), rows, n)
        ijk = np.stack([np.broadcast_to(ii, shape), np.broadcast_to(jj, shape),
                        np.broadcast_to(offsets[:, None, None], shape)], axis=-1).astype(float)
        points.append(apply_affine(misalignment @ nominal, ijk))
        if len(config.bias_coefficients):  # fixed in the scanner: at the nominal pixel centres
            biases.append(bias_field(config, apply_affine(nominal, ijk[0] * [1.0, 1.0, 0.0])))
    points = np.stack(points)  # (slices, profile, y, x, 3)
    flat = points.reshape(-1, 3)
    phases = np.arange(config.n_frames) / config.n_frames
    background = heart.tissue_background(flat)
    near = heart.near_heart_ras(flat)
    near_points = flat[near]
    signal = np.empty((config.n_frames, len(planned), rows, n), np.float32)
    labels = np.empty((config.n_frames, len(planned), rows, n), np.uint8)
    centre_index = len(offsets) // 2
    tissue = background.copy()
    for f, phase in enumerate(phases):
        tissue[near] = heart.tissue_near(near_points, phase, background[near])
        per_point = table[tissue].reshape(len(planned), len(offsets), rows, n)
        signal[f] = per_point.mean(axis=1)
        labels[f] = LABEL_OF_TISSUE[tissue.reshape(len(planned), len(offsets), rows, n)[:, centre_index]]
        if progress is not None:
            progress((f + 1) / config.n_frames, f"CMR frame {f + 1}/{config.n_frames}")
    es_frame = int(round(heart.es_phase * config.n_frames)) % config.n_frames
    slices = []
    sax_index = 0
    for s, (truth, (name, view, nominal)) in enumerate(zip(truths, planned)):
        clean = truth.intensity_scale * signal[:, s]
        if biases:
            clean = clean * biases[s].astype(np.float32)
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


__all__ = ["BIAS_TERMS", "CMRConfig", "SliceTruth", "SimulatedCine", "bias_field", "mr_signal_table",
           "planned_frame", "planned_slices", "random_misalignment", "simulate_cine", "slice_geometry"]
