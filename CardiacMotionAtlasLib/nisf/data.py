"""A cine study prepared for NISF++: validated, in the standardised frame, cropped to the modelled box.

:func:`prepare_subject` checks the study (equal frame counts, finite intensities, valid direction
matrices, labels in 0..3) and raises :class:`~.errors.NISFInputError` naming the study, the slice and
the problem. Each slice keeps only the pixels whose nominal position lies in the canonical box
``[-roi, roi]^3``; intensities are divided by a subject normalisation (the ``intensity_percentile`` of
those pixels maps to 0.9), so the network's ``[0, 1]`` intensity head can represent them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np

from ..data.cine_study import CineSlice, CineStudy
from ..errors import GeometryError
from ..geometry.affine import apply_affine, check_ijk_to_ras
from .config import NISFConfig
from .errors import NISFInputError
from .frame import StandardFrame, standard_frame_from_study

logger = logging.getLogger(__name__)

UNLABELLED = -1
N_CLASSES = 4  # 0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool
MIN_ROI_PIXELS = 16


@dataclass
class SliceData:
    """One prepared 2D+t slice.

    Attributes:
        name, view: slice name and view (SAX, 2CH, 3CH, 4CH).
        index_in_study: position of the slice in ``study.slices``.
        sax_position: ``basal``/``mid``/``apical`` thirds of the SAX stack ('' for LAX).
        nominal_ijk_to_ras: the header geometry (4x4, RAS mm).
        shape_yx: image size; ``roi_pixels``: flat indices ``j * nx + i`` of the modelled pixels.
        phases: ``(t,)`` normalised phase of every frame.
        intensities: ``(t, n_roi)`` normalised intensities (float32).
        labels: ``(t, n_roi)`` int8 labels, ``-1`` where a frame has no label; None without labels.
    """

    name: str
    view: str
    index_in_study: int
    sax_position: str
    nominal_ijk_to_ras: np.ndarray
    shape_yx: tuple
    roi_pixels: np.ndarray
    phases: np.ndarray
    intensities: np.ndarray
    labels: Optional[np.ndarray]

    @property
    def spacing(self) -> np.ndarray:
        """Pixel size along i, j and slice thickness (k), mm."""
        return np.linalg.norm(self.nominal_ijk_to_ras[:3, :3], axis=0)

    @property
    def roi_ij(self) -> np.ndarray:
        """``(n_roi, 2)`` pixel indices (i, j) of the modelled pixels."""
        nx = self.shape_yx[1]
        return np.stack([self.roi_pixels % nx, self.roi_pixels // nx], axis=1)

    @property
    def slice_type(self) -> str:
        """``SAX basal``/``SAX mid``/``SAX apical`` or the LAX view (for per-type reports)."""
        return f"SAX {self.sax_position}" if self.view == "SAX" else f"LAX {self.view}"


@dataclass
class SubjectData:
    """All prepared slices of one subject in its standardised frame."""

    subject_id: str
    source: str
    frame: StandardFrame
    slices: List[SliceData]
    intensity_norm: float  # stored intensity / intensity_norm = normalised intensity
    n_frames: int
    dropped: List[str] = field(default_factory=list)
    cycle_length_s: Optional[float] = None

    @property
    def has_labels(self) -> bool:
        return any(s.labels is not None for s in self.slices)


def _source(study: CineStudy) -> str:
    return str(study.metadata.get("source") or study.subject_id)


def validate_study(study: CineStudy) -> None:
    """Raise :class:`NISFInputError` naming the study and slice for anything NISF++ cannot model."""
    source = _source(study)
    if not study.slices:
        raise NISFInputError(source, "study has no slices")
    reference = study.slices[0]
    for slice_ in study.slices:
        name = slice_.image.name or f"{slice_.view} #{slice_.slice_index}"
        array = np.asarray(slice_.image.array)
        if array.ndim != 4 or array.shape[1] != 1:
            raise NISFInputError(source, f"slice {name}: image must be (t, 1, y, x), got shape {array.shape}")
        if array.shape[0] != reference.image.array.shape[0]:
            raise NISFInputError(source, f"slice {name}: {array.shape[0]} frames, expected "
                                         f"{reference.image.array.shape[0]} (like {reference.image.name or 'slice 0'})")
        if len(slice_.image.phases) != array.shape[0]:
            raise NISFInputError(source, f"slice {name}: {len(slice_.image.phases)} phases for {array.shape[0]} frames")
        if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
            bad = int(np.size(array) - np.count_nonzero(np.isfinite(array.astype(float))))
            raise NISFInputError(source, f"slice {name}: {bad} NaN or infinite intensities")
        try:
            check_ijk_to_ras(slice_.image.ijk_to_ras)
        except GeometryError as error:
            raise NISFInputError(source, f"slice {name}: degenerate direction matrix ({error})") from error
        if np.linalg.norm(np.asarray(slice_.image.ijk_to_ras)[:3, :3], axis=0).min() < 1e-3:
            raise NISFInputError(source, f"slice {name}: degenerate direction matrix (zero voxel size)")
        if slice_.labels is not None:
            labels = np.asarray(slice_.labels.array)
            if labels.shape != array.shape:
                raise NISFInputError(source, f"slice {name}: labels of shape {labels.shape}, image {array.shape}")
            frames = slice_.labelled_frames if slice_.labelled_frames is not None else range(array.shape[0])
            for frame in frames:
                if not 0 <= int(frame) < array.shape[0]:
                    raise NISFInputError(source, f"slice {name}: labelled frame {frame} out of range")
            values = np.unique(labels[list(frames)]) if len(list(frames)) else np.array([], int)
            if values.size and (values.min() < 0 or values.max() >= N_CLASSES):
                raise NISFInputError(source, f"slice {name}: labels {values.tolist()} outside 0..{N_CLASSES - 1}")


def _sax_positions(study: CineStudy) -> dict:
    sax = sorted(study.sax, key=lambda s: s.slice_index)
    out = {}
    for rank, slice_ in enumerate(sax):
        third = 3 * rank / max(len(sax), 1)
        out[id(slice_)] = "basal" if third < 1 else ("mid" if third < 2 else "apical")
    return out


def roi_pixels(slice_: CineSlice, frame: StandardFrame, roi_half_size: float) -> np.ndarray:
    """Flat indices ``j * nx + i`` of the pixels whose nominal centre lies in the canonical box."""
    _, ny, nx = slice_.image.shape_zyx
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    ijk = np.stack([ii, jj, np.zeros_like(ii)], axis=-1).reshape(-1, 3).astype(float)
    canonical = frame.to_canonical(apply_affine(slice_.image.ijk_to_ras, ijk))
    return np.flatnonzero(np.abs(canonical).max(axis=1) <= roi_half_size)


def prepare_subject(study: CineStudy, config: Optional[NISFConfig] = None, *, frame: Optional[StandardFrame] = None,
                    use_labels: bool = True, exclude_views: Sequence[str] = ()) -> SubjectData:
    """Validate ``study`` and prepare it for training or fitting (see the module docstring).

    ``frame``: a given standardised frame (default: from the study's geometry and, with ``use_labels``,
    its labels). ``use_labels=False`` drops every label (inference from intensities alone; the frame's
    RV side is then left to :func:`~.fit.fit_subject`). ``exclude_views`` leaves views out (e.g.
    ``("4CH",)`` to predict a held-out view); the frame is still computed from all slices.
    """
    config = config or NISFConfig()
    validate_study(study)
    source = _source(study)
    frame = frame or standard_frame_from_study(study, config.frame_scale_mm, source, use_labels=use_labels)
    positions = _sax_positions(study)
    prepared: List[SliceData] = []
    dropped: List[str] = []
    for index, slice_ in enumerate(study.slices):
        name = slice_.image.name or f"{slice_.view}_{slice_.slice_index}"
        if slice_.view in exclude_views:
            continue
        pixels = roi_pixels(slice_, frame, config.roi_half_size)
        if len(pixels) < MIN_ROI_PIXELS:
            dropped.append(name)
            logger.warning("%s: slice %s has %d pixels in the modelled box; left out", source, name, len(pixels))
            continue
        array = np.asarray(slice_.image.array, dtype=np.float32)[:, 0].reshape(slice_.n_frames, -1)[:, pixels]
        labels = None
        if use_labels and slice_.labels is not None and slice_.labelled_frames:
            all_labels = np.asarray(slice_.labels.array)[:, 0].reshape(slice_.n_frames, -1)[:, pixels]
            labels = np.full(all_labels.shape, UNLABELLED, np.int8)
            frames = sorted(int(f) for f in slice_.labelled_frames)
            labels[frames] = all_labels[frames].astype(np.int8)
        prepared.append(SliceData(
            name=name, view=slice_.view, index_in_study=index, sax_position=positions.get(id(slice_), ""),
            nominal_ijk_to_ras=np.asarray(slice_.image.ijk_to_ras, float).copy(), shape_yx=slice_.image.shape_zyx[1:],
            roi_pixels=pixels, phases=np.asarray(slice_.image.phases, float) % 1.0, intensities=array, labels=labels))
    if not prepared:
        half_mm = config.roi_half_size * config.frame_scale_mm
        raise NISFInputError(source, f"no slice crosses the modelled box (+/-{half_mm:.0f} mm "
                                     "around the LV centre found from the slice geometry)")
    values = np.concatenate([s.intensities.ravel() for s in prepared])
    level = float(np.percentile(values, config.intensity_percentile))
    if not level > 0:
        raise NISFInputError(source, "all intensities in the modelled box are zero or negative")
    norm = level / 0.9
    for slice_data in prepared:
        slice_data.intensities = (slice_data.intensities / norm).astype(np.float32)
    return SubjectData(subject_id=study.subject_id, source=source, frame=frame, slices=prepared,
                       intensity_norm=norm, n_frames=study.n_frames, dropped=dropped,
                       cycle_length_s=study.cycle_length_s)


__all__ = ["UNLABELLED", "N_CLASSES", "SliceData", "SubjectData", "prepare_subject", "roi_pixels", "validate_study"]
