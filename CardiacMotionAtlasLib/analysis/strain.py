"""Myocardial strain (radial, circumferential, longitudinal) in the LV's local frame, in %.

Lagrangian strain relative to ED (the reference frame), for a unit direction ``d`` at an ED material
point and ``F = I + grad u`` the deformation gradient of the ED -> t motion (RAS mm), by ``measure``:

- ``"normal"`` (default): ``d . F d - 1``, the length change of a material segment that lay along ``d``
  at ED, measured along ``d`` (the normal component of ``F - I`` in the LV frame). It is exact (not a
  small-strain approximation) for the projected length, e.g. the LV's base-apex distance along its axis
  (mitral annular descent) or the wall thickness along the ED radial line, and shear (torsion, slices
  moving differently in-plane) does not enter it. Radial thickening > 0, circumferential and
  longitudinal shortening < 0.
- ``"stretch"``: ``|F d| - 1``, the engineering fibre strain (``sqrt(1 + 2 E_dd) - 1`` with ``E`` the
  Green-Lagrange tensor). Shear adds ``+s^2/2`` to it whatever its sign, so a field with little
  through-plane motion but inter-slice in-plane differences (a SAX-only estimate) reads a shortening
  ventricle as lengthening: the cause of positive longitudinal "strain" from CardioMorphNet's DVFs.

Directions in the LV frame (long axis ``l``, centre ``c``): radial ``r`` = the part of ``p - c``
perpendicular to ``l``, normalised; circumferential ``l x r``; longitudinal ``l`` (the sign of ``l``,
base->apex or apex->base, changes no strain: both measures are even in ``d``). Global strain = mean
over the ED myocardium. Two sources:

- :func:`strain_from_displacement`: ``F`` by central finite differences of a dense RAS mm field
  ``(T, 3, z, y, x)`` on its voxel grid (the estimated DVFs);
- :func:`analytic_strain`: ``F d`` by central differences of an exact motion ``positions(points, phase)``
  (the phantom's :meth:`PhantomHeart.positions`), step ``h_mm``.
"""

from __future__ import annotations

from typing import Callable, Dict, Sequence, Tuple

import numpy as np

from ..errors import CardiacMotionAtlasError
from ..geometry.affine import apply_affine
from ..geometry.deformation import deformation_gradients
from ..geometry.heart_frame import label_points_ras, perpendicular_part

STRAIN_NAMES = ("radial", "circumferential", "longitudinal")
STRAIN_MEASURES = ("normal", "stretch")
DEFAULT_MEASURE = "normal"


def _check_measure(measure: str) -> str:
    if measure not in STRAIN_MEASURES:
        raise CardiacMotionAtlasError(f"unknown strain measure {measure!r}; expected one of {', '.join(STRAIN_MEASURES)}")
    return measure


def directional_strain(stretched: np.ndarray, directions: np.ndarray, measure: str = DEFAULT_MEASURE) -> np.ndarray:
    """Strain (%) of the images ``F d`` (``(..., 3)``) of unit directions ``d`` (same shape) by ``measure``."""
    if _check_measure(measure) == "normal":
        return 100.0 * ((stretched * directions).sum(-1) - 1.0)
    return 100.0 * (np.linalg.norm(stretched, axis=-1) - 1.0)


def lv_directions(points_ras: np.ndarray, centre_ras: np.ndarray, long_axis: np.ndarray) -> np.ndarray:
    """Unit radial, circumferential and longitudinal directions at RAS points: ``(n, 3, 3)`` (axis 1 in
    the order of :data:`STRAIN_NAMES`)."""
    axis = np.asarray(long_axis, float)
    norm = np.linalg.norm(axis)
    if not np.isfinite(norm) or norm == 0:
        raise CardiacMotionAtlasError(f"long axis {long_axis} is not a direction")
    axis = axis / norm
    offset = np.asarray(points_ras, float) - np.asarray(centre_ras, float)
    radial = perpendicular_part(offset, axis)
    length = np.linalg.norm(radial, axis=1, keepdims=True)
    radial = np.where(length > 1e-9, radial / np.maximum(length, 1e-9), 0.0)
    circumferential = np.cross(axis, radial)
    longitudinal = np.broadcast_to(axis, radial.shape)
    return np.stack([radial, circumferential, longitudinal], axis=1)


