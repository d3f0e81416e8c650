"""The SAX slices of a cine study as one ``(t, z, y, x)`` volume sequence (disk-summation geometry)."""

from __future__ import annotations

import numpy as np

from ..data.cine_study import CineStudy
from ..data.image_sequence import ImageSequence
from ..errors import CardiacMotionAtlasError
from ..io.layout_common import stack_slices


def sax_stack(study: CineStudy, labels: bool = False) -> ImageSequence:
    """Stack the SAX slices (parallel, equally spaced) into one sequence whose k spacing is the slice
    *spacing*, so label voxel counts times voxel volume give Simpson disk-summation volumes (ml)."""
    sax = study.sax
    if not sax:
        raise CardiacMotionAtlasError(f"study {study.subject_id!r} has no SAX slices")
    matrix, _, _ = stack_slices(sax)
    if labels:
        if any(s.labels is None for s in sax):
            raise CardiacMotionAtlasError(f"study {study.subject_id!r}: some SAX slices have no labels")
        array = np.concatenate([s.labels.array for s in sax], axis=1)
    else:
        array = np.concatenate([s.image.array for s in sax], axis=1)
    first = sax[0].image
    return ImageSequence(array, matrix, first.phases, first.cycle_length_s, first.trigger_times_s,
                         name=f"{study.subject_id}_sax{'_labels' if labels else ''}")


__all__ = ["sax_stack"]
