"""The conditional prior p(z | frame): a latent that matters and samples that follow their subject."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.synthesis import SynthConfig
from CardiacMotionAtlasLib.synthesis.cvae import kl_divergence
from CardiacMotionAtlasLib.synthesis.data import stack_pairs
from CardiacMotionAtlasLib.synthesis.sample import sample_flows
from CardiacMotionAtlasLib.synthesis.train import train_cvae, train_flow_estimator
from CardiacMotionAtlasLib.synthesis.cvae import ConditionalFlowVAE, cvae_loss
from CardiacMotionAtlasLib.synthesis.data import FlowPair


def test_kl_to_a_gaussian_prior_matches_torch():
    generator = torch.Generator().manual_seed(2)
    mu, logvar, pmu, plogvar = (torch.randn(3, 5, generator=generator) for _ in range(4))
    expected = torch.distributions.kl_divergence(torch.distributions.Normal(mu, (0.5 * logvar).exp()),
                                                 torch.distributions.Normal(pmu, (0.5 * plogvar).exp())).mean()
    assert kl_divergence(mu, logvar, pmu, plogvar).item() == pytest.approx(expected.item(), rel=1e-5)
    assert kl_divergence(mu, logvar, mu, logvar).item() == pytest.approx(0.0, abs=1e-6)


def test_free_bits_and_the_prior_pull_reach_the_right_parameters():
    config = replace(SynthConfig.tiny(), kl_free_nats=0.5)
    target = torch.zeros(2, 3, 4, 4, 4)
    mu = torch.full((2, 4), 0.3, requires_grad=True)
    logvar = torch.zeros(2, 4, requires_grad=True)
    prior_mu = torch.zeros(2, 4, requires_grad=True)
    prior_logvar = torch.zeros(2, 4, requires_grad=True)
    total, _, kl = cvae_loss(target, target, mu, logvar, config, prior_mu=prior_mu, prior_logvar=prior_logvar)
    total.backward()
    assert kl.item() == pytest.approx(0.5 * 0.09)  # the reported KL is the true one
    assert torch.all(mu.grad == 0)  # below the free bits the posterior is not pulled ...
    assert torch.all(prior_mu.grad < 0)  # ... but the prior still moves towards it


def test_an_untrained_conditional_prior_is_the_standard_normal():
    config = SynthConfig.tiny()
    cvae = ConditionalFlowVAE(config)
    frame = torch.randn(2, 1, 16, 16, 16)
    features = [torch.randn(2, c, 16 // 2 ** (i + 1), 16 // 2 ** (i + 1), 16 // 2 ** (i + 1))
                for i, c in enumerate(config.pyramid_channels)]
    mu, logvar = cvae.prior(frame, features)
    assert torch.all(mu == 0) and torch.all(logvar == 0)
    noise = torch.randn(3, config.latent_dim)
    assert torch.equal(cvae.latent_from_noise(noise, frame[:1], [f[:1] for f in features]), noise)


def _amplitude_subjects(pairs):
    """Two subjects whose ES frames differ and whose hearts contract weakly (x0.5) and strongly (x1.5)."""
    return [FlowPair(p.subject_id, p.es, p.ed, (p.flow_vox * s).astype(np.float32), p.ijk_to_ras, p.labels_es, p.labels_ed)
            for p, s in zip(pairs[:2], (0.5, 1.5))]


def _prior_check(synth_pairs, index_weight: float, **overrides):
    """Train the tiny CVAE on the two amplitude subjects; ``(prior mean separation, prior-mean flow
    amplitudes, true amplitudes)``, asserting on the way that the latent changes every subject's samples."""
    subjects = _amplitude_subjects(synth_pairs)
    augment = replace(SynthConfig.tiny().augment, shift_vox=0.0, zoom=0.0, noise_hu=0.0, motion_scale=0.2)
    config = replace(SynthConfig.tiny(), cvae_steps=200, augment=augment, index_weight=index_weight, **overrides)
    estimator = train_flow_estimator(subjects, config, steps=30, device="cpu")
    trained = train_cvae(subjects, estimator, config, device="cpu")
    data = stack_pairs(subjects, config)
    with torch.no_grad():
        prior_mu, _ = trained.model.cvae.prior(data.es, trained.model.condition(data.es))
    noise = torch.randn(6, config.latent_dim, generator=torch.Generator().manual_seed(0))
    amplitude = []
    for subject in subjects:
        heart = torch.as_tensor(subject.labels_ed > 0)
        mean_flow = sample_flows(trained, torch.as_tensor(subject.es), torch.zeros(1, config.latent_dim))[0]
        amplitude.append(float(mean_flow.norm(dim=0)[heart].mean()))
        flows = sample_flows(trained, torch.as_tensor(subject.es), noise)
        pairwise = [float((flows[i] - flows[j]).norm(dim=0)[heart].mean()) for i in range(6) for j in range(i + 1, 6)]
        assert np.mean(pairwise) > 0.03  # voxels: the latent changes the decoded flow
    truth = [float(np.linalg.norm(s.flow_vox, axis=0)[s.labels_ed > 0].mean()) for s in subjects]
    return float((prior_mu[0] - prior_mu[1]).norm()), amplitude, truth


