"""Frames without labels in the NISF++ benchmark (:mod:`.nisf`, table 1b): studies labelled at ED/ES only
are scored at phases that carry no label (mid-systole and through diastole), so a row speaks for the 4D
result and not only for the frames it was given.

Beside the NISF++ rows at those frames: the SAX labels resampled at those very frames (a baseline that
needs labels at every frame, which an ED/ES-only study does not have) and the SAX labels of the nearest
annotated frame (ED or ES, by cyclic phase distance) resampled nearest: what an ED/ES-only annotation
gives without a model.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from ..data.cine_study import CineStudy
from ..nisf.evaluation import resample_sax_stack


def between_frames(n_frames: int, ed_frame: int, es_frame: int) -> List[int]:
    """Three frames that are neither ED nor ES: mid-systole (halfway ED -> ES) and the first and second
    third of diastole (ES -> next ED), sorted and distinct; fewer when the cycle has too few frames."""
    n, ed, es = int(n_frames), int(ed_frame) % int(n_frames), int(es_frame) % int(n_frames)
    systole = (es - ed) % n
    diastole = n - systole
    candidates = [ed + systole // 2, es + diastole // 3, es + (2 * diastole) // 3]
    return sorted({c % n for c in candidates} - {ed, es})


def nearest_labelled(frame: int, labelled: Sequence[int], n_frames: int) -> int:
    """The labelled frame nearest to ``frame`` in cyclic phase (ties: the earlier in ``labelled``)."""
    if not labelled:
        raise ValueError("nearest_labelled: no labelled frame given")
    distance = [min((frame - f) % n_frames, (f - frame) % n_frames) for f in labelled]
    return int(labelled[int(np.argmin(distance))])


def nearest_annotation_labels(study: CineStudy, ijk_to_ras: np.ndarray, shape_zyx: Sequence[int],
                              frames: Sequence[int]) -> np.ndarray:
    """The SAX labels of the nearest ED/ES frame resampled nearest (SimpleITK) onto the grid at each of
    ``frames``: ``(len(frames), z, y, x)`` uint8 (the label map is carried unchanged through time)."""
    annotated = sorted({int(study.ed_frame or 0), int(study.es_frame if study.es_frame is not None else 0)})
    source = [nearest_labelled(f, annotated, study.n_frames) for f in frames]
    return resample_sax_stack(study, ijk_to_ras, shape_zyx, source, labels=True, interpolation="nearest")


def between_rows_order() -> List[str]:
    """The methods of table (1b), in print order."""
    return [BASELINE_EVERY, BASELINE_LINEAR_EVERY, BASELINE_NEAREST_ANNOTATED, INTENSITIES, ALL_SAX, ED_ES_EVERY_VIEW,
            ED_ES_SAX_ONLY]


BASELINE_EVERY = "SAX labels at this frame, nearest (needs labels at every frame)"
BASELINE_LINEAR_EVERY = "SAX labels at this frame, linear (needs labels at every frame)"
BASELINE_NEAREST_ANNOTATED = "SAX labels of the nearest ED/ES frame, nearest (ED/ES annotation, no model)"
INTENSITIES = "NISF++ (intensities only)"
ALL_SAX = "NISF++ (+ test labels: SAX all frames, LAX ED/ES)"
ED_ES_EVERY_VIEW = "NISF++ (+ test labels at ED/ES only, every view): frames without labels"
ED_ES_SAX_ONLY = "NISF++ SAX only (+ SAX labels at ED/ES only): frames without labels"


def score_subject(target: Dict[str, Dict[str, List[float]]], heart, sim, grid, fits: Dict[str, object]) -> List[int]:
    """Score one test subject at its :func:`between_frames`: the two every-frame baselines, the nearest
    ED/ES annotation and each of ``fits`` (method name -> :class:`~..nisf.model.SubjectFit`), merged into
    ``target`` (method -> metric -> values, one value per frame). Returns the frames scored."""
    from .nisf_scores import merge_scores, segmentation

    study = sim.study
    frames = between_frames(study.n_frames, study.ed_frame or 0, study.es_frame or 0)
    if not frames:
        return frames
    truth = heart.label_volumes(*grid, [f / study.n_frames for f in frames])
    baselines = {BASELINE_EVERY: resample_sax_stack(study, *grid, frames, labels=True, interpolation="nearest"),
                 BASELINE_LINEAR_EVERY: resample_sax_stack(study, *grid, frames, labels=True, interpolation="linear"),
                 BASELINE_NEAREST_ANNOTATED: nearest_annotation_labels(study, *grid, frames)}
    for method, labels in baselines.items():
        merge_scores(target.setdefault(method, {}), segmentation(None, heart, sim, frames, grid, truth, labels))
    for method, fit in fits.items():
        merge_scores(target.setdefault(method, {}), segmentation(fit, heart, sim, frames, grid, truth))
    return frames


def sort_key(row: Dict) -> int:
    order = between_rows_order()
    return order.index(row["method"]) if row["method"] in order else len(order)


__all__ = ["between_frames", "nearest_labelled", "nearest_annotation_labels", "between_rows_order", "score_subject", "sort_key",
           "BASELINE_EVERY", "BASELINE_LINEAR_EVERY", "BASELINE_NEAREST_ANNOTATED", "INTENSITIES", "ALL_SAX",
           "ED_ES_EVERY_VIEW", "ED_ES_SAX_ONLY"]
