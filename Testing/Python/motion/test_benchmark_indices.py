"""The motion benchmark's index baselines and interval scores."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from CardiacMotionAtlasLib.benchmarks.motion import _row, disk_summation_errors, interval_scores
from CardiacMotionAtlasLib.motion.evaluation import INDEX_NAMES


def test_disk_summation_errors_against_truth():
    ed, es = np.zeros((2, 5, 5), np.uint8), np.zeros((2, 5, 5), np.uint8)
    ed[:, :2], es[:, :1] = 1, 1  # 20 and 10 voxels of 1 ml
    ed[:, 4], es[:, 4] = 3, 3
    truth = {k: 0.0 for k in INDEX_NAMES}
    truth.update(LVEDV=18.0, LVESV=10.0, LVEF=40.0)
    errors = disk_summation_errors(ed, es, np.diag([10.0, 10.0, 10.0, 1.0]), truth)
    assert errors["err_LVEDV"] == pytest.approx(2.0) and errors["err_LVESV"] == pytest.approx(0.0)
    assert errors["err_LVEF"] == pytest.approx(10.0)
    assert errors["err_RVEF"] == pytest.approx(0.0)


def test_interval_coverage_and_rank_correlation():
    truth = {k: 10.0 for k in INDEX_NAMES}
    subjects = []
    for offset in (0.5, 3.0):  # inside / outside intervals of half-width 1 (and 2 for the wider ones)
        indices = {k: 10.0 + offset * (i + 1) for i, k in enumerate(INDEX_NAMES)}
        bounds = {k: (v - (i + 1), v + (i + 1)) for i, (k, v) in enumerate(indices.items())}
        scores = interval_scores(SimpleNamespace(indices=indices, index_bounds=bounds), truth)
        subjects.append({**{f"err_{k}": indices[k] - 10.0 for k in INDEX_NAMES}, "_intervals": scores})
    row = _row("CardioMorphNet", subjects)
    assert row["coverage_idx"] == pytest.approx(50.0)  # offset 0.5 (i+1) <= (i+1): inside; 3 (i+1): outside
    assert row["unc_corr_idx"] > 0.5  # wider intervals where errors are larger
