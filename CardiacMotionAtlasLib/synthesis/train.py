"""Training: (1) the PWC-style flow estimator on CT phase pairs with ground-truth (or demons) flows, whose
pyramid is then frozen; (2) the CVAE on the same pairs, conditioned on the frozen pyramid.

Both stages run through :func:`~CardiacMotionAtlasLib.training.run_training`: atomic ``weights_only``
checkpoints (kinds ``"ct_flow_estimator"`` and ``"ct_cvae"``; the CVAE checkpoint holds the whole
:class:`SynthesisModel`, estimator included, so it alone is needed to sample), ``resume=True``,
progress and cancellation. Step ``s`` draws its batch and augmentations from
``make_generator(seed, stream=s)``, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from .. import __version__ as LIBRARY_VERSION
from ..errors import CheckpointError
from ..training import TrainingResult, make_generator, make_state_fns, rebuild_model, run_training, select_device
from ..training.schedules import cosine_factor
from .config import SynthConfig
from .cvae import SynthesisModel, amplitude_coordinate, cvae_loss, lvef_coordinate, with_amplitude
from .data import FlowPair, PairTensors, augment, stack_pairs
from .flow_loss import index_error, reconstruction_loss
from .grid import clip_flow_vox
from .pyramid import FlowEstimator, estimator_loss

ESTIMATOR_KIND = "ct_flow_estimator"
CVAE_KIND = "ct_cvae"
PathLike = Union[str, Path]
DeviceLike = Union[str, torch.device, None]


def _as_tensors(pairs: Union[Sequence[FlowPair], PairTensors], config: SynthConfig, device: torch.device) -> PairTensors:
    if isinstance(pairs, PairTensors):
        return PairTensors(pairs.es.to(device), pairs.ed.to(device), pairs.flow.to(device),
                           None if pairs.masks_es is None else pairs.masks_es.to(device))
    return stack_pairs(pairs, config, device)


def _batch(data: PairTensors, config: SynthConfig, step: int, masks: bool = False):
    """An augmented batch ``(es, ed, flow)`` (``masks``: and the ES LV masks, None where the data has none)
    and the step's generator."""
    generator = make_generator(config.seed, stream=step)
    index = torch.randint(len(data), (config.batch_size,), generator=generator).to(data.es.device)
    if not masks:
        return augment(data.es[index], data.ed[index], data.flow[index], config.augment, config.hu_scale, generator), generator
    if data.masks_es is None:
        batch = augment(data.es[index], data.ed[index], data.flow[index], config.augment, config.hu_scale, generator)
        return (*batch, None), generator
    return augment(data.es[index], data.ed[index], data.flow[index], config.augment, config.hu_scale, generator,
                   data.masks_es[index]), generator


def model_fingerprint(module: torch.nn.Module) -> str:
    """First 12 hex digits of the SHA-256 of a module's parameters and buffers (a model version)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def train_flow_estimator(pairs: Union[Sequence[FlowPair], PairTensors], config: Optional[SynthConfig] = None, *,
                         steps: Optional[int] = None, checkpoint_path: Optional[PathLike] = None, resume: bool = False,
                         device: DeviceLike = "auto", progress=None, cancel=None,
                         description: str = "train flow estimator") -> FlowEstimator:
    """Train a 3D PWC flow estimator (``ED(p) = ES(p + w(p))``) on working-grid pairs; returns it in
    eval mode. ``steps`` overrides ``config.estimator_steps``."""
    config = (config or SynthConfig()).validate()
    device = select_device(device)
    data = _as_tensors(pairs, config, device)
    total = config.estimator_steps if steps is None else int(steps)
    torch.manual_seed(config.seed)
    estimator = FlowEstimator(config.pyramid_channels, config.search_radius, config.estimator_hidden).to(device)
    optimizer = torch.optim.Adam(estimator.parameters(), lr=config.estimator_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, total))
    state_dict_fn, load_state_fn = make_state_fns(estimator, optimizer, scheduler)

    def step_fn(step: int):
        (es, ed, flow), _ = _batch(data, config, step)
        flows, full = estimator(ed, es)
        loss = estimator_loss(flows, full, flow)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(estimator.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        return {"epe_loss": loss.detach()}

    estimator.train()
    run_training(step_fn, total_steps=total, checkpoint_path=checkpoint_path, checkpoint_every=config.checkpoint_every,
                 state_dict_fn=state_dict_fn, load_state_fn=load_state_fn, config=config, kind=ESTIMATOR_KIND,
                 resume=resume, progress=progress, cancel=cancel, description=description)
    return estimator.eval().requires_grad_(False)


def prior_parameters(cvae) -> list:
    """The conditional prior's own parameters (its frame encoder and head); empty without a learned prior."""
    if not cvae.conditional_prior:
        return []
    return list(cvae.prior_encoder.parameters()) + list(cvae.prior_head.parameters())


