"""The canonical heart frame of one subject, derived from its data (RAS mm <-> canonical units).

Definition (every quantity measured on the ED frame of the subject's own data):

- **origin**: centroid of the LV myocardium volume (label 2, or the volume enclosed by a closed
  myocardium mesh, by exact tetrahedron moments);
- **z**: the LV long axis, base -> apex. With a blood pool (label 1): the line through the centres of the
  cavity's cross-sections (:func:`~CardiacMotionAtlasLib.geometry.long_axis.centreline_axis`), signed by
  the cavity -> myocardium centroid offset (the apical cap pulls the myocardium's centroid towards the
  apex; the blood pool ends at the base plane). The myocardium's own second moments are nearly
  degenerate for a realistic thick shell, so its eigenvectors turn freely with any asymmetry (24-51
  degrees off on the ``lofted`` phantom family); they are used only without a blood pool (meshes): the
  eigenvector whose eigenvalue is furthest from the other two, signed so that the apex is the narrow end;
- **x**: towards the RV (centroid of label 3, or a given RV point), orthogonalised against z;
  ``y = z x x`` (right-handed);
- **scale**: ``size_mm`` = RMS distance of the myocardium from its centroid, times the atlas' cohort
  ``extent_factor`` (chosen at training so that every training surface fits ``[-1, 1]^3`` with a margin).

The map is a similarity: ``canonical = R^T (x_ras - origin) / scale_mm``; signed distances scale by
``1 / scale_mm``. The axes, matrices and record are the shared heart frame's
(:mod:`~CardiacMotionAtlasLib.geometry.heart_frame`); this module decides the origin, axis and scale. It is stored with every subject so that outputs return to RAS mm.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from ..data.image_sequence import ImageSequence
from ..geometry.heart_frame import HeartFrame, heart_axes, label_points_ras
from ..geometry.long_axis import centreline_axis
from .errors import AtlasDataError

MYOCARDIUM_LABEL = 2
LV_BLOOD_LABEL = 1
RV_BLOOD_LABEL = 3


@dataclass
class CanonicalFrame(HeartFrame):
    """RAS mm <-> canonical heart frame of one subject (see the module docstring); the matrices and maps
    are :class:`~CardiacMotionAtlasLib.geometry.heart_frame.HeartFrame`'s.

    Attributes:
        origin_ras: ``(3,)`` RAS mm of the canonical origin (LV myocardium centroid at ED).
        axes_ras: ``(3, 3)`` columns = unit canonical x (towards RV), y, z (base -> apex) in RAS.
        size_mm: subject size (RMS radius of the myocardium, mm).
        extent_factor: cohort factor; ``scale_mm = size_mm * extent_factor`` mm per canonical unit.
    """

    origin_ras: np.ndarray
    axes_ras: np.ndarray
    size_mm: float
    extent_factor: float = 1.0

    def __post_init__(self) -> None:
        self.size_mm = float(self.size_mm)
        self.extent_factor = float(self.extent_factor)
        if not (np.isfinite(self.size_mm) and self.size_mm > 0 and self.extent_factor > 0):
            raise AtlasDataError(None, "canonical frame has non-finite entries or a non-positive scale")
        self._check_axes("canonical frame", lambda problem: AtlasDataError(None, problem))

    @property
    def scale_mm(self) -> float:
        """mm per canonical unit."""
        return self.size_mm * self.extent_factor

    def with_extent_factor(self, factor: float) -> "CanonicalFrame":
        return CanonicalFrame(self.origin_ras, self.axes_ras, self.size_mm, factor)

    def to_dict(self) -> Dict:
        return {**self.axes_dict(), "size_mm": self.size_mm, "extent_factor": self.extent_factor}

    @classmethod
    def from_dict(cls, data: Dict) -> "CanonicalFrame":
        try:
            return cls(*cls.axes_from_dict(data), float(data["size_mm"]), float(data.get("extent_factor", 1.0)))
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, AtlasDataError):
                raise
            raise AtlasDataError(None, f"invalid canonical frame record ({error})") from error


def _axis_from_moments(points: np.ndarray, centroid: np.ndarray, covariance: np.ndarray,
                       apex_hint: Optional[np.ndarray], source: str) -> np.ndarray:
    """Unit base -> apex axis from the myocardium's second moments (see the module docstring)."""
    values, vectors = np.linalg.eigh(covariance)
    if apex_hint is not None and np.linalg.norm(apex_hint) > 1e-6:
        hint = apex_hint / np.linalg.norm(apex_hint)
        axis = vectors[:, int(np.argmax(np.abs(vectors.T @ hint)))]
        return axis if axis @ hint > 0 else -axis
    gaps = (values[1] - values[0], values[2] - values[1])
    axis = vectors[:, 0] if gaps[0] > gaps[1] else vectors[:, 2]
    # apex = the narrow end: compare mean distances from the axis of the 20 % extreme points at each end
    along = (points - centroid) @ axis
    radial = np.linalg.norm((points - centroid) - along[:, None] * axis, axis=1)
    low, high = np.quantile(along, [0.2, 0.8])
    if not (np.any(along <= low) and np.any(along >= high)):
        raise AtlasDataError(source, "cannot tell base from apex: the myocardium has no extent along its axis")
    return axis if radial[along >= high].mean() < radial[along <= low].mean() else -axis


