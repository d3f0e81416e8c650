"""A cine CMR study: a set of 2D+t slices (SAX stack and LAX views), each with its own geometry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import CardiacMotionAtlasError
from .image_sequence import ImageSequence

VIEW_NAMES = ("SAX", "2CH", "3CH", "4CH")
"""Recognised slice views: short axis and the 2-, 3-, 4-chamber long-axis views."""


@dataclass
class CineSlice:
    """One 2D+t slice: ``image.array`` is ``(t, 1, y, x)``; k is the through-plane axis whose spacing
    is the slice thickness (mm).

    Attributes:
        image: the intensities with the slice's IJK->RAS (as stored in the header, i.e. nominal).
        view: one of :data:`VIEW_NAMES`.
        labels: optional ``(t, 1, y, x)`` label sequence (0 bg, 1 LV BP, 2 LV myo, 3 RV BP); frames
            without labels are listed by ``labelled_frames``.
        labelled_frames: indices of frames whose labels are valid (all frames if None and labels given).
        slice_index: position within its stack (0 = most basal for SAX).
    """

    image: ImageSequence
    view: str = "SAX"
    labels: Optional[ImageSequence] = None
    labelled_frames: Optional[List[int]] = None
    slice_index: int = 0

    def __post_init__(self) -> None:
        if self.view not in VIEW_NAMES:
            raise CardiacMotionAtlasError(f"unknown view {self.view!r}; expected one of {VIEW_NAMES}")
        if self.image.array.shape[1] != 1:
            raise CardiacMotionAtlasError(
                f"slice {self.image.name!r}: a cine slice has one voxel through-plane, "
                f"got shape {self.image.array.shape}"
            )
        if self.labels is not None:
            if self.labels.array.shape != self.image.array.shape:
                raise CardiacMotionAtlasError(
                    f"slice {self.image.name!r}: labels shape {self.labels.array.shape} "
                    f"!= image shape {self.image.array.shape}"
                )
            if self.labelled_frames is None:
                self.labelled_frames = list(range(self.image.n_frames))

    @property
    def n_frames(self) -> int:
        return self.image.n_frames

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal in RAS (the k axis)."""
        return self.image.direction[:, 2]


def stack_slices(slices: Sequence[CineSlice], tolerance_mm: float = 1e-3) -> Tuple[np.ndarray, float, bool]:
    """(stack IJK->RAS, slice thickness mm, normal_flipped) for parallel, equally spaced slices whose
    origins step along their normal. Raises :class:`CardiacMotionAtlasError` otherwise."""
    first = slices[0].image
    m0 = first.ijk_to_ras
    for s in slices[1:]:
        if s.image.array.shape[1:] != first.array.shape[1:]:
            raise CardiacMotionAtlasError(f"SAX slice {s.slice_index}: size {s.image.array.shape[1:]} differs "
                                          f"from the first slice {first.array.shape[1:]}")
        if not np.allclose(s.image.ijk_to_ras[:3, :2], m0[:3, :2], atol=1e-4):
            raise CardiacMotionAtlasError(f"SAX slice {s.slice_index}: in-plane axes differ from the first slice; "
                                          "slices must be parallel with the same pixel grid")
    thickness = float(first.spacing[2])
    normal = first.direction[:, 2]
    stack = m0.copy()
    flipped = False
    if len(slices) > 1:
        origins = np.array([s.image.origin for s in slices])
        steps = np.diff(origins, axis=0)
        step = steps.mean(axis=0)
        if np.abs(steps - step).max() > tolerance_mm:
            raise CardiacMotionAtlasError("SAX slices are not equally spaced (origin steps differ by "
                                          f"{np.abs(steps - step).max():.3g} mm)")
        length = float(np.linalg.norm(step))
        if length <= tolerance_mm or np.linalg.norm(np.cross(step / length, normal)) * length > tolerance_mm:
            raise CardiacMotionAtlasError("SAX slice origins do not step along the slice normal")
        stack[:3, 2] = step
        flipped = bool(step @ normal < 0)
    return stack, thickness, flipped


@dataclass
class CineStudy:
    """All cine slices of one subject.

    Attributes:
        subject_id: identifier.
        slices: SAX slices ordered base->apex, then LAX slices.
        ed_frame, es_frame: frame indices of end-diastole and end-systole, if known.
        cycle_length_s: RR interval (s).
    """

    subject_id: str
    slices: List[CineSlice]
    ed_frame: int = 0
    es_frame: Optional[int] = None
    cycle_length_s: Optional[float] = None
    metadata: Dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.slices:
            raise CardiacMotionAtlasError(f"study {self.subject_id!r} has no slices")
        counts = {s.n_frames for s in self.slices}
        if len(counts) != 1:
            raise CardiacMotionAtlasError(
                f"study {self.subject_id!r}: slices have different frame counts {sorted(counts)}"
            )

    @property
    def n_frames(self) -> int:
        return self.slices[0].n_frames

    def view(self, name: str) -> List[CineSlice]:
        """All slices of one view, in stored order."""
        return [s for s in self.slices if s.view == name]

    @property
    def sax(self) -> List[CineSlice]:
        return self.view("SAX")

    @property
    def lax(self) -> List[CineSlice]:
        return [s for s in self.slices if s.view != "SAX"]

    def sax_stack(self, labels: bool = False) -> ImageSequence:
        """The SAX slices (parallel, equally spaced) as one ``(t, z, y, x)`` sequence (RAS IJK->RAS) whose k
        spacing is the slice *spacing*, so label voxel counts times voxel volume give Simpson disk-summation
        volumes (ml). ``labels=True`` stacks the slices' labels as stored. Raises
        :class:`CardiacMotionAtlasError` (no SAX slice, missing labels, slices not a stack)."""
        sax = self.sax
        if not sax:
            raise CardiacMotionAtlasError(f"study {self.subject_id!r} has no SAX slices")
        matrix, _, _ = stack_slices(sax)
        if labels:
            if any(s.labels is None for s in sax):
                raise CardiacMotionAtlasError(f"study {self.subject_id!r}: some SAX slices have no labels")
            array = np.concatenate([s.labels.array for s in sax], axis=1)
        else:
            array = np.concatenate([s.image.array for s in sax], axis=1)
        first = sax[0].image
        return ImageSequence(array, matrix, first.phases, first.cycle_length_s, first.trigger_times_s,
                             name=f"{self.subject_id}_sax{'_labels' if labels else ''}")


__all__ = ["VIEW_NAMES", "CineSlice", "CineStudy", "stack_slices"]
