"""The CVAE decoder's conditional U-Net (a trainable frame encoder at every level) and coarse-to-fine flow heads."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from CardiacMotionAtlasLib.synthesis import SynthConfig
from CardiacMotionAtlasLib.synthesis.cvae import ConditionalFlowVAE
from CardiacMotionAtlasLib.synthesis.pyramid import FeaturePyramid


def _model(**options):
    config = replace(SynthConfig.tiny(), **options)
    torch.manual_seed(0)
    return config, ConditionalFlowVAE(config), FeaturePyramid(config.pyramid_channels)


def _inputs(config, n=2):
    generator = torch.Generator().manual_seed(1)
    size = config.working_size
    frame = torch.randn((n, 1, size, size, size), generator=generator)
    latent = torch.randn((n, config.latent_dim), generator=generator)
    return frame, latent


def test_a_constant_coarse_flow_reaches_full_size_unchanged():
    """The coarsest head's flow is in full-size voxels / flow_scale: a constant there is the same constant
    displacement (x flow_scale) everywhere at full size, through every upsampling."""
    config, model, pyramid = _model(coarse_to_fine_flow=True)
    frame, latent = _inputs(config)
    with torch.no_grad():
        features = pyramid(frame)
        before = model.decode(latent, frame, features)
        assert all(torch.count_nonzero(head.weight) == 0 for head in model.level_heads)  # starts as the plain decoder
        model.level_heads[0].bias.copy_(torch.tensor([0.25, -0.5, 0.0]))
        after = model.decode(latent, frame, features)
    shift = (after - before).reshape(2, 3, -1)
    expected = config.flow_scale_vox * torch.tensor([0.25, -0.5, 0.0])
    assert torch.allclose(shift, expected.view(1, 3, 1).expand_as(shift), atol=1e-5)


def test_a_coarse_ramp_is_upsampled_to_the_matching_full_size_ramp():
    """A coarse flow that is linear in position (the grid of level 1, voxel i on full-size voxel 2^l i)
    upsamples to the same linear field at full size, away from the clamped border."""
    config, model, pyramid = _model(coarse_to_fine_flow=True)
    frame, latent = _inputs(config, n=1)
    size = config.working_size
    with torch.no_grad():
        features = pyramid(frame)
        before = model.decode(latent, frame, features)
        last = model.level_heads[-1]  # the level just below full size (size / 2, voxel i at full-size 2 i)
        captured = {}

        def ramp(_module, _inputs, output):
            k = torch.arange(output.shape[2], dtype=output.dtype)
            field = torch.zeros_like(output)
            field[:, 2] = 0.01 * (2 * k).view(1, -1, 1, 1)  # 0.01 x the full-size z voxel index, in flow_scale units
            captured["shape"] = output.shape
            return output + field

        handle = last.register_forward_hook(ramp)
        after = model.decode(latent, frame, features)
        handle.remove()
    assert captured["shape"][2] == size // 2
    k = torch.arange(size, dtype=after.dtype)
    inner = slice(0, size - 2)  # the last full-size voxels lie beyond the last coarse voxel (border: clamped)
    difference = (after - before)[0, 2, inner]
    assert torch.allclose(difference, config.flow_scale_vox * 0.01 * k[inner].view(-1, 1, 1).expand_as(difference), atol=1e-4)


def test_frame_skips_feed_the_decoder_and_train(synth_pairs):
    """With skips the decoder's output depends on the trainable frame encoder (not only on the frozen
    pyramid), and one training step changes that encoder's weights."""
    from CardiacMotionAtlasLib.synthesis.train import train_cvae, train_flow_estimator

    config, model, pyramid = _model(decoder_frame_skips=True, coarse_to_fine_flow=True)
    frame, latent = _inputs(config)
    with torch.no_grad():
        features = pyramid(frame)
        for head in model.level_heads:
            torch.nn.init.normal_(head.weight, std=0.1)
        before = model.decode(latent, frame, features)
        one = model.decode(latent[:1].expand(2, -1), frame[:1], [f[:1] for f in features])  # one frame, many latents
        assert torch.allclose(one[0], model.decode(latent[:1], frame[:1], [f[:1] for f in features])[0], atol=1e-6)
        model.frame_encoder[-1][0].weight.mul_(2.0)
        after = model.decode(latent, frame, features)
    assert (after - before).abs().max() > 1e-4
    plain = ConditionalFlowVAE(replace(config, decoder_frame_skips=False))
    assert not hasattr(plain, "frame_encoder")

    base = replace(config, cvae_steps=1, checkpoint_every=0)
    estimator = train_flow_estimator(synth_pairs, base, steps=1, device="cpu")
    torch.manual_seed(base.seed + 1)
    from CardiacMotionAtlasLib.synthesis.cvae import SynthesisModel

    fresh = SynthesisModel(base).cvae.frame_encoder.state_dict()
    trained = train_cvae(synth_pairs, estimator, base, device="cpu")
    changed = [k for k, v in trained.model.cvae.frame_encoder.state_dict().items() if not torch.equal(v, fresh[k])]
    assert changed


@pytest.mark.parametrize("skips,c2f", [(True, True), (False, False)])
def test_decoder_layouts_travel_in_the_checkpoint(synth_pairs, tmp_path, skips, c2f):
    from CardiacMotionAtlasLib.synthesis import load_synthesis
    from CardiacMotionAtlasLib.synthesis.sample import sample_flows
    from CardiacMotionAtlasLib.synthesis.train import train_cvae, train_flow_estimator

    config = replace(SynthConfig.tiny(), cvae_steps=2, checkpoint_every=0, decoder_frame_skips=skips, coarse_to_fine_flow=c2f)
    estimator = train_flow_estimator(synth_pairs, config, steps=1, device="cpu")
    trained = train_cvae(synth_pairs, estimator, config, checkpoint_path=tmp_path / "synth.pt", device="cpu")
    loaded = load_synthesis(tmp_path / "synth.pt", device="cpu")
    assert (loaded.config.decoder_frame_skips, loaded.config.coarse_to_fine_flow) == (skips, c2f)
    latents = torch.randn(2, config.latent_dim, generator=torch.Generator().manual_seed(0))
    es = torch.as_tensor(synth_pairs[0].es)
    assert torch.equal(sample_flows(loaded, es, latents), sample_flows(trained, es, latents))


def test_a_checkpoint_written_before_the_decoder_options_loads_with_the_plain_decoder(loads_as_before_options):
    """A checkpoint whose stored config has no ``decoder_frame_skips`` / ``coarse_to_fine_flow`` holds the
    plain decoder: it loads as such whatever the current defaults, and samples as before."""
    config = replace(SynthConfig.tiny(), cvae_steps=2, checkpoint_every=0, decoder_frame_skips=False, coarse_to_fine_flow=False)
    loads_as_before_options(config, ("decoder_frame_skips", "coarse_to_fine_flow"))
