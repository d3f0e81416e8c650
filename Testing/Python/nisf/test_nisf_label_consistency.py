"""Label-intensity consistency (fits without labels) and drawing labelled frames (labels at ED/ES only)."""

from __future__ import annotations

from dataclasses import replace

import torch

from CardiacMotionAtlasLib.nisf.consistency import blood_myocardium_midpoint, label_intensity_consistency


def _one_hot(classes):
    return torch.nn.functional.one_hot(torch.as_tensor(classes), 4).float()


def test_consistency_is_zero_for_bright_blood_and_dark_myocardium_and_penalises_the_swap():
    intensity = torch.tensor([0.8, 0.85, 0.2, 0.25, 0.5, 0.05])
    right = _one_hot([1, 3, 2, 2, 0, 0])  # background free whatever its intensity
    swapped = _one_hot([2, 2, 1, 3, 0, 0])
    assert abs(float(blood_myocardium_midpoint(right, intensity)) - 0.525) < 1e-5
    assert float(label_intensity_consistency(right, intensity)) < 1e-8
    assert float(label_intensity_consistency(swapped, intensity)) > 0.01


def test_consistency_gradient_moves_myocardium_off_a_bright_pixel():
    intensity = torch.tensor([0.8, 0.8, 0.2, 0.2])
    logits = torch.zeros(4, 4)
    logits[:2, 1] = 3.0
    logits[2:, 2] = 3.0
    logits[0, 2] = 3.5  # a bright pixel labelled myocardium
    logits.requires_grad_(True)
    label_intensity_consistency(torch.softmax(logits, 1), intensity).backward()
    assert float(logits.grad[0, 2]) > 0  # descent lowers its myocardium logit
    assert float(logits.grad[0, 0]) < 0  # and raises the free background's


def test_labelled_frames_are_drawn_at_the_requested_fraction(nisf_sims):
    from CardiacMotionAtlasLib.benchmarks.nisf import labels_at_ed_es
    from CardiacMotionAtlasLib.nisf.data import prepare_subject
    from CardiacMotionAtlasLib.nisf.config import NISFConfig
    from CardiacMotionAtlasLib.nisf.objective import SliceBatchSampler

    study = labels_at_ed_es(nisf_sims[0].study)
    assert all(len(s.labelled_frames) <= 2 for s in study.slices if s.labels is not None)
    subject = prepare_subject(study, NISFConfig.tiny(), use_labels=True)
    sampler = SliceBatchSampler([subject], torch.device("cpu"))
    share = {}
    for fraction in (0.0, 0.75):
        batch = sampler.sample(torch.Generator().manual_seed(0), 40, 200, labelled_fraction=fraction)
        share[fraction] = float((batch.labels >= 0).float().mean())
    n_frames = subject.n_frames
    assert abs(share[0.0] - 2 / n_frames) < 0.1  # uniform frames: the labelled share of the frames
    assert share[0.75] > 0.75 - 0.05  # at least the requested share (uniform draws add more)
    again = sampler.sample(torch.Generator().manual_seed(0), 40, 200)
    assert torch.equal(again.labels, sampler.sample(torch.Generator().manual_seed(0), 40, 200, labelled_fraction=0.0).labels)


def test_fit_with_consistency_and_labelled_frames_changes_only_when_switched_on(tiny_trained, nisf_sims):
    from CardiacMotionAtlasLib.nisf import fit_subject

    study = nisf_sims[1].study
    base = replace(tiny_trained.config.fit, steps=12, rv_probe_steps=0)
    assert base.label_consistency_weight == 0.0 and base.labelled_frame_fraction == 0.0  # both opt-in
    a = fit_subject(tiny_trained, study, base)
    b = fit_subject(tiny_trained, study, replace(base, labelled_frame_fraction=0.5))  # no labels: no effect
    c = fit_subject(tiny_trained, study, replace(base, label_consistency_weight=10.0))
    assert a.history["loss"] == b.history["loss"]
    assert a.history["loss"] != c.history["loss"]
