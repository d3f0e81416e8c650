"""Frames without labels (benchmarks.nisf table 1b): the chosen frames are never ED or ES, the nearest
annotation baseline carries the ED/ES label map that is nearest in cyclic phase, and the scorer gives
one value per frame and method (a perfect baseline scores Dice 1 at every frame, a stale one less)."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacMotionAtlasLib.benchmarks import nisf_between as between


@pytest.mark.parametrize("n, ed, es", [(10, 0, 3), (25, 0, 8), (50, 0, 17), (10, 2, 6)])
def test_between_frames_avoid_ed_and_es_and_cover_systole_and_diastole(n, ed, es):
    frames = between.between_frames(n, ed, es)
    assert len(frames) == 3
    assert ed not in frames and es not in frames
    in_systole = [f for f in frames if 0 < (f - ed) % n < (es - ed) % n]
    assert len(in_systole) == 1  # one mid-systolic frame, the other two in diastole


def test_between_frames_of_a_short_cycle_drop_the_labelled_ones():
    assert between.between_frames(3, 0, 1) == [2]


def test_nearest_labelled_is_cyclic():
    assert between.nearest_labelled(9, [0, 3], 10) == 0  # 9 -> 0 is one frame across the cycle end
    assert between.nearest_labelled(2, [0, 3], 10) == 3
    with pytest.raises(ValueError):
        between.nearest_labelled(2, [], 10)


def test_nearest_annotation_baseline_holds_the_annotated_map(nisf_hearts, nisf_sims):
    from CardiacMotionAtlasLib.nisf.evaluation import resample_sax_stack

    heart, sim = nisf_hearts[0], nisf_sims[0]
    study = sim.study
    grid = heart.bounding_grid(4.0)
    frames = [f for f in range(study.n_frames) if f not in (study.ed_frame, study.es_frame)]
    assert frames
    stale = between.nearest_annotation_labels(study, *grid, frames)
    for index, frame in enumerate(frames):
        source = between.nearest_labelled(frame, sorted({study.ed_frame, study.es_frame}), study.n_frames)
        expected = resample_sax_stack(study, *grid, [source], labels=True, interpolation="nearest")[0]
        np.testing.assert_array_equal(stale[index], expected)


def test_score_subject_scores_every_method_at_every_frame(nisf_hearts, nisf_sims, tiny_trained):
    from CardiacMotionAtlasLib.nisf import fit_subject
    from CardiacMotionAtlasLib.nisf.config import FitConfig
    from dataclasses import replace

    heart, sim = nisf_hearts[1], nisf_sims[1]
    grid = heart.bounding_grid(4.0)
    fit = fit_subject(tiny_trained, sim.study, replace(tiny_trained.config.fit, steps=2))
    scores = {}
    frames = between.score_subject(scores, heart, sim, grid, {between.INTENSITIES: fit})
    assert frames and set(frames).isdisjoint({sim.study.ed_frame, sim.study.es_frame})
    assert set(scores) == {between.BASELINE_EVERY, between.BASELINE_LINEAR_EVERY, between.BASELINE_NEAREST_ANNOTATED,
                           between.INTENSITIES}
    for method, values in scores.items():
        assert all(len(v) == len(frames) for v in values.values()), method
    every = np.mean(scores[between.BASELINE_EVERY]["dice_LV"])
    assert 0.0 <= np.mean(scores[between.INTENSITIES]["dice_LV"]) <= 1.0
    assert every > 0.5
