"""The heart frame shared by every method: origin at the LV centre, z along the LV long axis (base ->
apex), x towards the RV (orthogonalised against z), ``y = z x x`` (right-handed), and a scale in mm per
canonical unit.

``canonical = R^T (x_ras - origin) / scale_mm`` with ``R = [x y z]`` (columns, unit RAS vectors); the
map is a similarity, so outputs always go back to RAS mm. Each method decides *where* the origin, the
long axis and the RV are (atlas: myocardium moments and the blood pool's centreline; NISF++: the slice
planes; strain: the SAX grid) and how its scale is chosen; the construction of the axes, the RAS <->
frame matrices, the checks and the stored record are written here once (:class:`HeartFrame`).
"""

from __future__ import annotations

from typing import Callable, Dict, Iterable, Tuple

import numpy as np

from .affine import apply_affine

ErrorFactory = Callable[[str], Exception]


def perpendicular_part(vectors: np.ndarray, unit_axis: np.ndarray) -> np.ndarray:
    """The part of ``vectors`` ``(..., 3)`` orthogonal to the unit ``unit_axis`` ``(3,)``."""
    vectors = np.asarray(vectors, float)
    return vectors - (vectors @ unit_axis)[..., None] * unit_axis


def heart_axes(long_axis: np.ndarray, towards_rv: np.ndarray) -> np.ndarray:
    """``(3, 3)`` columns x (``towards_rv`` orthogonalised against the unit ``long_axis``), y = z x x, z =
    ``long_axis`` (base -> apex). Raises ``ValueError`` when ``towards_rv`` is (nearly, < 1e-3) along z."""
    z = np.asarray(long_axis, float)
    towards = perpendicular_part(towards_rv, z)
    length = np.linalg.norm(towards)
    if length < 1e-3:
        raise ValueError("the RV direction lies along the LV long axis")
    x = towards / length
    return np.stack([x, np.cross(z, x), z], axis=1)


def label_points_ras(labels_zyx: np.ndarray, ijk_to_ras: np.ndarray, values: Iterable[int]) -> np.ndarray:
    """RAS mm ``(n, 3)`` of the voxel centres of a ``(z, y, x)`` label map whose label is in ``values``."""
    k, j, i = np.nonzero(np.isin(labels_zyx, tuple(values)))
    return apply_affine(ijk_to_ras, np.stack([i, j, k], axis=1).astype(float))


class HeartFrame:
    """RAS mm <-> heart frame of one subject (see the module docstring).

    Subclasses are dataclasses with ``origin_ras`` ``(3,)`` (RAS mm), ``axes_ras`` ``(3, 3)`` (columns x, y,
    z as unit RAS vectors) and a ``scale_mm`` (mm per canonical unit, a field or a property); they call
    :meth:`_check_axes` after setting them."""

    origin_ras: np.ndarray
    axes_ras: np.ndarray
    scale_mm: float

    def _check_axes(self, name: str, error: ErrorFactory) -> None:
        """Coerce the fields to arrays and refuse non-finite entries, a non-positive scale or axes that are
        not a right-handed orthonormal basis (``error(message)`` is raised; ``name`` starts the message)."""
        self.origin_ras = np.asarray(self.origin_ras, float).reshape(3)
        self.axes_ras = np.asarray(self.axes_ras, float).reshape(3, 3)
        scale = self.scale_mm
        if not (np.all(np.isfinite(self.origin_ras)) and np.all(np.isfinite(self.axes_ras)) and np.isfinite(scale)
                and scale > 0):
            raise error(f"{name} has non-finite entries or a non-positive scale")
        if np.abs(self.axes_ras.T @ self.axes_ras - np.eye(3)).max() > 1e-6 or np.linalg.det(self.axes_ras) < 0:
            raise error(f"{name} axes are not a right-handed orthonormal basis")

    @property
    def long_axis(self) -> np.ndarray:
        """Unit base -> apex direction (RAS)."""
        return self.axes_ras[:, 2]

    @property
    def local_to_ras(self) -> np.ndarray:
        """4x4: LV-aligned local mm (rotation + translation only) -> RAS mm."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.axes_ras
        matrix[:3, 3] = self.origin_ras
        return matrix

    @property
    def canonical_to_ras(self) -> np.ndarray:
        """4x4 similarity: canonical units -> RAS mm."""
        matrix = self.local_to_ras
        matrix[:3, :3] *= self.scale_mm
        return matrix

    @property
    def ras_to_canonical(self) -> np.ndarray:
        """4x4 similarity: RAS mm -> canonical units (the exact inverse, written out)."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.axes_ras.T / self.scale_mm
        matrix[:3, 3] = -self.axes_ras.T @ self.origin_ras / self.scale_mm
        return matrix

    def to_local(self, points_ras: np.ndarray) -> np.ndarray:
        """RAS mm -> LV-aligned local mm, ``(..., 3)``."""
        return (np.asarray(points_ras, float) - self.origin_ras) @ self.axes_ras

    def local_to_ras_points(self, points_local: np.ndarray) -> np.ndarray:
        """LV-aligned local mm -> RAS mm, ``(..., 3)``."""
        return np.asarray(points_local, float) @ self.axes_ras.T + self.origin_ras

    def to_canonical(self, points_ras: np.ndarray) -> np.ndarray:
        """RAS mm -> canonical units, ``(..., 3)``."""
        return self.to_local(points_ras) / self.scale_mm

    def to_ras(self, points_canonical: np.ndarray) -> np.ndarray:
        """Canonical units -> RAS mm, ``(..., 3)``."""
        return apply_affine(self.canonical_to_ras, points_canonical)

    def axes_dict(self) -> Dict:
        """``{"origin_ras": [3 floats], "axes_ras": [[3 floats] x 3]}``: the part of the stored record that
        every frame shares (plain lists, readable with ``weights_only=True``)."""
        return {"origin_ras": [float(v) for v in self.origin_ras],
                "axes_ras": [[float(v) for v in row] for row in self.axes_ras]}

    @staticmethod
    def axes_from_dict(data: Dict) -> Tuple[np.ndarray, np.ndarray]:
        """``(origin_ras, axes_ras)`` arrays of a record written by :meth:`axes_dict` (``KeyError``,
        ``TypeError`` or ``ValueError`` when it is not one)."""
        return np.asarray(data["origin_ras"], float), np.asarray(data["axes_ras"], float)


__all__ = ["HeartFrame", "heart_axes", "label_points_ras", "perpendicular_part"]
