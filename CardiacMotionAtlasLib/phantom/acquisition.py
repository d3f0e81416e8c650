"""Randomised acquisitions: a per-subject draw of the heart's pose in the scanner, the cine CMR protocol
and the CT protocol, so that methods trained on the phantom cannot learn one protocol or one pose.

Frames: RAS mm (scanner); the LV frame (x towards the RV, z = LV long axis base -> apex, mm) is placed in
RAS by the 4x4 ``heart.local_to_ras``. Angles in degrees, lengths in mm, CT values in HU, MR signal in
the simulator's units (blood ~0.85).

* Pose (:func:`draw_heart_pose`): the long axis uniformly over the part of the sphere whose angle to
  each scanner axis R, A, S (as lines) lies in :attr:`AcquisitionRanges.axis_angle_deg`; the RV
  direction uniformly around it. Any scanner octant can occur (supine/prone, head/feet first).
* CMR (:func:`draw_cmr_protocol`): slice thickness and gap, pixel, FOV and matrix (rectangular FOV
  along the rows), frames, slice-count limits, breath-hold misalignment, per-tissue bSSFP signal, a
  smooth coil bias, noise, per-slice scale, and the radiographer's prescription error (tilt of the
  planned SAX normal off the true long axis, stack offset, in-plane rotation of the SAX images).
* CT (:func:`draw_ct_protocol`): in-plane and slice spacing, FOV (voxel count capped by raising the
  spacing), grid orientation (axial, gantry tilt about R, or an oblique reformat), contrast timing
  (blood HU, RV/LV enhancement), noise and PSF.

:func:`randomise_subject` does all three for one heart; the draws depend only on the generator, which
the cohort seeds from (cohort seed, subject index), see :func:`subject_rng`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Dict, Optional, Tuple

import numpy as np

from ..geometry.affine import rotation_matrix
from .cmr import BIAS_TERMS, CMRConfig, planned_frame
from .ct import CTConfig
from .tissues import MR_SIGNAL, N_TISSUES, Tissue

ACQUISITION_CHOICES: Tuple[str, ...] = ("fixed", "randomised")
"""``fixed``: every subject with the cohort's CMR/CT configs and the family's pose; ``randomised``:
drawn per subject (:func:`randomise_subject`)."""
ACQUISITION_STREAM = 0xAC9
"""Third seed word of the acquisition generator (keeps it apart from the anatomy's and the noise's)."""
SCANNER_AXES = ("R", "A", "S")
BLOOD_GROUP = (Tissue.LV_BLOOD, Tissue.RV_BLOOD, Tissue.ATRIAL_BLOOD, Tissue.AORTA)
MUSCLE_GROUP = (Tissue.LV_MYOCARDIUM, Tissue.RV_WALL)
CT_ORIENTATIONS = ("axial", "gantry_tilt", "oblique")


@dataclass
class AcquisitionRanges:
    """Ranges of the per-subject draw; ``(lo, hi)`` pairs are uniform unless stated. Defaults span
    clinical cine CMR and cardiac CT; :meth:`tiny` keeps the geometry draws but uses coarse, small
    images and few frames so that a tiny subject takes seconds."""

    axis_angle_deg: Tuple[float, float] = (20.0, 70.0)  # long axis to each of R, A, S (as lines)
    # cine CMR
    slice_thickness_mm: Tuple[float, float] = (6.0, 10.0)
    slice_gap_mm: Tuple[float, float] = (0.0, 4.0)
    pixel_mm: Tuple[float, float] = (1.2, 2.4)
    fov_mm: Tuple[float, float] = (260.0, 400.0)  # along the columns (readout); upper end <= max_matrix px
    fov_rows_fraction: Tuple[float, float] = (0.75, 1.0)  # rectangular FOV: rows = fraction x columns
    max_matrix: int = 256
    n_frames: Tuple[int, int] = (20, 50)  # inclusive
    sax_slices: Tuple[int, int] = (7, 15)  # clip of the slice count planned from the LV length
    misalignment_mm: Tuple[float, float] = (0.5, 3.0)  # the protocol's std (CMRConfig.misalignment_mm)
    misalignment_deg: Tuple[float, float] = (0.5, 2.0)
    tissue_signal_jitter: float = 0.15  # multipliers in 1 +/- jitter; blood and muscle groups share one
    group_member_jitter: float = 0.03  # on top of the group's, per tissue of a group
    bias_strength: Tuple[float, float] = (0.05, 0.3)  # sum |c_k|: the field stays in 1 +/- this
    bias_centre_std_mm: float = 20.0  # coil centre about the heart centre
    noise_sigma: Tuple[float, float] = (0.015, 0.06)
    intensity_scale_spread: Tuple[float, float] = (0.05, 0.25)  # per-slice scale in 1 +/- spread
    prescription_tilt_std_deg: float = 4.0  # |N(0, std)| clipped at max
    prescription_tilt_max_deg: float = 10.0
    prescription_offset_std_mm: float = 3.0  # per LV-frame component, clipped at 2.5 std
    sax_inplane_rotation_deg: float = 15.0  # uniform in +/- this
    # CT
    ct_voxel_mm: Tuple[float, float] = (0.5, 1.5)
    ct_slice_mm: Tuple[float, float] = (0.5, 1.5)
    ct_fov_mm: Tuple[float, float] = (140.0, 180.0)  # in-plane and (independently) along k
    ct_max_voxels: int = 256 ** 3  # spacing raised (both, by one factor) above this
    ct_orientation_p: Tuple[float, float, float] = (0.5, 0.25, 0.25)  # CT_ORIENTATIONS
    ct_tilt_deg: float = 8.0  # gantry tilt in +/- this; oblique reformat angle up to this
    ct_blood_hu: Tuple[float, float] = (250.0, 550.0)
    ct_rv_enhancement: Tuple[float, float] = (0.6, 1.0)  # early arterial (low) to late (1)
    ct_noise_hu: Tuple[float, float] = (10.0, 40.0)
    ct_psf_fwhm_mm: Tuple[float, float] = (0.8, 1.6)

    @classmethod
    def tiny(cls) -> "AcquisitionRanges":
        """Coarse pixels (3-4 mm, <= 56 px), 6-10 frames, CT voxels 3.5-4.5 mm; orientation, slice
        thickness/gap/count and prescription error drawn as by default."""
        return cls(pixel_mm=(3.0, 4.0), fov_mm=(150.0, 200.0), max_matrix=56, n_frames=(6, 10),
                   ct_voxel_mm=(3.5, 4.5), ct_slice_mm=(3.5, 4.5), ct_fov_mm=(150.0, 170.0))

    def with_frames(self, n_frames: int) -> "AcquisitionRanges":
        """The same ranges with the frame count fixed (the other draws are unchanged)."""
        return replace(self, n_frames=(int(n_frames), int(n_frames)))

    def to_dict(self) -> Dict:
        return asdict(self)


def check_acquisition(mode: str) -> str:
    """``mode`` if it is one of :data:`ACQUISITION_CHOICES`, else a ``ValueError`` listing them."""
    if mode not in ACQUISITION_CHOICES:
        raise ValueError(f"unknown acquisition {mode!r}; expected one of {', '.join(ACQUISITION_CHOICES)}")
    return mode


def subject_rng(seed: int, index: int) -> np.random.Generator:
    """The acquisition generator of subject ``index`` of the cohort with ``seed``."""
    return np.random.default_rng([int(seed), int(index), ACQUISITION_STREAM])


def _uniform(rng: np.random.Generator, bounds) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _floats(values) -> list:
    return [float(v) for v in np.asarray(values, float).ravel()]


def axis_angles_deg(direction: np.ndarray) -> Dict[str, float]:
    """Angle (degrees, 0-90) between a direction and each scanner axis R, A, S, taken as lines."""
    unit = np.asarray(direction, float) / np.linalg.norm(direction)
    return {name: float(np.degrees(np.arccos(min(abs(c), 1.0)))) for name, c in zip(SCANNER_AXES, unit)}


def draw_long_axis(rng: np.random.Generator, angle_deg: Tuple[float, float] = (20.0, 70.0)) -> np.ndarray:
    """Unit RAS direction, uniform on the sphere restricted to angles (as lines) in ``angle_deg`` to
    each of R, A, S (rejection sampling)."""
    lo, hi = np.cos(np.radians(angle_deg[1])), np.cos(np.radians(angle_deg[0]))
    for _ in range(10000):
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        if np.all((np.abs(v) >= lo) & (np.abs(v) <= hi)):
            return v
    raise ValueError(f"no direction has angles {angle_deg} deg to all three scanner axes")


def draw_heart_pose(rng: np.random.Generator, centre_ras, angle_deg: Tuple[float, float] = (20.0, 70.0)) -> np.ndarray:
    """4x4 rigid LV-frame -> RAS matrix: columns x (towards the RV), y = z x x, z (LV long axis, base
    -> apex, from :func:`draw_long_axis`), translation ``centre_ras`` (mm). The RV direction is uniform
    around the long axis."""
    axis = draw_long_axis(rng, angle_deg)
    helper = np.eye(3)[int(np.argmin(np.abs(axis)))]
    e1 = np.cross(axis, helper)
    e1 /= np.linalg.norm(e1)
    towards_rv = rotation_matrix(axis, rng.uniform(0.0, 2 * np.pi)) @ e1
    matrix = np.eye(4)
    matrix[:3, 0] = towards_rv
    matrix[:3, 1] = np.cross(axis, towards_rv)
    matrix[:3, 2] = axis
    matrix[:3, 3] = np.asarray(centre_ras, float)
    return matrix


def _signal_multipliers(rng: np.random.Generator, ranges: AcquisitionRanges) -> np.ndarray:
    """Per-tissue multipliers: independent for each tissue, shared (with a small jitter) by the blood
    pools and by the muscular walls, so the blood/myocardium ratio varies by about twice the jitter."""
    jitter, member = ranges.tissue_signal_jitter, ranges.group_member_jitter
    out = rng.uniform(1.0 - jitter, 1.0 + jitter, N_TISSUES)
    for group in (BLOOD_GROUP, MUSCLE_GROUP):
        shared = rng.uniform(1.0 - jitter, 1.0 + jitter)
        out[list(group)] = shared * rng.uniform(1.0 - member, 1.0 + member, len(group))
    return out


def draw_cmr_protocol(rng: np.random.Generator, base: CMRConfig,
                      ranges: Optional[AcquisitionRanges] = None, centre_ras=(0.0, 0.0, 0.0)) -> CMRConfig:
    """A cine CMR protocol drawn from ``ranges`` on top of ``base`` (views, profile samples, storage
    units kept). ``centre_ras`` (mm) is where the coil bias field is centred on average."""
    r = ranges or AcquisitionRanges()
    thickness = _uniform(rng, r.slice_thickness_mm)
    gap = _uniform(rng, r.slice_gap_mm)
    pixel = _uniform(rng, r.pixel_mm)
    fov_hi = min(r.fov_mm[1], r.max_matrix * pixel)
    fov = float(rng.uniform(min(r.fov_mm[0], fov_hi), fov_hi))
    matrix = int(round(fov / pixel))
    rows = max(8, int(round(matrix * _uniform(rng, r.fov_rows_fraction))))
    n_frames = int(rng.integers(r.n_frames[0], r.n_frames[1] + 1))
    spread = _uniform(rng, r.intensity_scale_spread)
    tilt = float(min(abs(rng.normal(0.0, r.prescription_tilt_std_deg)), r.prescription_tilt_max_deg))
    azimuth = _uniform(rng, (0.0, 360.0))
    offset_std = r.prescription_offset_std_mm
    offset = np.clip(rng.normal(0.0, offset_std, 3), -2.5 * offset_std, 2.5 * offset_std)
    inplane = _uniform(rng, (-r.sax_inplane_rotation_deg, r.sax_inplane_rotation_deg))
    multipliers = _signal_multipliers(rng, r)
    weights = np.array([1.0 if len(term) == 1 else 0.5 for term in BIAS_TERMS])
    coefficients = rng.normal(size=len(BIAS_TERMS)) * weights
    coefficients *= _uniform(rng, r.bias_strength) / np.abs(coefficients).sum()
    bias_offset = rng.normal(0.0, r.bias_centre_std_mm, 3)
    return replace(
        base, n_frames=n_frames, pixel_mm=pixel, matrix=matrix, matrix_rows=rows,
        slice_thickness_mm=thickness, slice_spacing_mm=thickness + gap,
        min_sax=int(r.sax_slices[0]), max_sax=int(r.sax_slices[1]),
        misalignment_mm=_uniform(rng, r.misalignment_mm), misalignment_deg=_uniform(rng, r.misalignment_deg),
        intensity_scale_range=(1.0 - spread, 1.0 + spread), noise_sigma=_uniform(rng, r.noise_sigma),
        prescription_tilt_deg=tilt, prescription_azimuth_deg=azimuth,
        prescription_offset_mm=tuple(_floats(offset)), sax_inplane_rotation_deg=inplane,
        signal_multipliers=tuple(_floats(multipliers)), bias_coefficients=tuple(_floats(coefficients)),
        bias_centre_ras=tuple(_floats(np.asarray(centre_ras, float) + bias_offset)),
        # the stack (<= 15 x 14 mm), the FOV diagonal and the coil offset stay inside the unit cube
        bias_scale_mm=float(0.5 * np.hypot(matrix, rows) * pixel + 130.0 + np.linalg.norm(bias_offset)),
    )


def _ct_direction(rng: np.random.Generator, r: AcquisitionRanges) -> Tuple[str, float, np.ndarray]:
    """(orientation kind, angle deg, 3x3 rotation whose columns are the grid's i, j, k in RAS)."""
    kind = CT_ORIENTATIONS[int(rng.choice(len(CT_ORIENTATIONS), p=r.ct_orientation_p))]
    if kind == "axial":
        return kind, 0.0, np.eye(3)
    if kind == "gantry_tilt":  # slices tilted about the R (left-right) axis
        angle = _uniform(rng, (-r.ct_tilt_deg, r.ct_tilt_deg))
        return kind, angle, rotation_matrix([1.0, 0.0, 0.0], np.radians(angle))
    angle = _uniform(rng, (0.0, r.ct_tilt_deg))
    return kind, angle, rotation_matrix(rng.normal(size=3), np.radians(angle))


def draw_ct_protocol(rng: np.random.Generator, base: CTConfig,
                     ranges: Optional[AcquisitionRanges] = None) -> CTConfig:
    """A CT protocol drawn from ``ranges`` on top of ``base``: spacing (both raised by one factor when
    the grid would exceed ``ct_max_voxels``), FOV, orientation, contrast timing, noise, PSF."""
    r = ranges or AcquisitionRanges()
    voxel, slice_mm = _uniform(rng, r.ct_voxel_mm), _uniform(rng, r.ct_slice_mm)
    fov, fov_z = _uniform(rng, r.ct_fov_mm), _uniform(rng, r.ct_fov_mm)
    def count(factor: float) -> int:
        return int(round(fov / (voxel * factor))) ** 2 * int(round(fov_z / (slice_mm * factor)))

    raised = max(1.0, (count(1.0) / r.ct_max_voxels) ** (1.0 / 3.0))
    while count(raised) > r.ct_max_voxels:  # the rounding of the voxel counts
        raised *= 1.002
    voxel, slice_mm = voxel * raised, slice_mm * raised
    kind, _, direction = _ct_direction(rng, r)
    return replace(
        base, voxel_mm=voxel, slice_mm=slice_mm, fov_mm=fov, fov_z_mm=fov_z,
        direction=() if kind == "axial" else tuple(_floats(direction)),
        blood_hu=_uniform(rng, r.ct_blood_hu), rv_enhancement=_uniform(rng, r.ct_rv_enhancement),
        noise_hu=_uniform(rng, r.ct_noise_hu), psf_fwhm_mm=_uniform(rng, r.ct_psf_fwhm_mm))


def ct_protocol_record(config: CTConfig, subject_blood_hu: float) -> Dict:
    """JSON record of a CT protocol: its fields plus the grid shape, spacing, orientation (kind, rotation
    angle, slice normal and its angle to S) and the blood HU values used."""
    direction = np.eye(3) if not len(config.direction) else np.asarray(config.direction, float).reshape(3, 3)
    angle = float(np.degrees(np.arccos(np.clip((np.trace(direction) - 1.0) / 2.0, -1.0, 1.0))))
    if angle < 1e-9:
        kind = "axial"
    elif np.allclose(direction[:, 0], [1.0, 0.0, 0.0], atol=1e-9):
        kind = "gantry_tilt"
    else:
        kind = "oblique"
    table = config.hu_table(subject_blood_hu)
    return {**config.to_dict(), "orientation": kind, "orientation_angle_deg": angle,
            "spacing_ijk_mm": _floats(config.spacing_ijk), "shape_zyx": list(config.shape_zyx),
            "slice_normal_ras": _floats(direction[:, 2]),
            "slice_normal_angle_to_S_deg": float(np.degrees(np.arccos(min(abs(direction[2, 2]), 1.0)))),
            "lv_blood_hu": float(table[Tissue.LV_BLOOD]), "rv_blood_hu": float(table[Tissue.RV_BLOOD])}


def randomise_subject(heart, rng: np.random.Generator, cmr_base: CMRConfig, ct_base: Optional[CTConfig],
                      ranges: Optional[AcquisitionRanges] = None) -> Tuple[CMRConfig, Optional[CTConfig], Dict]:
    """Pose ``heart`` (``heart.set_pose``, about its LV-frame origin, which stays where the family put
    it) and draw its CMR and CT protocols. Returns (CMR config, CT config or None when ``ct_base`` is
    None, a JSON-serialisable record of every drawn value). The pose, CMR and CT draws use separate
    child generators, so the CMR protocol does not depend on whether CT is simulated."""
    r = ranges or AcquisitionRanges()
    pose_rng, cmr_rng, ct_rng = rng.spawn(3)
    pose = draw_heart_pose(pose_rng, heart.local_to_ras[:3, 3], r.axis_angle_deg)
    heart.set_pose(pose)
    cmr = draw_cmr_protocol(cmr_rng, cmr_base, r, centre_ras=heart.centre_ras)
    planned_axis = planned_frame(heart, cmr)[:3, 2]
    multipliers = np.asarray(cmr.signal_multipliers)
    signal = MR_SIGNAL * multipliers
    record = {
        "mode": "randomised",
        "ranges": r.to_dict(),
        "pose": {"local_to_ras": pose.tolist(), "long_axis_ras": _floats(pose[:3, 2]),
                 "rv_direction_ras": _floats(pose[:3, 0]), "centre_ras": _floats(pose[:3, 3]),
                 "long_axis_angle_to_axes_deg": axis_angles_deg(pose[:3, 2])},
        "cmr": {**cmr.to_dict(),
                "slice_gap_mm": cmr.slice_spacing_mm - cmr.slice_thickness_mm,
                "fov_mm": [cmr.matrix * cmr.pixel_mm, cmr.rows * cmr.pixel_mm],
                "matrix_columns_rows": [cmr.matrix, cmr.rows],
                "prescription": {"tilt_deg": cmr.prescription_tilt_deg,
                                 "azimuth_deg": cmr.prescription_azimuth_deg,
                                 "offset_mm_lv_frame": list(cmr.prescription_offset_mm),
                                 "planned_long_axis_ras": _floats(planned_axis),
                                 "sax_inplane_rotation_deg": cmr.sax_inplane_rotation_deg},
                "bias": {"terms": list(BIAS_TERMS), "coefficients": list(cmr.bias_coefficients),
                         "centre_ras": list(cmr.bias_centre_ras), "scale_mm": cmr.bias_scale_mm},
                "contrast": {"tissues": [t.name for t in Tissue], "multipliers": _floats(multipliers),
                             "signal": _floats(signal),
                             "blood_myocardium_ratio": float(signal[Tissue.LV_BLOOD] / signal[Tissue.LV_MYOCARDIUM])}},
        "ct": None,
    }
    ct = None
    if ct_base is not None:
        ct = draw_ct_protocol(ct_rng, ct_base, r)
        record["ct"] = ct_protocol_record(ct, heart.params.blood_hu)
    return cmr, ct, record


__all__ = ["ACQUISITION_CHOICES", "ACQUISITION_STREAM", "AcquisitionRanges", "CT_ORIENTATIONS", "SCANNER_AXES",
           "axis_angles_deg", "check_acquisition", "ct_protocol_record", "draw_cmr_protocol", "draw_ct_protocol", "draw_heart_pose",
           "draw_long_axis", "randomise_subject", "subject_rng"]
