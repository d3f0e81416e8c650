"""Input sequences for CardioMorphNet: SAX volumes ``(t, z, y, x)`` with their geometry and the frames
that carry labels (ED and ES at least, for training).

Intensities are divided by a high percentile (so tissue is ~[0, 1]); the in-plane grid is padded
(zeros, at the high end of x and y, so voxel (0, 0, 0) and the IJK->RAS matrix are unchanged) to a
multiple of the networks' downsampling factor and cropped back on output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from ..data.cine_study import CineStudy
from ..data.image_sequence import ImageSequence
from .errors import MotionInputError

N_CLASSES = 4  # 0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool


@dataclass
class MotionSequence:
    """One subject's SAX sequence, ready for the networks.

    Attributes:
        images: ``(t, z, y, x)`` float32, normalised intensities (unpadded).
        ijk_to_ras: 4x4 voxel -> RAS mm matrix of the SAX grid.
        phases: ``(t,)`` normalised cardiac phases, ED = 0.
        labels: ``{frame: (z, y, x) uint8}`` for the labelled frames (0 bg, 1 LV BP, 2 LV myo, 3 RV BP).
        ed_frame, es_frame: frame indices of ED and ES.
    """

    images: np.ndarray
    ijk_to_ras: np.ndarray
    phases: np.ndarray
    labels: Dict[int, np.ndarray] = field(default_factory=dict)
    ed_frame: int = 0
    es_frame: Optional[int] = None
    subject_id: str = "subject"

    @property
    def n_frames(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape_zyx(self) -> tuple:
        return tuple(int(s) for s in self.images.shape[1:])

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size (mm) along i, j, k."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    def padded_shape(self, multiple: int) -> tuple:
        nz, ny, nx = self.shape_zyx
        up = lambda n: int(np.ceil(n / multiple) * multiple)  # noqa: E731
        return nz, up(ny), up(nx)

    def image_tensor(self, multiple: int, device) -> torch.Tensor:
        """``(t, 1, z, Y, X)`` padded intensities on ``device``."""
        return pad_volume(torch.as_tensor(self.images, dtype=torch.float32, device=device)[:, None],
                          self.padded_shape(multiple))

    def label_tensor(self, frame: int, multiple: int, device) -> torch.Tensor:
        """``(1, z, Y, X)`` padded labels (long) of a labelled frame."""
        if frame not in self.labels:
            raise MotionInputError(self.subject_id, f"frame {frame} has no labels (labelled: {sorted(self.labels)})")
        labels = torch.as_tensor(self.labels[frame].astype(np.int64), device=device)[None, None].float()
        return pad_volume(labels, self.padded_shape(multiple))[:, 0].long()

    def require_training_labels(self) -> None:
        """Training needs labels at ED and ES."""
        missing = [name for name, f in (("ED", self.ed_frame), ("ES", self.es_frame)) if f is None or f not in self.labels]
        if missing:
            raise MotionInputError(self.subject_id, f"no labels at {' and '.join(missing)} (labelled frames: "
                                                    f"{sorted(self.labels)}); training needs ED and ES labels")


def pad_volume(volume: torch.Tensor, shape_zyx: Sequence[int]) -> torch.Tensor:
    """Zero-pad ``(N, C, z, y, x)`` at the high end of y and x to ``shape_zyx``."""
    dz, dy, dx = (int(s) - int(v) for s, v in zip(shape_zyx, volume.shape[2:]))
    if dz or dy < 0 or dx < 0:
        raise ValueError(f"cannot pad {tuple(volume.shape[2:])} to {tuple(shape_zyx)}")
    return torch.nn.functional.pad(volume, (0, dx, 0, dy)) if (dx or dy) else volume


def crop_volume(volume: torch.Tensor, shape_zyx: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`pad_volume` on ``(..., z, y, x)``."""
    nz, ny, nx = (int(s) for s in shape_zyx)
    return volume[..., :nz, :ny, :nx]