def _frame(centroid: np.ndarray, axis: np.ndarray, rv_point: Optional[np.ndarray], size: float,
           source: str) -> CanonicalFrame:
    if rv_point is None:
        raise AtlasDataError(source, "no RV found (label 3 or rv_point_ras): the canonical x axis points to the RV")
    try:
        axes = heart_axes(axis, np.asarray(rv_point, float) - centroid)
    except ValueError as error:
        raise AtlasDataError(source, "the RV lies on the LV long axis: cannot orient the canonical x axis") from error
    return CanonicalFrame(centroid, axes, size)


def canonical_frame_from_labels(labels: ImageSequence, frame: int = 0, source: Optional[str] = None) -> CanonicalFrame:
    """Canonical frame from a label map (0 bg, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool) at
    frame ``frame`` (ED). Raises :class:`AtlasDataError` for an empty myocardium, no RV or NaNs."""
    source = source or labels.name or "label map"
    if not 0 <= frame < labels.n_frames:
        raise AtlasDataError(source, f"frame {frame} out of range ({labels.n_frames} frames)")
    array = np.asarray(labels.array[frame])
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise AtlasDataError(source, f"label map frame {frame} contains NaN or infinite values")

    def centres(label: int) -> np.ndarray:
        return label_points_ras(array, labels.ijk_to_ras, (label,))

    myocardium = centres(MYOCARDIUM_LABEL)
    if len(myocardium) < 10:
        raise AtlasDataError(source, f"frame {frame} has no LV myocardium (label 2): empty label map?")
    centroid = myocardium.mean(axis=0)
    covariance = np.cov((myocardium - centroid).T)
    blood = centres(LV_BLOOD_LABEL)
    if len(blood) >= 50:
        axis = centreline_axis(blood)[1]
        hint = centroid - blood.mean(axis=0)
        axis = axis if axis @ hint >= 0 else -axis
    else:
        hint = centroid - blood.mean(axis=0) if len(blood) >= 10 else None
        axis = _axis_from_moments(myocardium, centroid, covariance, hint, source)
    rv = centres(RV_BLOOD_LABEL)
    size = float(np.sqrt(np.trace(covariance)))
    return _frame(centroid, axis, rv.mean(axis=0) if len(rv) else None, size, source)


def mesh_volume_moments(vertices: np.ndarray, faces: np.ndarray):
    """Exact (volume mm^3, centroid (3,), covariance (3, 3)) of the solid enclosed by a closed, outward
    oriented triangle mesh (signed tetrahedra from the origin)."""
    corners = np.asarray(vertices, float)[np.asarray(faces)]  # (m, 3, 3)
    shift = corners.reshape(-1, 3).mean(axis=0)
    a, b, c = (corners - shift).transpose(1, 0, 2)
    signed = np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0
    volume = signed.sum()
    if not abs(volume) > 0:
        raise AtlasDataError(None, "mesh encloses no volume")
    centroid_rel = (signed[:, None] * (a + b + c) / 4.0).sum(axis=0) / volume
    total = a + b + c
    second = (signed[:, None, None] / 20.0 * (np.einsum("ni,nj->nij", a, a) + np.einsum("ni,nj->nij", b, b)
                                              + np.einsum("ni,nj->nij", c, c)
                                              + np.einsum("ni,nj->nij", total, total))).sum(axis=0)
    covariance = second / volume - np.outer(centroid_rel, centroid_rel)
    return float(abs(volume)), centroid_rel + shift, covariance


def canonical_frame_from_mesh(vertices: np.ndarray, faces: np.ndarray, rv_point_ras: Optional[np.ndarray],
                              source: str = "mesh") -> CanonicalFrame:
    """Canonical frame from a closed LV myocardium mesh (RAS mm) at ED and a point in the RV (a
    myocardium mesh alone does not show where the RV is)."""
    vertices = np.asarray(vertices, float)
    if not np.all(np.isfinite(vertices)):
        raise AtlasDataError(source, "mesh vertices contain NaN or infinite values")
    _, centroid, covariance = mesh_volume_moments(vertices, faces)
    axis = _axis_from_moments(vertices, centroid, covariance, None, source)
    return _frame(centroid, axis, rv_point_ras, float(np.sqrt(np.trace(covariance))), source)


__all__ = ["CanonicalFrame", "canonical_frame_from_labels", "canonical_frame_from_mesh", "mesh_volume_moments",
           "MYOCARDIUM_LABEL", "LV_BLOOD_LABEL", "RV_BLOOD_LABEL"]
