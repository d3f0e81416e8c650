"""A 3D+t image (intensities or labels) with its geometry.

Array order ``(t, z, y, x)`` = ``(t, k, j, i)``; ``ijk_to_ras`` maps ``(i, j, k, 1)`` to RAS mm.
Phases are normalised cardiac phases in ``[0, 1)`` with ED at 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import CardiacMotionAtlasError
from ..geometry.affine import apply_affine, check_ijk_to_ras, decompose_ijk_to_ras


@dataclass
class ImageSequence:
    """Intensity or label volumes over the cardiac cycle.

    Attributes:
        array: ``(t, z, y, x)`` voxel values (float for intensities, integer for labels).
        ijk_to_ras: 4x4 voxel-index -> RAS mm matrix, shared by all frames.
        phases: ``(t,)`` normalised cardiac phase of each frame, ED = 0.
        cycle_length_s: RR interval in seconds, if known.
        trigger_times_s: ``(t,)`` trigger times in seconds, if known.
        name: free-text description (view name, file name).
    """

    array: np.ndarray
    ijk_to_ras: np.ndarray
    phases: Optional[np.ndarray] = None
    cycle_length_s: Optional[float] = None
    trigger_times_s: Optional[np.ndarray] = None
    name: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 4:
            raise CardiacMotionAtlasError(
                f"ImageSequence {self.name!r}: array must be (t, z, y, x), got shape {self.array.shape}"
            )
        self.ijk_to_ras = check_ijk_to_ras(self.ijk_to_ras)
        n_frames = self.array.shape[0]
        if self.phases is None:
            self.phases = np.arange(n_frames, dtype=float) / n_frames
        self.phases = np.asarray(self.phases, dtype=float).reshape(-1)
        if self.phases.shape[0] != n_frames:
            raise CardiacMotionAtlasError(
                f"ImageSequence {self.name!r}: {self.phases.shape[0]} phases for {n_frames} frames"
            )
        if self.trigger_times_s is not None:
            self.trigger_times_s = np.asarray(self.trigger_times_s, dtype=float).reshape(-1)

    @property
    def n_frames(self) -> int:
        return int(self.array.shape[0])

    @property
    def shape_zyx(self) -> tuple:
        return tuple(int(s) for s in self.array.shape[1:])

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size (mm) along i, j, k."""
        return decompose_ijk_to_ras(self.ijk_to_ras)[2]

    @property
    def origin(self) -> np.ndarray:
        """RAS mm position of voxel (0, 0, 0)."""
        return self.ijk_to_ras[:3, 3].copy()

    @property
    def direction(self) -> np.ndarray:
        """3x3 matrix whose columns are the unit i, j, k axes in RAS."""
        return decompose_ijk_to_ras(self.ijk_to_ras)[1]

    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def voxel_centres_ras(self) -> np.ndarray:
        """RAS mm coordinates of every voxel centre, shape ``(z, y, x, 3)``."""
        nz, ny, nx = self.shape_zyx
        k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
        ijk = np.stack([i, j, k], axis=-1).astype(float)
        return apply_affine(self.ijk_to_ras, ijk)

    def frame(self, index: int) -> np.ndarray:
        """One ``(z, y, x)`` volume."""
        return self.array[index]


__all__ = ["ImageSequence"]
