"""UK Biobank-style study folder <-> :class:`CineStudy`.

Layout (all NIfTI, RAS)::

    sa.nii.gz                 SAX stack, 4D (x, y, z, t)                      (required)
    la_2ch.nii.gz, la_3ch.nii.gz, la_4ch.nii.gz   single-slice cines (x, y, 1, t)
    seg_sa.nii.gz             SAX labels, 4D; frames without labels are all 0
    seg_sa_ED.nii.gz, seg_sa_ES.nii.gz            SAX labels at ED / ES (3D)
    seg_la_<v>.nii.gz, seg_la_<v>_ED.nii.gz, seg_la_<v>_ES.nii.gz   LAX labels likewise
    sa_ES.nii.gz              (optional, as in the UKBB pipeline) the ES image frame, used to find ES
    study.json                (optional) subject_id, ed_frame, es_frame, cycle_length_s, phases,
                              trigger_times_s, labelled_frames {"sa": [...], "la_4ch": [...]},
                              sax_slice_thickness_mm, sax_normal_flipped, label_convention

Labels: 0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool (UK Biobank's own convention, Bai
et al. 2018, and the product's), unless ``study.json`` names another ``label_convention`` (``acdc``,
``mnms``; see :mod:`.label_conventions`), converted on read. The 4D ``seg_*`` file wins
over the ED/ES files. Without a sidecar: ED = frame 0; ES = the frame equal to ``sa_ES.nii.gz``, else
the labelled frame with the smallest LV blood pool; labelled frames = frames with any label.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..data.cine_study import CineSlice, CineStudy
from ..data.image_sequence import ImageSequence
from ..errors import CardiacMotionAtlasError, CineStudyError
from .atomic import atomic_write_text
from ._common import PathLike, require_dir
from .label_conventions import PRODUCT, SIDECAR_KEY, check_convention, to_product
from .layout_common import (
    check_cine,
    check_frame_count,
    check_same_grid,
    float_list,
    frame_index,
    labelled_frames_of,
    lv_volume_es,
    read_json,
    split_stack,
    stack_slices,
)
from .nifti import read_nifti, write_nifti

LAX_FILES = {"2CH": "la_2ch", "3CH": "la_3ch", "4CH": "la_4ch"}
SIDECAR = "study.json"
PROJECT_LABELS = (0, 1, 2, 3)


def _read_label_file(path: Path, convention: str = PRODUCT) -> ImageSequence:
    labels = read_nifti(path, labels=True, allowed_labels=PROJECT_LABELS, require_labels=True)
    if convention != PRODUCT:
        labels.array = to_product(labels.array, convention, path)
    return labels


def _stored_frames(sidecar: Dict, key: str, n: int, sidecar_path: Path) -> Optional[List[int]]:
    stored = sidecar.get("labelled_frames", {})
    if not isinstance(stored, dict):
        raise CineStudyError(sidecar_path, "labelled_frames must be an object {file prefix: [frames]}")
    if key not in stored:
        return None
    if not isinstance(stored[key], list):
        raise CineStudyError(sidecar_path, f"labelled_frames[{key!r}] must be a list")
    return sorted({frame_index(v, n, sidecar_path, f"labelled_frames[{key!r}]") for v in stored[key]})


def _read_labels(folder: Path, prefix: str, image: ImageSequence, sidecar: Dict, ed: int,
                 es: Optional[int]) -> Tuple[Optional[ImageSequence], Optional[List[int]]]:
    """Labels ``(t, z, y, x)`` and labelled frames of ``<prefix>`` (``sa`` or ``la_4ch`` ...)."""
    n = image.n_frames
    full = folder / f"seg_{prefix}.nii.gz"
    convention = check_convention(sidecar.get(SIDECAR_KEY, PRODUCT), folder / SIDECAR)
    if full.exists():
        seg = _read_label_file(full, convention)
        check_frame_count(seg, n, full)
        check_same_grid(image, seg, full, "segmentation")
        frames = _stored_frames(sidecar, prefix, n, folder / SIDECAR)
        return seg, frames if frames is not None else labelled_frames_of(seg.array)
    parts: Dict[int, np.ndarray] = {}
    for tag, index in (("ED", ed), ("ES", es)):
        path = folder / f"seg_{prefix}_{tag}.nii.gz"
        if not path.exists():
            continue
        if index is None:
            raise CineStudyError(path, f"{tag} segmentation present but the {tag} frame is unknown "
                                       f"(give es_frame in {SIDECAR} or add sa_ES.nii.gz)")
        seg = _read_label_file(path, convention)
        check_frame_count(seg, 1, path)
        check_same_grid(image, seg, path, "segmentation")
        parts[index] = seg.array[0]
    if not parts:
        return None, None
    array = np.zeros(image.array.shape, dtype=np.uint8)
    for index, volume in parts.items():
        array[index] = volume
    return ImageSequence(array, image.ijk_to_ras, phases=image.phases, name=f"seg_{prefix}"), sorted(parts)


def _matching_frame(image: ImageSequence, path: Path) -> Optional[int]:
    """Index of the frame of ``image`` equal to the single-frame image at ``path`` (or None)."""
    if not path.exists():
        return None
    frame = read_nifti(path)
    if frame.n_frames != 1 or frame.shape_zyx != image.shape_zyx:
        raise CineStudyError(path, f"expected one frame of size {image.shape_zyx}, got {frame.array.shape}")
    matches = [t for t in range(image.n_frames) if np.allclose(image.array[t], frame.array[0])]
    return matches[0] if matches else None


def _phases(sidecar: Dict, sidecar_path: Path, image: ImageSequence, cycle: Optional[float]) -> np.ndarray:
    n = image.n_frames
    phases = float_list(sidecar.get("phases"), n, sidecar_path, "phases", 0.0, 1.0)
    if phases is not None:
        return phases
    if cycle and image.trigger_times_s is not None:
        return np.mod(image.trigger_times_s / cycle, 1.0)
    return np.arange(n, dtype=float) / n


def read_ukbb_study(folder: PathLike, subject_id: Optional[str] = None) -> CineStudy:
    """Read a UK Biobank-style folder (see module docstring) as a :class:`CineStudy`: the SAX stack is
    split into its 2D+t slices (stack order), followed by the LAX views found.

    Raises :class:`CineStudyError` naming the file for a missing ``sa.nii.gz``, frame-count or grid
    mismatches and invalid labels or sidecar."""
    folder = require_dir(folder, CineStudyError)
    sidecar_path = folder / SIDECAR
    sidecar = read_json(sidecar_path)
    sa_path = folder / "sa.nii.gz"
    if not sa_path.exists():
        raise CineStudyError(sa_path, "missing: the UK Biobank layout needs the SAX stack sa.nii.gz")
    sa = read_nifti(sa_path, name="SAX")
    check_cine(sa, sa_path, "UK Biobank")
    n = sa.n_frames
    cycle = sidecar.get("cycle_length_s")
    if cycle is not None and (isinstance(cycle, bool) or not isinstance(cycle, (int, float)) or not cycle > 0):
        raise CineStudyError(sidecar_path, f"cycle_length_s = {cycle!r} must be a positive number")
    times = float_list(sidecar.get("trigger_times_s"), n, sidecar_path, "trigger_times_s")
    if times is not None:
        sa.trigger_times_s = times
    sa.cycle_length_s = float(cycle) if cycle is not None else None
    sa.phases = _phases(sidecar, sidecar_path, sa, sa.cycle_length_s)
    ed = frame_index(sidecar.get("ed_frame"), n, sidecar_path, "ed_frame") or 0
    es = frame_index(sidecar.get("es_frame"), n, sidecar_path, "es_frame")
    if es is None:
        es = _matching_frame(sa, folder / "sa_ES.nii.gz")
    labels, frames = _read_labels(folder, "sa", sa, sidecar, ed, es)
    if es is None and labels is not None:
        es = lv_volume_es(labels.array, frames)
    thickness = sidecar.get("sax_slice_thickness_mm")
    if thickness is not None and (isinstance(thickness, bool) or not isinstance(thickness, (int, float))
                                  or not thickness > 0):
        raise CineStudyError(sidecar_path, f"sax_slice_thickness_mm = {thickness!r} must be a positive number")
    slices: List[CineSlice] = split_stack(sa, labels, frames, "SAX", thickness,
                                          bool(sidecar.get("sax_normal_flipped", False)))
    for view, prefix in LAX_FILES.items():
        path = folder / f"{prefix}.nii.gz"
        if not path.exists():
            continue
        image = read_nifti(path, name=view)
        check_frame_count(image, n, path)
        if image.array.shape[1] != 1:
            raise CineStudyError(path, f"{image.array.shape[1]} slices; a LAX cine has one slice (x, y, 1, t)")
        image.phases, image.cycle_length_s = sa.phases.copy(), sa.cycle_length_s
        image.trigger_times_s = sa.trigger_times_s
        lax_labels, lax_frames = _read_labels(folder, prefix, image, sidecar, ed, es)
        slices.append(CineSlice(image=image, view=view, labels=lax_labels, labelled_frames=lax_frames))
    return CineStudy(
        subject_id=subject_id or str(sidecar.get("subject_id") or folder.name),
        slices=slices,
        ed_frame=ed,
        es_frame=es,
        cycle_length_s=sa.cycle_length_s,
        metadata={"source": str(folder), "layout": "ukbb",
                  "label_convention": check_convention(sidecar.get(SIDECAR_KEY, PRODUCT), sidecar_path)},
    )


# --------------------------------------------------------------------------- writer


def _label_array(slices: List[CineSlice]) -> Tuple[Optional[np.ndarray], List[int]]:
    """Stacked ``(t, z, y, x)`` uint8 labels (0 outside each slice's labelled frames) and the union
    of labelled frames; (None, []) when no slice has labels."""
    if not any(s.labels is not None for s in slices):
        return None, []
    shape = (slices[0].n_frames, len(slices)) + slices[0].image.array.shape[2:]
    array = np.zeros(shape, dtype=np.uint8)
    frames = set()
    for z, s in enumerate(slices):
        if s.labels is None:
            continue
        for t in s.labelled_frames or []:
            array[t, z] = np.asarray(s.labels.array[t, 0]).astype(np.uint8)
            frames.add(int(t))
    return array, sorted(frames)


def _write_labels(folder: Path, prefix: str, labels: Optional[np.ndarray], frames: List[int],
                  ijk_to_ras: np.ndarray, phases: np.ndarray, ed: int, es: Optional[int],
                  written: Dict[str, List[int]]) -> None:
    if labels is None or not labels.any():
        return
    write_nifti(ImageSequence(labels, ijk_to_ras, phases=phases, name=f"seg_{prefix}"),
                folder / f"seg_{prefix}.nii.gz", labels=True)
    for tag, index in (("ED", ed), ("ES", es)):
        if index is not None and index in frames and labels[index].any():
            write_nifti(ImageSequence(labels[index:index + 1], ijk_to_ras, name=f"seg_{prefix}_{tag}"),
                        folder / f"seg_{prefix}_{tag}.nii.gz", labels=True)
    written[prefix] = frames


def write_ukbb_study(study: CineStudy, folder: PathLike) -> Path:
    """Write ``study`` in the UK Biobank layout (module docstring) that :func:`read_ukbb_study` reads
    back with the same arrays and geometry. The SAX slices must be parallel, share one pixel grid and
    be equally spaced along their normal (they are stacked into ``sa.nii.gz`` in study order); at most
    one slice per LAX view. Every file is written atomically, ``study.json`` last."""
    folder = Path(folder)
    sax = study.sax
    if not sax:
        raise CardiacMotionAtlasError(f"{folder}: study {study.subject_id!r} has no SAX slice to write sa.nii.gz")
    stack, thickness, flipped = stack_slices(sax)
    first = sax[0].image
    phases = np.asarray(first.phases, dtype=float)
    folder.mkdir(parents=True, exist_ok=True)
    sa = ImageSequence(np.concatenate([s.image.array for s in sax], axis=1), stack, phases=phases,
                       cycle_length_s=study.cycle_length_s or first.cycle_length_s,
                       trigger_times_s=first.trigger_times_s, name="sa")
    write_nifti(sa, folder / "sa.nii.gz")
    written: Dict[str, List[int]] = {}
    labels, frames = _label_array(sax)
    _write_labels(folder, "sa", labels, frames, stack, phases, study.ed_frame, study.es_frame, written)
    for view, prefix in LAX_FILES.items():
        lax = study.view(view)
        if len(lax) > 1:
            raise CardiacMotionAtlasError(f"{folder}: {len(lax)} {view} slices; the UK Biobank layout holds one")
        if not lax:
            continue
        image = lax[0].image
        write_nifti(ImageSequence(image.array, image.ijk_to_ras, phases=phases, cycle_length_s=sa.cycle_length_s,
                                  trigger_times_s=sa.trigger_times_s, name=prefix), folder / f"{prefix}.nii.gz")
        lax_labels, lax_frames = _label_array(lax)
        _write_labels(folder, prefix, lax_labels, lax_frames, image.ijk_to_ras, phases, study.ed_frame,
                      study.es_frame, written)
    sidecar = {
        "format": "CardiacMotionAtlas UK Biobank-style study",
        "version": 1,
        "subject_id": study.subject_id,
        "ed_frame": int(study.ed_frame),
        "es_frame": None if study.es_frame is None else int(study.es_frame),
        "cycle_length_s": None if sa.cycle_length_s is None else float(sa.cycle_length_s),
        "phases": [float(p) for p in phases],
        "trigger_times_s": None if sa.trigger_times_s is None else [float(t) for t in sa.trigger_times_s],
        "labelled_frames": written,
        "sax_slice_thickness_mm": thickness,
        "sax_normal_flipped": flipped,
        SIDECAR_KEY: PRODUCT,
    }
    sidecar = {k: v for k, v in sidecar.items() if v is not None}
    atomic_write_text(folder / SIDECAR, json.dumps(sidecar, indent=2))
    return folder


__all__ = ["LAX_FILES", "read_ukbb_study", "write_ukbb_study"]
