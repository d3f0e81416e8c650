"""The motion benchmarks score every held-out heart through one function: its sequence, the frame order
from ED and the ground truth must agree with the phantom."""

from __future__ import annotations

import numpy as np

from CardiacMotionAtlasLib.benchmarks.motion import held_out_subject
from CardiacMotionAtlasLib.phantom.cmr import CMRConfig, simulate_cine
from CardiacMotionAtlasLib.phantom.heart import PhantomHeart


def test_held_out_subject_is_ordered_from_ed_with_exact_truth():
    heart = PhantomHeart.from_seed(0, 1)
    cmr = CMRConfig(n_frames=6, matrix=24, pixel_mm=5.0, lax_views=(), misalignment_mm=0.0, misalignment_deg=0.0)
    sim = simulate_cine(heart, cmr, seed=3)
    sequence, order, truth = held_out_subject(heart, sim, 99.0)
    assert order[0] == sequence.ed_frame and sorted(order) == list(range(sequence.n_frames))
    assert order[truth["es_position"]] == sequence.es_frame
    assert truth["labels"].shape[0] == sequence.n_frames and np.any(truth["labels"][0] == 2)
    displacement = np.linalg.norm(truth["truth_ras"], axis=1)  # (t, z, y, x) mm from ED
    assert displacement[0].max() < 1e-6 < displacement[truth["es_position"]].max()
    assert truth["truth_indices"]["LVEF"] == heart.clinical_indices()["LVEF"]
