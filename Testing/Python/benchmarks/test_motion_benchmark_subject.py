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


def test_simulated_protocol_keeps_the_families_apart():
    import argparse

    from CardiacMotionAtlasLib.benchmarks.common import add_family_arguments
    from CardiacMotionAtlasLib.benchmarks.motion import simulate_protocol

    parser = argparse.ArgumentParser()
    add_family_arguments(parser)
    args = parser.parse_args([])
    args.train, args.test, args.seed = 1, 1, 0
    cmr = CMRConfig(n_frames=4, matrix=16, pixel_mm=6.0, lax_views=(), misalignment_mm=0.0, misalignment_deg=0.0)
    protocol, train_sims, test_sets = simulate_protocol(args, cmr, cross_family_only=True)
    assert len(train_sims) == 1 and len(test_sets) == 1
    test_set, sims = test_sets[0]
    assert len(sims) == 1 and test_set.family != protocol.train_family  # the cross-family set, never trained on
