"""Issue 18, session 10: the conditional prior's own gradient clip (``SynthConfig.prior_grad_clip``).

With one clip over all CVAE parameters the prior's (small) gradient is scaled down by the decoder's large
one; with ``prior_grad_clip`` > 0 each group is clipped on its own norm.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from CardiacMotionAtlasLib.synthesis import SynthConfig
from CardiacMotionAtlasLib.synthesis.cvae import ConditionalFlowVAE
from CardiacMotionAtlasLib.synthesis.errors import SynthesisError
from CardiacMotionAtlasLib.synthesis.train import _clip_gradients, prior_parameters


def _norm(params) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params])))


def _with_gradients(config: SynthConfig) -> ConditionalFlowVAE:
    """A tiny CVAE whose prior gradients are small (norm 0.1) and the rest large (norm 50)."""
    torch.manual_seed(0)
    cvae = ConditionalFlowVAE(config)
    prior = prior_parameters(cvae)
    ids = {id(p) for p in prior}
    rest = [p for p in cvae.parameters() if id(p) not in ids]
    for group, target in ((prior, 0.1), (rest, 50.0)):
        for p in group:
            p.grad = torch.randn_like(p)
        scale = target / _norm(group)
        for p in group:
            p.grad.mul_(scale)
    return cvae


def test_prior_parameters_are_the_prior_encoder_and_head_only():
    cvae = ConditionalFlowVAE(SynthConfig.tiny())
    prior = prior_parameters(cvae)
    expected = len(list(cvae.prior_encoder.parameters())) + len(list(cvae.prior_head.parameters()))
    assert len(prior) == expected > 0
    assert not any(p is q for p in prior for q in cvae.decoder.parameters())
    assert prior_parameters(ConditionalFlowVAE(replace(SynthConfig.tiny(), conditional_prior=False))) == []


def test_one_clip_starves_the_prior_and_separate_clips_do_not():
    config = replace(SynthConfig.tiny(), grad_clip=0.75)
    shared = _with_gradients(config)
    norms = _clip_gradients(shared, config)
    assert float(norms["prior_grad_norm"]) == pytest.approx(0.1, rel=1e-4)  # reported before clipping
    assert _norm(list(shared.parameters())) == pytest.approx(0.75, rel=1e-3)
    assert _norm(prior_parameters(shared)) < 0.1 * 0.75 / 50 * 1.01  # scaled with the decoder's gradient

    separate = _with_gradients(replace(config, prior_grad_clip=0.75))
    _clip_gradients(separate, replace(config, prior_grad_clip=0.75))
    prior = prior_parameters(separate)
    ids = {id(p) for p in prior}
    assert _norm(prior) == pytest.approx(0.1, rel=1e-4)  # below its own clip: untouched
    assert _norm([p for p in separate.parameters() if id(p) not in ids]) == pytest.approx(0.75, rel=1e-3)


def test_negative_prior_grad_clip_is_refused():
    with pytest.raises(SynthesisError, match="prior_grad_clip"):
        replace(SynthConfig.tiny(), prior_grad_clip=-1.0).validate()


def test_pooled_only_prior_sees_global_averages_alone():
    config = replace(SynthConfig.tiny(), prior_pooled_only=True)
    pooled = sum(config.cvae_channels) + sum(config.pyramid_channels)
    assert ConditionalFlowVAE(config).prior_head[0].in_features == pooled
    full = ConditionalFlowVAE(SynthConfig.tiny()).prior_head[0].in_features
    coarse = config.working_size // 2 ** config.levels
    assert full == pooled + (config.cvae_channels[-1] + config.pyramid_channels[-1]) * coarse ** 3


def test_checkpoint_without_the_new_prior_options_loads_as_before(loads_as_before_options):
    loads_as_before_options(SynthConfig.tiny(), ["prior_pooled_only", "prior_grad_clip"])
