"""Errors of NISF++: every one names the subject (study folder or id), the slice and the problem."""

from __future__ import annotations

from ..errors import CardiacMotionAtlasError, CineStudyError


class NISFError(CardiacMotionAtlasError):
    """Base class of NISF++'s own errors."""


class NISFInputError(CineStudyError, NISFError):
    """A study cannot be modelled: slices with mismatched frame counts, NaN/inf intensities, a degenerate
    direction matrix, no SAX slice, planes that do not define a heart frame...

    The message starts with the source (study folder, else subject id):
    ``phantom003: slice la_4ch: 24 frames, expected 25 (like sax_00)``.
    """


class NISFConfigError(NISFError, ValueError):
    """A NISF++ option is out of range or inconsistent (e.g. a checkpoint of another network size)."""


__all__ = ["NISFError", "NISFInputError", "NISFConfigError"]
