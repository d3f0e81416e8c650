"""The data model every method reads and writes (RAS mm, ``(t, z, y, x)`` arrays, phase in [0, 1))."""

from .cine_study import VIEW_NAMES, CineSlice, CineStudy
from .displacement_field import DisplacementField
from .image_sequence import ImageSequence
from .mesh_sequence import MeshSequence

__all__ = ["VIEW_NAMES", "CineSlice", "CineStudy", "DisplacementField", "ImageSequence", "MeshSequence"]