def normalise_intensities(array: np.ndarray, percentile: float, source: str) -> np.ndarray:
    """Divide by the ``percentile`` of the sequence (>= 0 values); error if nothing is bright."""
    scale = float(np.percentile(array, percentile))
    if not np.isfinite(scale) or scale <= 0:
        raise MotionInputError(source, f"intensities have no positive {percentile}th percentile (blank image?)")
    return (array / scale).astype(np.float32)


def prepare_sequence(images: ImageSequence, labels: Optional[ImageSequence] = None,
                     labelled_frames: Optional[Sequence[int]] = None, ed_frame: int = 0,
                     es_frame: Optional[int] = None, subject_id: Optional[str] = None,
                     intensity_percentile: float = 99.0) -> MotionSequence:
    """Check and normalise a SAX sequence (and its labels at ``labelled_frames``, default: all frames of
    ``labels``). Raises :class:`MotionInputError` naming ``subject_id`` (or the image's name) when the
    sequence has fewer than two frames, holds NaN/inf, or the labels' grid/geometry/frame count differ."""
    source = subject_id or images.name or "sequence"
    array = np.asarray(images.array)
    if array.ndim != 4:
        raise MotionInputError(source, f"images must be (t, z, y, x), got shape {array.shape}")
    if array.shape[0] < 2:
        raise MotionInputError(source, f"a motion sequence needs at least 2 frames, got {array.shape[0]}")
    if min(array.shape[1:]) < 1:
        raise MotionInputError(source, f"empty volume of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise MotionInputError(source, f"images contain {int(np.sum(~np.isfinite(array)))} NaN/inf voxels")
    n = array.shape[0]
    for name, frame in (("ed_frame", ed_frame), ("es_frame", es_frame)):
        if frame is not None and not 0 <= int(frame) < n:
            raise MotionInputError(source, f"{name} {frame} outside the sequence's {n} frames")
    label_maps: Dict[int, np.ndarray] = {}
    if labels is not None:
        if labels.array.shape[1:] != array.shape[1:]:
            raise MotionInputError(source, f"labels grid {labels.array.shape[1:]} != image grid {array.shape[1:]}")
        if not np.allclose(labels.ijk_to_ras, images.ijk_to_ras, atol=1e-3):
            raise MotionInputError(source, "labels geometry (IJK->RAS) differs from the image geometry")
        if labels.array.shape[0] != n:
            raise MotionInputError(source, f"{labels.array.shape[0]} label frames for {n} image frames")
        if not np.all(np.isfinite(labels.array)):
            raise MotionInputError(source, "labels contain NaN/inf")
        values = np.unique(labels.array)
        if values.min() < 0 or values.max() >= N_CLASSES:
            raise MotionInputError(source, f"labels must be 0..{N_CLASSES - 1}, found {values.tolist()}")
        frames = range(n) if labelled_frames is None else labelled_frames
        for frame in frames:
            if not 0 <= int(frame) < n:
                raise MotionInputError(source, f"labelled frame {frame} outside the {n} frames")
            label_maps[int(frame)] = labels.array[int(frame)].astype(np.uint8)
    return MotionSequence(normalise_intensities(array.astype(np.float32), intensity_percentile, source),
                          images.ijk_to_ras.copy(), np.asarray(images.phases, float).copy(), label_maps,
                          int(ed_frame), None if es_frame is None else int(es_frame), source)


def sequence_from_study(study: CineStudy, intensity_percentile: float = 99.0,
                        use_labels: bool = True, ed_es_only: bool = False) -> MotionSequence:
    """The SAX stack of a cine study (``CineStudy.sax_stack``) with the labels of the frames that are
    labelled in every SAX slice (ED/ES in UK Biobank-style studies; only those two with ``ed_es_only``)."""
    images = study.sax_stack()
    labels = frames = None
    if use_labels and study.sax and all(s.labels is not None for s in study.sax):
        labels = study.sax_stack(labels=True)
        sets = [set(s.labelled_frames if s.labelled_frames is not None else range(images.n_frames))
                for s in study.sax]
        frames = sorted(set.intersection(*sets))
        if ed_es_only:
            frames = [f for f in frames if f in (study.ed_frame, study.es_frame)]
    return prepare_sequence(images, labels, frames, study.ed_frame, study.es_frame, study.subject_id,
                            intensity_percentile)




def resample_sequence(sequence: MotionSequence, factor: int = 1, crop_size: Optional[int] = None,
                      frames: Optional[Sequence[int]] = None) -> MotionSequence:
    """A smaller copy for fast training/inference: frames ``frames`` (ED and ES must be among them), the
    in-plane grid averaged over ``factor x factor`` pixels (labels: the centre-most pixel), then cropped to
    ``crop_size`` pixels around the heart (centroid of the ED labels 1-3, else the grid centre). The IJK->RAS
    matrix follows, so outputs stay in place in RAS."""
    source = sequence.subject_id
    if factor < 1:
        raise MotionInputError(source, f"in-plane factor must be >= 1, got {factor}")
    n = sequence.n_frames
    frames = list(range(n)) if frames is None else [int(f) for f in frames]
    if len(frames) < 2 or any(not 0 <= f < n for f in frames):
        raise MotionInputError(source, f"frames {frames} must be >= 2 indices among the {n} frames")
    for name, frame in (("ED", sequence.ed_frame), ("ES", sequence.es_frame)):
        if frame is not None and frame not in frames:
            raise MotionInputError(source, f"the {name} frame {frame} is not among the kept frames {frames}")
    nz, ny, nx = sequence.shape_zyx
    my, mx = ny // factor, nx // factor
    images = sequence.images[frames][:, :, :my * factor, :mx * factor]
    images = images.reshape(len(frames), nz, my, factor, mx, factor).mean(axis=(3, 5))
    centre = (factor - 1) // 2
    labels = {frames.index(f): v[:, centre:my * factor:factor, centre:mx * factor:factor]
              for f, v in sequence.labels.items() if f in frames}
    matrix = sequence.ijk_to_ras.copy()
    matrix[:3, 3] += matrix[:3, :2] @ np.full(2, (factor - 1) / 2.0)
    matrix[:3, :2] *= factor
    if crop_size is not None and crop_size < max(my, mx):
        ed = labels.get(frames.index(sequence.ed_frame))
        if ed is not None and np.any(ed > 0):
            _, jj, ii = np.nonzero(ed > 0)
            cy, cx = int(round(jj.mean())), int(round(ii.mean()))
        else:
            cy, cx = my // 2, mx // 2
        y0 = int(np.clip(cy - crop_size // 2, 0, max(my - crop_size, 0)))
        x0 = int(np.clip(cx - crop_size // 2, 0, max(mx - crop_size, 0)))
        images = images[:, :, y0:y0 + crop_size, x0:x0 + crop_size]
        labels = {k: v[:, y0:y0 + crop_size, x0:x0 + crop_size] for k, v in labels.items()}
        matrix[:3, 3] += matrix[:3, :3] @ np.array([x0, y0, 0.0])
    es = None if sequence.es_frame is None else frames.index(sequence.es_frame)
    return MotionSequence(np.ascontiguousarray(images, dtype=np.float32), matrix, sequence.phases[frames].copy(),
                          {k: np.ascontiguousarray(v) for k, v in labels.items()}, frames.index(sequence.ed_frame),
                          es, source)


def evenly_spaced_frames(n_frames: int, count: int, ed_frame: int = 0, es_frame: Optional[int] = None) -> list:
    """About ``count`` frames spread over the cycle, always including ED and ES."""
    picks = {int(round(v)) % n_frames for v in np.linspace(0, n_frames, count, endpoint=False)}
    picks |= {ed_frame} | ({es_frame} if es_frame is not None else set())
    return sorted(picks)


__all__ = ["N_CLASSES", "MotionSequence", "crop_volume", "evenly_spaced_frames", "normalise_intensities",
           "pad_volume", "prepare_sequence", "resample_sequence", "sequence_from_study"]
