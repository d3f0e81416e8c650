"""Errors of the CT motion synthesis: every one names the input (file, subject or array) and the problem."""

from __future__ import annotations

from ..errors import CardiacMotionAtlasError


class SynthesisError(CardiacMotionAtlasError, ValueError):
    """Bad input to the synthesis: a frame that is not one 3D volume, NaN/inf values, a flow whose grid
    or geometry differs from its frame's, an option out of range. The message starts with the source."""


__all__ = ["SynthesisError"]
