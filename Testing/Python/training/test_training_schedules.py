"""cosine_factor: the one cosine learning-rate decay, checked against each formula it replaced."""

import math

import numpy as np
import pytest

from CardiacMotionAtlasLib.training.schedules import cosine_factor

TOTALS = [1, 3, 10, 40, 120, 500, 900]


def _old_progress_form(step, total, final):  # nisf/train, nisf/fit, motion/train, synthesis/train
    progress = min(max(step, 0) / max(total, 1), 1.0)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _old_atlas_train(step, total, final):
    total = max(total, 1)
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def _old_atlas_fit(step, total):
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / total))


def _old_atlas_residual(step, total):
    return 0.1 + 0.45 * (1 + math.cos(math.pi * step / total))


@pytest.mark.parametrize("final", [0.1, 0.05, 0.0])
def test_same_values_as_the_nisf_motion_and_synthesis_schedules(final):
    for total in TOTALS:
        for step in range(-1, total + 3):
            assert cosine_factor(step, total, final) == _old_progress_form(step, total, final)
    assert cosine_factor(0, 10, final) == 1.0 and cosine_factor(10, 10, final) == pytest.approx(final)
    assert cosine_factor(5, 10, final) == pytest.approx((1 + final) / 2)


def test_same_values_as_the_atlas_schedules_at_float32():
    """The atlas formulas took ``pi * step / total`` instead of ``pi * (step / total)``: at most one float64
    ulp apart, identical as the float32 learning rate Adam applies to float32 parameters."""
    for total in TOTALS:
        steps = range(total + 2)
        new = np.array([cosine_factor(s, total, 0.1) for s in steps])
        for old in (np.array([_old_atlas_train(s, total, 0.1) for s in steps]),
                    np.array([_old_atlas_fit(s, total) for s in steps[:total]]),
                    np.array([_old_atlas_residual(s, total) for s in steps[:total]])):
            assert np.array_equal(new[: len(old)].astype(np.float32), old.astype(np.float32))
            assert np.abs(new[: len(old)] - old).max() <= 2 * np.spacing(1.0)
