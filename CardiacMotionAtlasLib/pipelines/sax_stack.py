"""Deprecated: use :meth:`CineStudy.sax_stack <CardiacMotionAtlasLib.data.cine_study.CineStudy.sax_stack>`."""

from __future__ import annotations

from ..data.cine_study import CineStudy
from ..data.image_sequence import ImageSequence


def sax_stack(study: CineStudy, labels: bool = False) -> ImageSequence:
    """Deprecated wrapper of ``study.sax_stack(labels=labels)`` (kept until every importer has moved)."""
    return study.sax_stack(labels=labels)


__all__ = ["sax_stack"]
