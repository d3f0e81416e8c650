"""Volume overlap of masks and label maps: Dice and Jaccard (unitless, in [0, 1]).

By definition here, two empty masks overlap perfectly: Dice = Jaccard = 1.0 (nothing to segment and
nothing segmented). One empty and one non-empty mask give 0.0.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

import numpy as np


def _pair(mask_a: np.ndarray, mask_b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    mask_a, mask_b = np.asarray(mask_a), np.asarray(mask_b)
    if mask_a.shape != mask_b.shape:
        raise ValueError(f"arrays differ in shape: {mask_a.shape} vs {mask_b.shape}")
    return mask_a, mask_b


def _counts(mask_a: np.ndarray, mask_b: np.ndarray) -> Tuple[int, int, int]:
    """(|A and B|, |A|, |B|) of two boolean masks."""
    return int(np.count_nonzero(mask_a & mask_b)), int(np.count_nonzero(mask_a)), int(np.count_nonzero(mask_b))


def dice(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Dice coefficient ``2|A and B| / (|A| + |B|)`` of two masks (non-zero = foreground); both empty -> 1.0."""
    mask_a, mask_b = _pair(mask_a, mask_b)
    inter, n_a, n_b = _counts(mask_a != 0, mask_b != 0)
    return 1.0 if n_a + n_b == 0 else 2.0 * inter / (n_a + n_b)


def jaccard(mask_a: np.ndarray, mask_b: np.ndarray) -> float:
    """Jaccard index ``|A and B| / |A or B|`` of two masks (non-zero = foreground); both empty -> 1.0."""
    mask_a, mask_b = _pair(mask_a, mask_b)
    inter, n_a, n_b = _counts(mask_a != 0, mask_b != 0)
    union = n_a + n_b - inter
    return 1.0 if union == 0 else inter / union


def _labels(labels_a: np.ndarray, labels_b: np.ndarray, labels: Optional[Iterable[int]]) -> list:
    if labels is None:
        present = np.union1d(np.unique(labels_a), np.unique(labels_b))
        return [int(v) for v in present if v != 0]
    return [int(v) for v in labels]


def dice_per_label(
    labels_a: np.ndarray, labels_b: np.ndarray, labels: Optional[Iterable[int]] = None
) -> Dict[int, float]:
    """Dice of each label (default: every non-zero label present in either map) -> ``{label: dice}``."""
    labels_a, labels_b = _pair(labels_a, labels_b)
    return {lab: dice(labels_a == lab, labels_b == lab) for lab in _labels(labels_a, labels_b, labels)}


def jaccard_per_label(
    labels_a: np.ndarray, labels_b: np.ndarray, labels: Optional[Iterable[int]] = None
) -> Dict[int, float]:
    """Jaccard of each label (default: every non-zero label present in either map) -> ``{label: J}``."""
    labels_a, labels_b = _pair(labels_a, labels_b)
    return {lab: jaccard(labels_a == lab, labels_b == lab) for lab in _labels(labels_a, labels_b, labels)}


__all__ = ["dice", "jaccard", "dice_per_label", "jaccard_per_label"]
