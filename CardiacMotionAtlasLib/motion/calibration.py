"""Per-index calibration of CardioMorphNet's 95 % intervals: the scale by which each index's posterior sd
is widened so that, on subjects with ED and ES labels, the residuals of the estimate against the indices of
those labels are covered (:func:`~.intervals.fit_calibration`). Run at the end of training (on the training
subjects) and stored with the checkpoint; :func:`~.estimate.estimate_motion` applies it."""

from __future__ import annotations

from typing import Dict, Optional

from .estimate import estimate_motion
from .intervals import INDEX_KEYS, fit_calibration, reference_indices


def calibrate_motion(trained, sequences, samples: Optional[int] = None, refine_steps: Optional[int] = None,
                     progress=None, **estimate_options) -> Dict[str, float]:
    """Fit the per-index calibration scales of ``trained`` on (training) sequences with ED and ES labels:
    each is estimated (:func:`~.estimate.estimate_motion` with ``estimate_options``) and compared with the
    indices of its own ED/ES labels."""
    residuals, sds = [], []
    for sequence in sequences:
        sequence.require_training_labels()
        estimate = estimate_motion(trained, sequence, samples=samples, refine_steps=refine_steps, calibrated=False,
                                   **estimate_options)
        reference = reference_indices(sequence.labels, sequence.ed_frame, sequence.es_frame, sequence.ijk_to_ras)
        residuals.append({k: estimate.indices[k] - reference[k] for k in INDEX_KEYS})
        sds.append(estimate.metadata["index_sd"])
        if progress is not None:
            progress(sequence.subject_id)
    return fit_calibration(residuals, sds)


__all__ = ["calibrate_motion"]
