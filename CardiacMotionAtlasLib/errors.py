"""Error types of the library. Every error about input names the offending file and the problem."""

from __future__ import annotations

import os
from typing import Optional, Union

PathLike = Union[str, os.PathLike]


class CardiacMotionAtlasError(Exception):
    """Base class of every error the library raises on purpose."""


class InputFileError(CardiacMotionAtlasError):
    """A file (or folder) given as input is missing, unreadable or invalid.

    The message always starts with the path: ``InputFileError: study/sax.nii.gz: contains NaN``.
    """

    def __init__(self, path: Optional[PathLike], problem: str) -> None:
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class CineStudyError(InputFileError):
    """A cine study on disk is inconsistent (mismatched frame counts, missing views, bad layout)."""


class GeometryError(CardiacMotionAtlasError):
    """An IJK->RAS matrix or slice geometry is invalid (non-orthonormal direction, zero spacing)."""


class CheckpointError(InputFileError):
    """A checkpoint is missing, corrupt, of another format version, or of another model."""


__all__ = [
    "CardiacMotionAtlasError",
    "InputFileError",
    "CineStudyError",
    "GeometryError",
    "CheckpointError",
]