def _clip_gradients(cvae, config: SynthConfig) -> dict:
    """Clip the CVAE's gradients in place; returns the pre-clip norms (``grad_norm``, ``prior_grad_norm``).

    ``prior_grad_clip`` 0: one norm over all parameters at ``grad_clip`` (the prior head's small gradient
    is scaled down with the decoder's large one); > 0: the prior's parameters are clipped on their own at
    ``prior_grad_clip`` and the rest at ``grad_clip``."""
    prior = prior_parameters(cvae)
    prior_ids = {id(p) for p in prior}
    rest = [p for p in cvae.parameters() if id(p) not in prior_ids]
    if config.prior_grad_clip > 0 and prior:
        prior_norm = torch.nn.utils.clip_grad_norm_(prior, config.prior_grad_clip)
        rest_norm = torch.nn.utils.clip_grad_norm_(rest, config.grad_clip)
    else:
        with torch.no_grad():
            prior_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in prior
                                                               if p.grad is not None])) if prior else torch.zeros(())
        rest_norm = torch.nn.utils.clip_grad_norm_(list(cvae.parameters()), config.grad_clip)
    return {"grad_norm": rest_norm.detach(), "prior_grad_norm": prior_norm.detach()}


@dataclass
class TrainedSynthesis:
    """A trained (or loaded) synthesis model: config, estimator + CVAE, device, checkpoint, version."""

    config: SynthConfig
    model: SynthesisModel
    device: torch.device
    checkpoint_path: Optional[Path] = None
    result: Optional[TrainingResult] = None
    step: int = 0

    @property
    def model_version(self) -> str:
        """``ct_cvae/<library version>/step<N>/<weights fingerprint>``: stored with every sample."""
        return f"{CVAE_KIND}/{LIBRARY_VERSION}/step{self.step}/{model_fingerprint(self.model)}"


def train_cvae(pairs: Union[Sequence[FlowPair], PairTensors], estimator: FlowEstimator,
               config: Optional[SynthConfig] = None, *, checkpoint_path: Optional[PathLike] = None,
               resume: bool = False, device: DeviceLike = "auto", progress=None, cancel=None) -> TrainedSynthesis:
    """Train the CVAE with the estimator's pyramid frozen (its weights never change); returns the model."""
    config = (config or SynthConfig()).validate()
    device = select_device(device)
    data = _as_tensors(pairs, config, device)
    torch.manual_seed(config.seed + 1)
    model = SynthesisModel(config).to(device)
    model.estimator.load_state_dict(estimator.state_dict())
    model.estimator.eval().requires_grad_(False)
    optimizer = torch.optim.Adam(model.cvae.parameters(), lr=config.cvae_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, config.cvae_steps))
    state_dict_fn, load_model = make_state_fns(model, optimizer, scheduler)
    frozen = model_fingerprint(model.estimator)

    def load_state_fn(checkpoint) -> None:
        load_model(checkpoint)
        if model_fingerprint(model.estimator) != frozen:
            raise CheckpointError(checkpoint.path, "was trained with another flow estimator; cannot resume")

    def step_fn(step: int):
        (es, _, flow, masks), generator = _batch(data, config, step, masks=True)
        es_masks = masks  # for the LVEF coordinate, whatever the implied-volume term
        if config.index_weight <= 0:
            masks = None
        scale = torch.ones((flow.shape[0],), device=flow.device, dtype=flow.dtype)
        if config.augment.enabled and config.augment.motion_scale > 0:  # stronger / weaker contraction
            draw = torch.rand((flow.shape[0],), generator=generator, device=generator.device)
            scale = (1.0 + config.augment.motion_scale * (2 * draw - 1)).to(flow.device, flow.dtype)
            flow = clip_flow_vox(flow * scale.view(-1, 1, 1, 1, 1), config)
        # the known scale as latent coordinate 0 (``amplitude_latent``; None: the latent is all free)
        amplitude = amplitude_coordinate(scale, config.augment.motion_scale) if config.amplitude_latent else None
        if config.amplitude_latent and config.amplitude_lvef:  # the training flow's implied LVEF (needs ES labels)
            amplitude = None if es_masks is None else lvef_coordinate(es_masks, flow)
        features = model.condition(es)
        predicted, mu, logvar = model.cvae(flow, es, features, generator=generator, amplitude=amplitude)
        prior_mu, prior_logvar = model.cvae.prior(es, features) if model.cvae.conditional_prior else (None, None)
        warmup = config.kl_warmup_fraction * config.cvae_steps
        loss, mse, kl = cvae_loss(predicted, flow, mu, logvar, config, min(1.0, (step + 1) / warmup) if warmup else 1.0,
                                  prior_mu, prior_logvar, masks, amplitude)
        metrics = {}
        if masks is not None:  # the implied-volume error of the posterior reconstruction, for the log
            with torch.no_grad():
                metrics["index"] = index_error(predicted, flow, masks)
        if prior_mu is not None and config.prior_recon_weight > 0:  # Sohn et al.'s hybrid (GSNN) term
            if config.prior_recon_at_mean:  # the prior mean carries the conditioning; the spread stays free
                latent = prior_mu
            else:
                noise = torch.randn(prior_mu.shape, generator=generator, device=generator.device).to(prior_mu)
                latent = prior_mu + noise * (0.5 * prior_logvar).exp()
            if amplitude is not None:  # the prior draw at the known scale: one target, nothing to hedge
                latent = with_amplitude(latent, amplitude)
            from_prior = model.cvae.decode(latent, es, features)
            prior_loss, prior_mse = reconstruction_loss(from_prior, flow, config, masks)  # same error as the posterior's
            loss = loss + config.prior_recon_weight * prior_loss
            metrics["prior_mse"] = prior_mse.detach()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        metrics.update(_clip_gradients(model.cvae, config))
        optimizer.step()
        scheduler.step()
        return {"loss": loss.detach(), "mse": mse.detach(), "kl": kl.detach(), **metrics}

    model.cvae.train()
    result = run_training(step_fn, total_steps=config.cvae_steps, checkpoint_path=checkpoint_path,
                          checkpoint_every=config.checkpoint_every, state_dict_fn=state_dict_fn,
                          load_state_fn=load_state_fn, config=config, kind=CVAE_KIND, resume=resume,
                          progress=progress, cancel=cancel, description="train CT motion CVAE")
    model.eval().requires_grad_(False)
    path = None if checkpoint_path is None else Path(checkpoint_path)
    trained = TrainedSynthesis(config, model, device, path, step=result.step)
    trained.result = result
    return trained


