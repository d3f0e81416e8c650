"""The standardised world frame of one subject, from the slices' geometry alone (no labels needed).

- **z**: the SAX normal (mean of the SAX slices' normals), base -> apex (SAX slices are stored
  base -> apex; with one SAX slice the apex is taken to point left-anterior-inferior);
- **x**: the LV-RV line = intersection of the 4-chamber LAX plane with the mid SAX plane, signed
  towards the RV (the RV lies right-anterior of the LV in RAS); without a 4CH view, the right-anterior
  direction projected onto the SAX plane;
- **origin**: the LV centre = the point of the LV long axis (the line shared by the LAX planes, least
  squares) in the middle of the SAX stack; without two LAX planes, the centre of the mid SAX image;
- **scale**: ``scale_mm`` mm per canonical unit (one value for a cohort, so the shared network sees
  hearts at their true relative sizes; 75 mm puts the heart well inside ``[-1, 1]^3``).

``canonical = R^T (x_ras - origin) / scale_mm`` with ``R = [x y z]`` (columns in RAS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

import numpy as np

from ..data.cine_study import CineSlice, CineStudy
from ..geometry.affine import apply_affine
from .errors import NISFInputError

# Anatomical priors in RAS, only used to choose signs (and as fallbacks):
APEX_PRIOR_RAS = np.array([-1.0, 1.0, -1.0]) / np.sqrt(3.0)  # LV apex: left, anterior, inferior
RV_PRIOR_RAS = np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0)  # RV: right and anterior of the LV


@dataclass
class StandardFrame:
    """RAS mm <-> canonical units (a similarity). ``axes_ras`` columns: canonical x (LV -> RV), y, z
    (SAX normal, base -> apex) as unit RAS vectors."""

    origin_ras: np.ndarray
    axes_ras: np.ndarray
    scale_mm: float

    def __post_init__(self) -> None:
        self.origin_ras = np.asarray(self.origin_ras, float).reshape(3)
        self.axes_ras = np.asarray(self.axes_ras, float).reshape(3, 3)
        self.scale_mm = float(self.scale_mm)
        if not (np.all(np.isfinite(self.origin_ras)) and np.all(np.isfinite(self.axes_ras)) and self.scale_mm > 0):
            raise NISFInputError(None, "standardised frame has non-finite entries or a non-positive scale")
        if np.abs(self.axes_ras.T @ self.axes_ras - np.eye(3)).max() > 1e-6 or np.linalg.det(self.axes_ras) < 0:
            raise NISFInputError(None, "standardised frame axes are not a right-handed orthonormal basis")

    @property
    def canonical_to_ras(self) -> np.ndarray:
        """4x4 similarity: canonical units -> RAS mm."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.axes_ras * self.scale_mm
        matrix[:3, 3] = self.origin_ras
        return matrix

    @property
    def ras_to_canonical(self) -> np.ndarray:
        """4x4 similarity: RAS mm -> canonical units."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.axes_ras.T / self.scale_mm
        matrix[:3, 3] = -self.axes_ras.T @ self.origin_ras / self.scale_mm
        return matrix

    def to_canonical(self, points_ras: np.ndarray) -> np.ndarray:
        return apply_affine(self.ras_to_canonical, points_ras)

    def to_ras(self, points_canonical: np.ndarray) -> np.ndarray:
        return apply_affine(self.canonical_to_ras, points_canonical)

    def to_dict(self) -> Dict:
        return {"origin_ras": self.origin_ras.tolist(), "axes_ras": self.axes_ras.tolist(),
                "scale_mm": self.scale_mm}

    @classmethod
    def from_dict(cls, data: Dict) -> "StandardFrame":
        return cls(np.asarray(data["origin_ras"], float), np.asarray(data["axes_ras"], float),
                   float(data["scale_mm"]))


def slice_centre_ras(slice_: CineSlice) -> np.ndarray:
    """RAS mm of the centre of a slice image (k = 0)."""
    _, ny, nx = slice_.image.shape_zyx
    return apply_affine(slice_.image.ijk_to_ras, [(nx - 1) / 2.0, (ny - 1) / 2.0, 0.0])


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _sax_axis(sax: List[CineSlice], source: str) -> np.ndarray:
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


def standard_frame_from_study(study: CineStudy, scale_mm: float = 75.0, source: Optional[str] = None) -> StandardFrame:
    """The standardised frame of ``study`` (see the module docstring). Raises :class:`NISFInputError`
    when the geometry cannot define it (no SAX slice, a 4CH plane parallel to the SAX stack)."""
    source = source or str(study.metadata.get("source") or study.subject_id)
    sax = sorted(study.sax, key=lambda s: s.slice_index)
    if not sax:
        raise NISFInputError(source, "no SAX slice: the standardised frame needs the SAX normal")
    z = _sax_axis(sax, source)
    centres = np.stack([slice_centre_ras(s) for s in sax])
    heights = centres @ z
    mid_height = 0.5 * (heights.min() + heights.max())
    mid_centre = centres[int(np.argmin(np.abs(heights - mid_height)))]
    mid_centre = mid_centre + (mid_height - mid_centre @ z) * z

    four_chamber = study.view("4CH")
    if four_chamber:
        line = np.cross(four_chamber[0].normal, z)
        if np.linalg.norm(line) < np.sin(np.deg2rad(20.0)):
            raise NISFInputError(source, f"4CH slice {four_chamber[0].image.name!r} is parallel to the SAX stack "
                                         "(< 20 degrees): cannot find the LV-RV direction")
        x = _unit(line)
    else:
        x = RV_PRIOR_RAS - (RV_PRIOR_RAS @ z) * z
        if np.linalg.norm(x) < 1e-3:
            x = np.cross(z, [0.0, 0.0, 1.0])
        x = _unit(x)
    if x @ RV_PRIOR_RAS < 0:
        x = -x
    y = np.cross(z, x)

    # LV long axis: least-squares point on every LAX plane and on the mid SAX plane, weakly pulled
    # towards the mid SAX image centre (which fixes what fewer than two LAX planes leave free).
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
    return StandardFrame(origin, np.stack([x, y, z], axis=1), scale_mm)


__all__ = ["StandardFrame", "standard_frame_from_study", "slice_centre_ras", "APEX_PRIOR_RAS", "RV_PRIOR_RAS"]
