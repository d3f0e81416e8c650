"""The standardised world frame of one subject, from its own slices: geometry, and labels where given.

Hearts lie in any pose in the scanner (any octant for the long axis, the RV anywhere around it), so
no direction is taken from a fixed RAS prior when the subject's data can give it:

- **z**: the SAX normal (mean of the SAX slices' normals), signed base -> apex: with labels, by the
  heart's own anatomy (:func:`apex_sign_from_labels`: the RV is present at the basal end of the LV
  and absent at its apex, which is capped by myocardium); without labels, by the stack order (SAX
  slices stored base -> apex, the DICOM-export convention of the product's readers);
- **x**: the LV-RV line: the intersection of the 4-chamber LAX plane with the SAX plane when a 4CH
  view exists, else the direction from the LV to the RV blood-pool centroid (labels) in the SAX plane;
  signed towards the RV by the labels' RV centroid. Without labels the sign (and, without a 4CH, the
  azimuth) is not observable from geometry: the frame is marked ``rv_from="geometry"`` and
  :func:`~.fit.fit_subject` chooses among rotations about z by the data (:func:`rotated_about_z`);
- **origin**: the LV centre = the point of the LV long axis (the line shared by the LAX planes, least
  squares) in the middle of the SAX stack; without two LAX planes, the LV blood-pool centroid of the
  mid SAX slices (labels), else the centre of the mid SAX image;
- **scale**: ``scale_mm`` mm per canonical unit (one value for a cohort, so the shared network sees
  hearts at their true relative sizes; 75 mm puts the heart well inside ``[-1, 1]^3``).

``canonical = R^T (x_ras - origin) / scale_mm`` with ``R = [x y z]`` (columns in RAS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from ..data.cine_study import CineSlice, CineStudy
from ..geometry.affine import apply_affine
from ..geometry.heart_frame import HeartFrame, perpendicular_part
from .errors import NISFInputError

# Anatomical priors in RAS, only fallbacks when neither labels nor geometry decide (never with labels):
APEX_PRIOR_RAS = np.array([-1.0, 1.0, -1.0]) / np.sqrt(3.0)  # LV apex: left, anterior, inferior
RV_PRIOR_RAS = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)  # RV: right and anterior of the LV


@dataclass
class StandardFrame(HeartFrame):
    """RAS mm <-> canonical units (a similarity; the shared
    :class:`~CardiacMotionAtlasLib.geometry.heart_frame.HeartFrame`). ``axes_ras`` columns: canonical x
    (LV -> RV), y, z (SAX normal, base -> apex) as unit RAS vectors; one ``scale_mm`` per cohort."""

    origin_ras: np.ndarray
    axes_ras: np.ndarray
    scale_mm: float
    rv_from: str = "labels"  # "labels": x signed by the subject's labels; "geometry": sign/azimuth unobserved

    def __post_init__(self) -> None:
        self.scale_mm = float(self.scale_mm)
        self._check_axes("standardised frame", lambda problem: NISFInputError(None, problem))

    def to_canonical(self, points_ras: np.ndarray) -> np.ndarray:
        """RAS mm -> canonical units by :attr:`ras_to_canonical`, the matrix the slice table composes with
        each slice's IJK->RAS (so pixels mapped either way agree to the last bit)."""
        return apply_affine(self.ras_to_canonical, points_ras)

    def to_dict(self) -> Dict:
        return {**self.axes_dict(), "scale_mm": self.scale_mm, "rv_from": self.rv_from}

    @classmethod
    def from_dict(cls, data: Dict) -> "StandardFrame":
        return cls(*cls.axes_from_dict(data), float(data["scale_mm"]), str(data.get("rv_from", "labels")))

    def rotated_about_z(self, degrees: float) -> "StandardFrame":
        """The same frame with x and y turned by ``degrees`` about z (origin, z and scale kept)."""
        angle = np.deg2rad(degrees)
        c, s = np.cos(angle), np.sin(angle)
        x, y, z = self.axes_ras.T
        return StandardFrame(self.origin_ras, np.stack([c * x + s * y, -s * x + c * y, z], axis=1), self.scale_mm,
                             self.rv_from)


