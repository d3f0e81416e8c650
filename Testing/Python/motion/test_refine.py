"""Semi-amortised inference (motion.refine): the per-subject refinement of the posterior mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.geometry.warp import warp
from CardiacMotionAtlasLib.metrics.overlap import dice
from CardiacMotionAtlasLib.motion import MotionConfig, estimate_motion
from CardiacMotionAtlasLib.motion.errors import MotionConfigError
from CardiacMotionAtlasLib.motion.model import CardioMorphNet
from CardiacMotionAtlasLib.motion.losses import one_hot
from CardiacMotionAtlasLib.motion.refine import refine_velocities
from CardiacMotionAtlasLib.motion.train import sequence_tensors

SHIFTS_PX = [0, 1, 2, 1]  # frame t = the ED labels moved by this many pixels along +x (i)


def _shifted_frames(small_sequence, config):
    _, labels = sequence_tensors(small_sequence, config, "cpu")
    ed = labels[0]  # (1, z, Y, X)
    frames = torch.cat([torch.roll(ed, shifts=s, dims=-1) for s in SHIFTS_PX])  # (n, z, Y, X)
    return ed, frames


def test_refinement_recovers_a_known_shift_of_the_labels(small_sequence):
    config = MotionConfig.tiny()
    model = CardioMorphNet(config)  # the fields do not depend on the network weights
    ed, frames = _shifted_frames(small_sequence, config)
    n, shape = len(SHIFTS_PX), frames.shape[1:]
    initial = torch.zeros(n, 3, shape[0], shape[1] // 2, shape[2] // 2)  # closed cycle: n steps
    refined = refine_velocities(model, initial, ed, one_hot(frames), shape, config, closed=True, steps=80)
    fields = model.fields(refined, shape, closed=True)
    carried = warp(one_hot(ed).expand(n + 1, -1, -1, -1, -1), fields["t_to_ed_forward"]).argmax(1)[:n]
    for t, shift in enumerate(SHIFTS_PX):
        lv_now = (carried[t] == 1).numpy()
        lv_true = (frames[t] == 1).numpy()
        before = dice((ed[0] == 1).numpy(), lv_true)
        assert dice(lv_now, lv_true) > 0.9, f"frame {t}: Dice {dice(lv_now, lv_true):.3f}"
        if shift:
            assert dice(lv_now, lv_true) > before + 0.05
            # t -> ED field on frame t's grid: a point of frame t came from shift pixels to the left
            di = fields["t_to_ed_forward"][t, 0][frames[t] == 1]
            assert float(di.median()) == pytest.approx(-shift, abs=0.4)


def test_zero_steps_keep_the_network_mean_and_the_networks_stay_frozen(small_sequence, tiny_trained):
    config = tiny_trained.config
    model = tiny_trained.model
    ed, frames = _shifted_frames(small_sequence, config)
    shape = frames.shape[1:]
    initial = torch.randn(len(SHIFTS_PX), 3, shape[0], shape[1] // 2, shape[2] // 2) * 0.1
    assert refine_velocities(model, initial, ed, one_hot(frames), shape, config, closed=True, steps=0) is initial
    before = {k: v.clone() for k, v in model.state_dict().items()}
    refine_velocities(model, initial, ed, one_hot(frames), shape, config, closed=True, steps=3)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


class _Recorder:
    """A ProgressReporter that keeps (description, total, last step) of every run."""

    def __init__(self):
        self.runs = []

    def start(self, total, description="", *, initial=0):
        self.runs.append([description, total, initial])

    def update(self, step, **metrics):
        self.runs[-1][2] = step

    def close(self):
        pass


def test_estimate_records_and_applies_the_refinement(small_sequence, tiny_trained):
    amortised = estimate_motion(tiny_trained, small_sequence, samples=2, refine_steps=0, trajectory="chain")
    recorder = _Recorder()
    refined = estimate_motion(tiny_trained, small_sequence, samples=2, refine_steps=8, progress=recorder,
                              trajectory="chain")
    assert [(total, done) for _, total, done in recorder.runs] == [(8, 8), (2, 2)]  # refinement, then samples
    assert recorder.runs[0][0].startswith("refine")
    assert amortised.metadata["refine_steps"] == 0 and refined.metadata["refine_steps"] == 8
    assert np.abs(refined.ed_to_t - amortised.ed_to_t).max() > 1e-3
    assert np.allclose(refined.ed_to_t[small_sequence.ed_frame], 0.0)


@pytest.mark.parametrize("changes", [dict(refine_steps=-1), dict(refine_lr=0.0), dict(refine_step_weight=-0.5)])
def test_bad_refinement_settings_are_refused(changes):
    with pytest.raises(MotionConfigError):
        MotionConfig(**changes).validate()
