"""Errors of CardioMorphNet (``motion/``): each names the input (file, subject or argument) and the problem."""

from __future__ import annotations

from ..errors import CardiacMotionAtlasError, CineStudyError


class MotionError(CardiacMotionAtlasError):
    """Base class of the motion estimator's own errors."""


class MotionInputError(CineStudyError, MotionError):
    """A sequence cannot be used: one frame only, NaN/inf intensities, labels on another grid, missing
    ED/ES labels for training... The message starts with the source (file, folder or subject id)."""


class MotionConfigError(MotionError, ValueError):
    """A CardioMorphNet option is out of range or inconsistent."""


__all__ = ["MotionError", "MotionInputError", "MotionConfigError"]