def slice_centre_ras(slice_: CineSlice) -> np.ndarray:
    """RAS mm of the centre of a slice image (k = 0)."""
    _, ny, nx = slice_.image.shape_zyx
    return apply_affine(slice_.image.ijk_to_ras, [(nx - 1) / 2.0, (ny - 1) / 2.0, 0.0])


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _sax_axis(sax: List[CineSlice], source: str) -> np.ndarray:
    """Mean SAX normal, signed along the stack order (first -> last slice)."""
    normals = np.stack([s.normal for s in sax])
    normals *= np.sign(normals @ normals[0])[:, None] + (normals @ normals[0] == 0)[:, None]
    axis = normals.mean(axis=0)
    if np.linalg.norm(axis) < 0.5:
        raise NISFInputError(source, "SAX slice normals disagree: the SAX stack has no common normal")
    axis = _unit(axis)
    centres = np.stack([slice_centre_ras(s) for s in sax])
    along = (centres[-1] - centres[0]) @ axis
    if len(sax) >= 2 and abs(along) > 1e-3:
        return axis if along > 0 else -axis
    return axis if axis @ APEX_PRIOR_RAS >= 0 else -axis


def _label_frame(slices: Sequence[CineSlice]) -> Optional[int]:
    """The frame labelled in the most of ``slices`` (ED, frame 0, on ties); None without labels."""
    counts: Dict[int, int] = {}
    for slice_ in slices:
        if slice_.labels is not None:
            for frame in slice_.labelled_frames or []:
                counts[int(frame)] = counts.get(int(frame), 0) + 1
    if not counts:
        return None
    return max(sorted(counts), key=lambda f: (counts[f], -f))


@dataclass
class LabelPoints:
    """RAS mm (nominal headers) of the labelled pixels of one frame, per SAX slice: ``lv`` (LV blood),
    ``heart_lv`` (LV blood + myocardium), ``rv`` (RV blood) lists of ``(n, 3)`` arrays."""

    lv: List[np.ndarray]
    heart_lv: List[np.ndarray]
    rv: List[np.ndarray]

    def all(self, name: str) -> np.ndarray:
        arrays = [a for a in getattr(self, name) if len(a)]
        return np.concatenate(arrays) if arrays else np.zeros((0, 3))


def label_points(sax: Sequence[CineSlice], frame: int) -> LabelPoints:
    """Labelled pixel centres (RAS mm) of ``frame`` in every SAX slice labelled there."""
    out = LabelPoints([], [], [])
    for slice_ in sax:
        if slice_.labels is None or frame not in set(int(f) for f in slice_.labelled_frames or []):
            continue
        labels = np.asarray(slice_.labels.array)[frame, 0]
        for name, mask in (("lv", labels == 1), ("heart_lv", (labels == 1) | (labels == 2)), ("rv", labels == 3)):
            jj, ii = np.nonzero(mask)
            ijk = np.c_[ii, jj, np.zeros(ii.size)].astype(float)
            getattr(out, name).append(apply_affine(slice_.image.ijk_to_ras, ijk) if ii.size else np.zeros((0, 3)))
    return out