def test_prior_means_follow_the_subject_and_latents_change_the_samples(synth_pairs):
    """Without the implied-volume term and with the hybrid prior term on random prior draws (no LVEF coordinate)
    the subject's amplitude is carried by the prior mean. (With the opt-in ``prior_recon_at_mean`` the
    decoder reads it from the frame and the prior means need not separate: 0.05 here.)"""
    separation, amplitude, truth = _prior_check(synth_pairs, index_weight=0.0, prior_recon_at_mean=False,
                                                amplitude_latent=False)
    # untrained, both means are exactly 0 (the test above): training separated them by subject
    assert separation > 1.0
    # the prior mean's flow moves the strongly contracting heart more than the weak one, by about the truth
    assert amplitude[1] > 2.0 * amplitude[0]
    assert amplitude == pytest.approx(truth, rel=0.5)


def test_with_the_implied_volume_term_the_prior_mean_flow_follows_the_subject(synth_pairs):
    """The session 8 default (index_weight > 0, no LVEF coordinate): the decoder reads the amplitude from the frame (the prior means
    separate less, 0.15 here), the prior-mean flow still moves each heart by about its truth, and the
    latent still changes the samples."""
    assert SynthConfig().index_weight > 0
    _, amplitude, truth = _prior_check(synth_pairs, index_weight=SynthConfig().index_weight, amplitude_latent=False)
    assert amplitude[1] > 2.0 * amplitude[0]
    assert amplitude == pytest.approx(truth, rel=0.25)


def test_a_checkpoint_of_the_earlier_model_is_refused_by_name(trained_synth, tmp_path):
    from CardiacMotionAtlasLib.errors import CheckpointError
    from CardiacMotionAtlasLib.synthesis import load_synthesis
    from CardiacMotionAtlasLib.synthesis.train import CVAE_KIND
    from CardiacMotionAtlasLib.training import load_checkpoint
    from CardiacMotionAtlasLib.training.checkpoint import save_checkpoint

    checkpoint = load_checkpoint(trained_synth.checkpoint_path, expected_kind=CVAE_KIND, map_location="cpu")
    old_state = {k: v for k, v in checkpoint.model_state.items()
                 if not k.startswith(("cvae.film.", "cvae.prior_encoder.", "cvae.prior_head."))}
    old = save_checkpoint(tmp_path / "old_synth.pt", model_state=old_state, config=checkpoint.config,
                          step=checkpoint.step, kind=CVAE_KIND)
    with pytest.raises(CheckpointError, match="earlier synthesis model") as error:
        load_synthesis(old, device="cpu")
    assert "old_synth.pt" in str(error.value)


def test_conditioning_summary_against_scipy():
    from scipy.stats import pearsonr

    from CardiacMotionAtlasLib.synthesis.indices import conditioning_summary, implied_indices

    truth = [35.0, 50.0, 62.0, 44.0]
    samples = [[30.0, 36.0, 33.0], [49.0, 58.0], [55.0, 57.0, 59.0], [20.0, 70.0]]
    summary = conditioning_summary(truth, samples, (30.0, 65.0))
    means = [np.mean(s) for s in samples]
    assert summary["pearson"] == pytest.approx(pearsonr(means, truth)[0])
    assert summary["mae_pct"] == pytest.approx(np.mean(np.abs(np.subtract(means, truth))))
    assert summary["bias_pct"] == pytest.approx(np.mean(np.subtract(means, truth)))
    assert summary["spread_pct"] == pytest.approx(np.mean([6.0, 9.0, 4.0, 50.0]))
    assert summary["spread_of_cohort"] == pytest.approx(summary["spread_pct"] / 35.0)
    assert summary["in_cohort_range_pct"] == pytest.approx(100.0 * 8 / 10)  # 20 and 70 lie outside
    labels_es = np.zeros((4, 4, 4), np.uint8)
    labels_es[1:3, 1:3, 1:2] = 1  # 4 LV voxels at ES
    labels_ed = np.zeros_like(labels_es)
    labels_ed[1:3, 1:3, 1:3] = 1  # 8 at ED: EF 50 %
    assert implied_indices(labels_es, labels_ed)["lvef_pct"] == pytest.approx(50.0)
    assert np.isnan(implied_indices(labels_es, labels_ed)["myo_change_pct"])  # no myocardium: undefined


def test_with_the_lvef_coordinate_the_decoder_follows_it(synth_pairs):
    """The opt-in LVEF coordinate on the two amplitude subjects: decoding along coordinate 0 (other
    coordinates at the prior mean) moves each heart monotonically more. (What does not hold yet, and why it
    is off: the prior's mean of the coordinate does not separate the two subjects here.)"""
    assert not SynthConfig().amplitude_latent and not SynthConfig().amplitude_lvef  # opt-in
    subjects = _amplitude_subjects(synth_pairs)
    augment = replace(SynthConfig.tiny().augment, shift_vox=0.0, zoom=0.0, noise_hu=0.0, motion_scale=0.2)
    config = replace(SynthConfig.tiny(), cvae_steps=200, augment=augment, amplitude_latent=True, amplitude_lvef=True)
    estimator = train_flow_estimator(subjects, config, steps=30, device="cpu")
    trained = train_cvae(subjects, estimator, config, device="cpu")
    latents = torch.zeros(3, config.latent_dim)
    latents[:, 0] = torch.tensor([-2.0, 0.0, 2.0])
    for subject in subjects:
        heart = torch.as_tensor(subject.labels_ed > 0)
        flows = sample_flows(trained, torch.as_tensor(subject.es), latents)
        weak, mid, strong = (float(f.norm(dim=0)[heart].mean()) for f in flows)
        assert weak < mid < strong and strong > 2.0 * weak