def lv_frame_from_labels(labels_zyx: np.ndarray, ijk_to_ras: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(centre_ras, long_axis)`` of an ED label map on a SAX grid: the centroid of LV blood pool +
    myocardium (labels 1, 2) and the grid's k axis (the SAX stack's normal, parallel to the long axis)."""
    points = label_points_ras(labels_zyx, ijk_to_ras, (1, 2))
    if len(points) == 0:
        raise CardiacMotionAtlasError("no LV (labels 1, 2) in the ED labels: cannot place the LV frame")
    centre = points.mean(0)
    axis = np.asarray(ijk_to_ras, float)[:3, 2]
    return centre, axis / np.linalg.norm(axis)


def strain_from_displacement(displacement_ras: np.ndarray, ijk_to_ras: np.ndarray, myocardium: np.ndarray,
                             centre_ras: np.ndarray, long_axis: np.ndarray,
                             measure: str = DEFAULT_MEASURE) -> Dict[str, np.ndarray]:
    """Global radial / circumferential / longitudinal strain (%) per frame, ``{name: (T,)}``, of ED -> t
    fields ``(T, 3, z, y, x)`` (RAS mm, on the ED grid) over the ED myocardium mask ``(z, y, x)``."""
    _check_measure(measure)
    mask = np.asarray(myocardium, bool)
    if not mask.any():
        raise CardiacMotionAtlasError("empty myocardium mask: no strain")
    F = deformation_gradients(displacement_ras, ijk_to_ras)[:, mask]  # (T, n, 3, 3)
    k, j, i = np.nonzero(mask)
    points = apply_affine(ijk_to_ras, np.stack([i, j, k], 1).astype(float))
    directions = lv_directions(points, centre_ras, long_axis)  # (n, 3 names, 3)
    stretched = np.einsum("tnab,ndb->tnda", F, directions)
    strain = directional_strain(stretched, directions[None], measure)  # (T, n, 3)
    return {name: strain[:, :, index].mean(1) for index, name in enumerate(STRAIN_NAMES)}


def analytic_strain(positions: Callable[[np.ndarray, float], np.ndarray], points_ras: np.ndarray,
                    phases: Sequence[float], centre_ras: np.ndarray, long_axis: np.ndarray,
                    h_mm: float = 0.5, measure: str = DEFAULT_MEASURE) -> Dict[str, np.ndarray]:
    """Global strain (%) per phase of an exact motion ``positions(ed_points_ras, phase) -> ras``, by
    central differences of step ``h_mm`` along each direction at the ED points ``(n, 3)``."""
    _check_measure(measure)
    points = np.asarray(points_ras, float).reshape(-1, 3)
    if points.size == 0:
        raise CardiacMotionAtlasError("no points for the analytic strain")
    directions = lv_directions(points, centre_ras, long_axis)
    out = {name: [] for name in STRAIN_NAMES}
    for phase in phases:
        for index, name in enumerate(STRAIN_NAMES):
            d = directions[:, index]
            plus = positions(points + h_mm * d, float(phase))
            minus = positions(points - h_mm * d, float(phase))
            out[name].append(float(directional_strain((plus - minus) / (2 * h_mm), d, measure).mean()))
    return {name: np.asarray(values) for name, values in out.items()}


__all__ = ["DEFAULT_MEASURE", "STRAIN_MEASURES", "STRAIN_NAMES", "analytic_strain", "directional_strain", "deformation_gradients", "lv_directions", "lv_frame_from_labels",
           "strain_from_displacement"]
