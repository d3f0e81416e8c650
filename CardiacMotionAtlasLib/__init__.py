"""CardiacMotionAtlasLib: 3D+t cardiac shape and motion modelling (pure Python; no Slicer imports
outside :mod:`CardiacMotionAtlasLib.mrml`).

World frame RAS mm; arrays ``(t, z, y, x)``; normalised cardiac phase ``t`` in [0, 1), ED at 0.
"""

__version__ = "0.1.0"

from .errors import (  # noqa: E402
    CardiacMotionAtlasError,
    CheckpointError,
    CineStudyError,
    GeometryError,
    InputFileError,
)

__all__ = [
    "__version__",
    "CardiacMotionAtlasError",
    "CheckpointError",
    "CineStudyError",
    "GeometryError",
    "InputFileError",
]
