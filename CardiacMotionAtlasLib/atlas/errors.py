"""Errors of the atlas: every one names the subject (or file) and the problem."""

from __future__ import annotations

from typing import Optional

from ..errors import CardiacMotionAtlasError


class AtlasError(CardiacMotionAtlasError):
    """Base class of the atlas' own errors."""


class AtlasDataError(AtlasError, ValueError):
    """Input data for the atlas is unusable: empty label map, wrong frame count, NaNs, an open mesh...

    The message starts with the source (subject id or file): ``phantom003: frame 2 has no LV
    myocardium (label 2)``.
    """

    def __init__(self, source: Optional[str], problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"{source}: {problem}" if source else problem)


class AtlasConfigError(AtlasError, ValueError):
    """An atlas, fitting or meshing option is out of range or unknown."""


__all__ = ["AtlasError", "AtlasDataError", "AtlasConfigError"]
