"""Meshes over the cycle with one shared connectivity (dense correspondence across frames)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from ..errors import CardiacMotionAtlasError


@dataclass
class MeshSequence:
    """Triangle meshes sharing faces: vertex ``i`` is the same material point in every frame.

    Attributes:
        vertices: ``(t, n, 3)`` RAS mm.
        faces: ``(m, 3)`` vertex indices, counter-clockwise seen from outside (outward normals).
        phases: ``(t,)`` normalised cardiac phase, ED = 0.
        point_data: name -> ``(t, n)`` or ``(t, n, c)`` per-vertex values (e.g. displacement magnitude).
    """

    vertices: np.ndarray
    faces: np.ndarray
    phases: Optional[np.ndarray] = None
    name: str = ""
    point_data: Dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vertices = np.asarray(self.vertices, dtype=float)
        if self.vertices.ndim == 2:
            self.vertices = self.vertices[None]
        self.faces = np.asarray(self.faces, dtype=np.int64)
        if self.vertices.ndim != 3 or self.vertices.shape[2] != 3:
            raise CardiacMotionAtlasError(f"mesh {self.name!r}: vertices must be (t, n, 3)")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise CardiacMotionAtlasError(f"mesh {self.name!r}: faces must be (m, 3)")
        if self.faces.size and (self.faces.min() < 0 or self.faces.max() >= self.vertices.shape[1]):
            raise CardiacMotionAtlasError(f"mesh {self.name!r}: face index out of range")
        if self.phases is None:
            self.phases = np.arange(self.n_frames, dtype=float) / self.n_frames
        self.phases = np.asarray(self.phases, dtype=float).reshape(-1)
        if self.phases.shape[0] != self.n_frames:
            raise CardiacMotionAtlasError(f"mesh {self.name!r}: phases do not match frames")

    @property
    def n_frames(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[1])

    def frame(self, index: int) -> "MeshSequence":
        """A one-frame sequence holding frame ``index``."""
        return MeshSequence(
            self.vertices[index : index + 1],
            self.faces,
            self.phases[index : index + 1],
            self.name,
            {k: v[index : index + 1] for k, v in self.point_data.items()},
        )


__all__ = ["MeshSequence"]
