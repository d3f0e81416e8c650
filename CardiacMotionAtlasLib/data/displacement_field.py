"""A dense 3D displacement field in RAS millimetres, optionally with per-voxel uncertainty."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.ndimage import map_coordinates

from ..errors import CardiacMotionAtlasError
from ..geometry.affine import apply_affine, check_ijk_to_ras


@dataclass
class DisplacementField:
    """Displacements ``u`` on a voxel grid: the point at RAS ``x`` (phase ``source_phase``) moves to
    ``x + u(x)`` at ``target_phase``.

    Attributes:
        vectors: ``(3, z, y, x)``; components are RAS (R, A, S) millimetres.
        ijk_to_ras: 4x4 voxel -> RAS mm matrix of the grid.
        uncertainty: optional ``(z, y, x)`` per-voxel uncertainty (e.g. differential entropy, nats).
        source_phase, target_phase: normalised cardiac phases.
    """

    vectors: np.ndarray
    ijk_to_ras: np.ndarray
    uncertainty: Optional[np.ndarray] = None
    source_phase: float = 0.0
    target_phase: float = 0.0
    name: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 4 or self.vectors.shape[0] != 3:
            raise CardiacMotionAtlasError(
                f"displacement field {self.name!r}: vectors must be (3, z, y, x), got {self.vectors.shape}"
            )
        self.ijk_to_ras = check_ijk_to_ras(self.ijk_to_ras)
        if self.uncertainty is not None:
            self.uncertainty = np.asarray(self.uncertainty, dtype=np.float32)
            if self.uncertainty.shape != self.vectors.shape[1:]:
                raise CardiacMotionAtlasError(
                    f"displacement field {self.name!r}: uncertainty shape {self.uncertainty.shape} "
                    f"!= grid {self.vectors.shape[1:]}"
                )

    @property
    def shape_zyx(self) -> tuple:
        return tuple(int(s) for s in self.vectors.shape[1:])

    def sample(self, points_ras: np.ndarray, order: int = 1) -> np.ndarray:
        """Displacement (RAS mm) at arbitrary RAS points ``(n, 3)`` by spline interpolation of
        ``order`` (1 = trilinear); zero outside the grid."""
        points_ras = np.asarray(points_ras, dtype=float).reshape(-1, 3)
        ijk = apply_affine(np.linalg.inv(self.ijk_to_ras), points_ras)
        coords = ijk[:, ::-1].T  # (k, j, i) rows for (z, y, x) array axes
        return np.stack(
            [map_coordinates(c.astype(float), coords, order=order, mode="constant") for c in self.vectors],
            axis=-1,
        )


__all__ = ["DisplacementField"]