def train_synthesis(pairs: Sequence[FlowPair], config: Optional[SynthConfig] = None, *,
                    out_dir: Optional[PathLike] = None, resume: bool = False, device: DeviceLike = "auto",
                    progress=None, cancel=None) -> TrainedSynthesis:
    """Both stages; checkpoints ``out_dir/estimator.pt`` and ``out_dir/synth.pt`` (the one to sample from)."""
    config = (config or SynthConfig()).validate()
    out = None if out_dir is None else Path(out_dir)
    estimator = train_flow_estimator(pairs, config, checkpoint_path=None if out is None else out / "estimator.pt",
                                     resume=resume, device=device, progress=progress, cancel=cancel)
    return train_cvae(pairs, estimator, config, checkpoint_path=None if out is None else out / "synth.pt",
                      resume=resume, device=device, progress=progress, cancel=cancel)


def _check_film(checkpoint) -> None:
    if not any(key.startswith("cvae.film.") for key in checkpoint.model_state):
        raise CheckpointError(checkpoint.path, "was written by an earlier synthesis model (no conditional prior, no "
                                               "latent FiLM path); retrain it with 'cardiac-atlas synth train'")


def load_synthesis(path: PathLike, device: DeviceLike = "auto", *,
                   allow_incomplete: Optional[bool] = None) -> TrainedSynthesis:
    """Load a ``synth.pt`` written by :func:`train_cvae` (``weights_only=True``) onto ``device``;
    ``allow_incomplete`` as in :func:`~CardiacMotionAtlasLib.training.checkpoint.rebuild_model`."""
    rebuilt = rebuild_model(path, kind=CVAE_KIND, config_cls=SynthConfig,
                            build=lambda config, checkpoint: SynthesisModel(_stored_layout(config, checkpoint)),
                            device=device, allow_incomplete=allow_incomplete, check_state=_check_film)
    config = _stored_layout(rebuilt.config, rebuilt.checkpoint)
    return TrainedSynthesis(config, rebuilt.module, rebuilt.device, Path(path), step=rebuilt.checkpoint.step)


_LAYOUT_ADDED = ("decoder_frame_skips", "coarse_to_fine_flow")
"""Decoder options added after checkpoints were written without them: such a checkpoint holds the plain
decoder, so a missing key means off (not the current default)."""


_LOSS_ADDED = ("index_log_ratio", "prior_recon_at_mean", "amplitude_latent", "amplitude_lvef")
"""Training options added after checkpoints were written without them (they change no layout): a
checkpoint without them was trained with them off, which its loaded config then states (and
``amplitude_latent`` off keeps the learned prior on every latent dimension, as it was trained)."""


def _stored_layout(config: SynthConfig, checkpoint) -> SynthConfig:
    stored = checkpoint.config if isinstance(checkpoint.config, dict) else {}
    missing = {key: False for key in _LAYOUT_ADDED + _LOSS_ADDED if key not in stored}
    return replace(config, **missing) if missing else config

def estimate_flow(estimator: FlowEstimator, ed: torch.Tensor, es: torch.Tensor) -> torch.Tensor:
    """Full-resolution voxel flow ``(N, 3, n, n, n)`` for normalised working-grid frames, no gradients."""
    with torch.no_grad():
        return estimator(ed, es)[1]


__all__ = ["CVAE_KIND", "ESTIMATOR_KIND", "TrainedSynthesis", "estimate_flow", "load_synthesis", "model_fingerprint",
           "train_cvae", "train_flow_estimator", "train_synthesis"]