def apex_sign_from_labels(points: LabelPoints, axis: np.ndarray) -> Optional[float]:
    """+1 when ``axis`` points base -> apex by the labels, -1 when apex -> base, None when undecided.

    The LV-bearing SAX slices are ordered along ``axis`` and a quarter of them (at least one) taken at
    each end; two anatomical votes compare the ends: (a) the RV blood pool is present at the basal end
    and absent at the apical end (the LV alone forms the apex); (b) the LV blood fraction (blood /
    blood + myocardium) is higher at the basal end (the apex is capped by myocardium). Each vote is a
    difference of fractions in [-1, 1]; their sum decides. (The RV's or the LV's centroid, or the section
    area, are not used: they vary with the heart's construction and fail on hearts built differently.)"""
    rows = sorted(((float((hl @ axis).mean()), len(lv) / len(hl), float(len(rv) > 0))
                   for lv, hl, rv in zip(points.lv, points.heart_lv, points.rv) if len(hl)), key=lambda r: r[0])
    if len(rows) < 2:
        return None
    k = max(1, len(rows) // 4)
    first, last = rows[:k], rows[-k:]
    mean = lambda rows_, column: float(np.mean([r[column] for r in rows_]))  # noqa: E731
    vote = (mean(first, 2) - mean(last, 2)) + (mean(first, 1) - mean(last, 1))
    if abs(vote) < 1e-6:
        return None
    return 1.0 if vote > 0 else -1.0


def standard_frame_from_study(study: CineStudy, scale_mm: float = 75.0, source: Optional[str] = None,
                              use_labels: bool = True) -> StandardFrame:
    """The standardised frame of ``study`` (see the module docstring); ``use_labels=False`` ignores the
    study's labels (intensity-only inference). Raises :class:`NISFInputError` when the geometry cannot
    define it (no SAX slice, a 4CH plane parallel to the SAX stack)."""
    source = source or str(study.metadata.get("source") or study.subject_id)
    sax = sorted(study.sax, key=lambda s: s.slice_index)
    if not sax:
        raise NISFInputError(source, "no SAX slice: the standardised frame needs the SAX normal")
    z = _sax_axis(sax, source)
    label_frame = _label_frame(sax) if use_labels else None
    points = label_points(sax, label_frame) if label_frame is not None else None
    if points is not None:
        sign = apex_sign_from_labels(points, z)
        if sign is not None:
            z = sign * z
    centres = np.stack([slice_centre_ras(s) for s in sax])
    heights = centres @ z
    mid_height = 0.5 * (heights.min() + heights.max())
    mid_centre = centres[int(np.argmin(np.abs(heights - mid_height)))]
    mid_centre = mid_centre + (mid_height - mid_centre @ z) * z
    lv, rv = (points.all("lv"), points.all("rv")) if points is not None else (np.zeros((0, 3)),) * 2
    lv_to_rv = perpendicular_part(rv.mean(0) - lv.mean(0), z) if len(lv) >= 10 and len(rv) >= 10 else None
    if lv_to_rv is not None and np.linalg.norm(lv_to_rv) < 1.0:  # < 1 mm apart: no usable direction
        lv_to_rv = None
    if len(lv) >= 10:  # the LV centre of the labels, at mid-stack height (used without two LAX planes)
        mid_centre = lv.mean(0) + (mid_height - lv.mean(0) @ z) * z

    four_chamber = study.view("4CH")
    if four_chamber:
        line = np.cross(four_chamber[0].normal, z)
        if np.linalg.norm(line) < np.sin(np.deg2rad(20.0)):
            raise NISFInputError(source, f"4CH slice {four_chamber[0].image.name!r} is parallel to the SAX stack "
                                         "(< 20 degrees): cannot find the LV-RV direction")
        x = _unit(line)
    elif lv_to_rv is not None:
        x = _unit(lv_to_rv)
    else:
        x = perpendicular_part(RV_PRIOR_RAS, z)
        if np.linalg.norm(x) < 1e-3:
            x = np.cross(z, [0.0, 0.0, 1.0])
        x = _unit(x)
    towards_rv = lv_to_rv if lv_to_rv is not None else RV_PRIOR_RAS
    if x @ towards_rv < 0:
        x = -x
    y = np.cross(z, x)

    # LV long axis: least-squares point on every LAX plane and on the mid SAX plane, weakly pulled
    # towards the mid-stack LV centre (which fixes what fewer than two LAX planes leave free).
    rows, rhs = [z], [mid_height]
    for lax in study.lax:
        normal = lax.normal
        if abs(normal @ z) < np.cos(np.deg2rad(60.0)):  # a LAX plane contains (roughly) the long axis
            rows.append(normal)
            rhs.append(normal @ slice_centre_ras(lax))
    weak = 1e-3
    rows.extend(weak * np.eye(3))
    rhs.extend(weak * mid_centre)
    origin = np.linalg.lstsq(np.stack(rows), np.asarray(rhs), rcond=None)[0]
    return StandardFrame(origin, np.stack([x, y, z], axis=1), scale_mm,
                         "labels" if lv_to_rv is not None else "geometry")


__all__ = ["StandardFrame", "standard_frame_from_study", "LabelPoints", "label_points", "apex_sign_from_labels", "slice_centre_ras", "APEX_PRIOR_RAS", "RV_PRIOR_RAS"]
