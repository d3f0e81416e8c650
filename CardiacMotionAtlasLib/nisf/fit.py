"""Inference: represent a new subject by optimising its latent, a global pose, the slice offsets and
the intensity scales, from intensities alone (or with the Dice of its labels too, ``use_labels``), and
after the warm-up a private copy of the network (test-time adaptation, ``FitConfig.lr_network``; the
shared model is never changed): the frozen network's latent spans only its training family's shapes,
so on hearts of another family the field could not agree with the subject's slices. The copy is held
near the trained weights by ``network_anchor`` x the sum of squared weight changes, travels with the
:class:`SubjectFit` (``adapted``) and is saved with it.

The global pose (rotation about the LV centre + translation) is unregularised: the network's anatomy
sits where the training subjects' frames put it, and without a pose the per-slice offsets would soak
up the difference. Slice offsets (L2-regularised) start moving after ``offset_warmup_fraction`` of
the steps, once pose and latent have settled. Fits go through ``run_training`` (progress, cancel,
optional checkpoint of kind ``"nisf_fit"``).

Without labels the frame's RV side is not observable from geometry (hearts lie in any pose): short
probe fits of the frame turned about the long axis choose it by the intensities (:func:`rv_side_candidates`).
With ``FitConfig.intersection_weight > 0`` (the default) the slice offsets also follow the slice-to-slice
intersection consistency of the observed intensities (:mod:`.intersections`), once the warm-up is over.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from ..data.cine_study import CineStudy
from ..errors import CheckpointError
from ..training import load_checkpoint, make_generator, make_state_fns, run_training
from ..training.schedules import cosine_factor
from .config import FitConfig
from .data import SubjectData, prepare_subject
from .errors import NISFConfigError
from .model import SubjectFit, subject_from_meta
from .objective import SliceBatchSampler, batch_loss
from .slices import SliceTable, SubjectParameters
from .train import TrainedNISF

FIT_KIND = "nisf_fit"
OPTIMISABLE = ("latent", "pose", "slices", "scales", "network")


def _copy_initial(params: SubjectParameters, subject: SubjectData, initial: SubjectFit) -> None:
    """Start from ``initial``'s latent and pose, and its offsets/scales for slices of the same name."""
    source = initial.params
    index = {s.name: i for i, s in enumerate(initial.subject.slices)}
    with torch.no_grad():
        params.latents.copy_(source.latents.to(params.latents.device))
        params.global_rotation_deg.copy_(source.global_rotation_deg.to(params.latents.device))
        params.global_translation_mm.copy_(source.global_translation_mm.to(params.latents.device))
        for position, slice_ in enumerate(subject.slices):
            if slice_.name in index:
                for name in ("slice_rotation_deg", "slice_translation_mm", "slice_through_plane_mm", "slice_intensity"):
                    value = getattr(source, name)[index[slice_.name]]
                    getattr(params, name)[position] = value.to(params.latents.device)


def fit_subject(trained: TrainedNISF, study: Union[CineStudy, SubjectData], fit: Optional[FitConfig] = None, *,
                use_labels: Optional[bool] = None, exclude_views: Sequence[str] = (),
                motion_correction: Optional[bool] = None, intensity_scaling: Optional[bool] = None,
                psf_enabled: Optional[bool] = None, initial: Optional[SubjectFit] = None,
                optimise: Sequence[str] = OPTIMISABLE, only_slices: Optional[Sequence[str]] = None,
                checkpoint_path: Optional[Union[str, Path]] = None, resume: bool = False, progress=None,
                cancel=None) -> SubjectFit:
    """Fit ``study`` with the network of ``trained`` (adapted in a copy when ``fit.lr_network > 0`` and
    ``"network"`` is in ``optimise``); returns a :class:`SubjectFit`.

    ``fit`` defaults to ``trained.config.fit``; ``use_labels`` overrides ``fit.use_labels``;
    ``motion_correction``/``intensity_scaling``/``psf_enabled`` override the model's switches (ablations).
    ``exclude_views`` leaves views out of the fit (held-out view experiments).

    Registering new slices to an existing reconstruction: ``initial`` (a :class:`SubjectFit` of the same
    subject) supplies the starting latent, pose and the offsets/scales of slices of the same name;
    ``optimise`` names what moves (subset of ``latent``, ``pose``, ``slices``, ``scales``, ``network``);
    ``only_slices`` (slice names) restricts the sampled voxels, hence the moving slices, to those.
    """
    unknown = sorted(set(optimise) - set(OPTIMISABLE))
    if unknown:
        raise NISFConfigError(f"cannot optimise {unknown}; choose from {OPTIMISABLE}")
    config = trained.config
    fit = fit or config.fit
    labels = fit.use_labels if use_labels is None else use_labels
    motion = config.motion_correction if motion_correction is None else motion_correction
    scaling = config.intensity_scaling if intensity_scaling is None else intensity_scaling
    subject = study if isinstance(study, SubjectData) else prepare_subject(study, config, use_labels=labels,
                                                                           exclude_views=exclude_views)
    if labels and not subject.has_labels:
        labels = False
    if (isinstance(study, CineStudy) and subject.frame.rv_from == "geometry" and initial is None
            and fit.rv_probe_steps > 0 and "pose" in optimise):
        subject = _choose_rv_side(trained, study, subject, fit, labels, scaling, psf_enabled)
    return _run_fit(trained, subject, fit, labels, motion, scaling, psf_enabled, initial, optimise, only_slices,
                    checkpoint_path, resume, progress, cancel)


def rv_side_candidates(study: CineStudy, subject: SubjectData, fit: FitConfig):
    """Frames to try when the geometry leaves the RV side open: the frame turned about the long axis by
    180 degrees with a 4CH view (its plane fixes the LV-RV line), by ``360 / rv_probe_azimuths``
    degrees steps without one. Returns ``[(degrees, StandardFrame)]``."""
    count = 2 if study.view("4CH") else max(int(fit.rv_probe_azimuths), 2)
    return [(360.0 * k / count, subject.frame.rotated_about_z(360.0 * k / count)) for k in range(count)]


def _choose_rv_side(trained: TrainedNISF, study: CineStudy, subject: SubjectData, fit: FitConfig, labels: bool,
                    scaling: bool, psf_enabled: Optional[bool]) -> SubjectData:
    """The prepared subject in the candidate frame (:func:`rv_side_candidates`) whose short fit (latent
    and pose, no slice offsets) reaches the lowest mean intensity MSE over its last half."""
    probe = replace(fit, steps=int(fit.rv_probe_steps), offset_warmup_fraction=1.0)
    best, best_score = subject, math.inf
    for degrees, frame in rv_side_candidates(study, subject, fit):
        candidate = replace(subject, frame=frame)  # same pixels: the MSEs compare like with like
        result = _run_fit(trained, candidate, probe, labels, False, scaling, psf_enabled, None,
                          ("latent", "pose", "scales"), None, None, False, None, None)
        mse = result.history["mse"]
        score = float(sum(mse[len(mse) // 2:]) / max(len(mse) - len(mse) // 2, 1))
        if score < best_score:
            best, best_score = candidate, score
    best.frame = replace(best.frame, rv_from="fit")
    return best


def _run_fit(trained: TrainedNISF, subject: SubjectData, fit: FitConfig, labels: bool, motion: bool, scaling: bool,
             psf_enabled: Optional[bool], initial: Optional[SubjectFit], optimise: Sequence[str],
             only_slices: Optional[Sequence[str]], checkpoint_path, resume: bool, progress, cancel) -> SubjectFit:
    """Optimise ``subject``'s learnables and, when adapting, a copy of the network (see :func:`fit_subject`)."""
    config = trained.config
    device = trained.device
    network = initial.network if initial is not None else trained.network  # an adapted fit keeps its copy
    network.requires_grad_(False)
    adapt = fit.lr_network > 0 and "network" in optimise
    anchor = None
    if adapt:  # a private copy follows this subject; the shared network stays as trained
        anchor = [p.detach().clone() for p in network.parameters()]
        network = copy.deepcopy(network).requires_grad_(True)
    params = SubjectParameters(1, len(subject.slices), config.network.latent_dim, config.network.latent_init_std,
                               make_generator(fit.seed, stream=10**6)).to(device)
    if initial is not None:
        _copy_initial(params, subject, initial)
    table = SliceTable([subject], device)
    sampler = SliceBatchSampler([subject], device, use_labels=labels)
    choices = None
    if only_slices is not None:
        names = [s.name for s in subject.slices]
        missing = sorted(set(only_slices) - set(names))
        if missing:
            raise NISFConfigError(f"{subject.source}: no slice named {missing} (slices: {names})")
        choices = torch.as_tensor([names.index(name) for name in only_slices])
    moving = lambda what, lr, on=True: lr if (what in optimise and on) else 0.0  # noqa: E731
    groups = [
        {"params": [params.latents], "lr": moving("latent", fit.lr_latent)},
        {"params": [params.global_rotation_deg], "lr": moving("pose", fit.lr_global_rotation_deg)},
        {"params": [params.global_translation_mm], "lr": moving("pose", fit.lr_global_translation_mm)},
        {"params": [params.slice_rotation_deg], "lr": moving("slices", fit.lr_rotation_deg, motion)},
        {"params": [params.slice_translation_mm], "lr": moving("slices", fit.lr_translation_mm, motion)},
        {"params": [params.slice_through_plane_mm], "lr": moving("slices", fit.lr_through_plane_mm, motion)},
        {"params": [params.slice_intensity], "lr": moving("scales", fit.lr_intensity, scaling)},
    ]
    if adapt:
        groups.append({"params": list(network.parameters()), "lr": fit.lr_network})
    optimizer = torch.optim.Adam(groups)
    warmup = int(fit.offset_warmup_fraction * fit.steps)
    decay = lambda step: cosine_factor(step, fit.steps)  # noqa: E731
    delayed = lambda step: 0.0 if step < warmup else decay(step)  # noqa: E731
    schedules = [decay, decay, decay, delayed, delayed, delayed, delayed] + ([delayed] if adapt else [])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedules)
    history = {"loss": [], "mse": []}
    state = torch.nn.ModuleDict({"params": params, "network": network}) if adapt else params
    state_dict_fn, load_state_fn = make_state_fns(state, optimizer, scheduler)
    crossings = None
    if motion and fit.intersection_weight > 0 and "slices" in optimise and only_slices is None:
        # (not with only_slices: the crossings would move the slices that are meant to stay put)
        from .intersections import IntersectionSampler

        crossings = IntersectionSampler(subject, table, device)

    def step_fn(step: int):
        generator = make_generator(fit.seed, stream=step)
        batch = sampler.sample(generator, fit.slices_per_step, fit.points_per_slice, choices,
                               labelled_fraction=fit.labelled_frame_fraction if labels else 0.0)
        loss, parts = batch_loss(network, params, table, batch, config, generator, use_labels=labels,
                                 motion_correction=motion, intensity_scaling=scaling, psf_enabled=psf_enabled,
                                 label_consistency=fit.label_consistency_weight, regularise_network=False)
        if crossings is not None and step >= warmup:
            consistency = crossings.loss(params, table, generator, fit.intersection_points, scaling)
            if consistency is not None:
                loss = loss + fit.intersection_weight * consistency
        if adapt and step >= warmup:
            drift = sum(((p - p0) ** 2).sum() for p, p0 in zip(network.parameters(), anchor))
            loss = loss + fit.network_anchor * drift
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        history["loss"].append(float(loss.detach()))
        history["mse"].append(float(parts["mse"].detach()))
        return {"loss": loss.detach(), "mse": parts["mse"].detach()}

    run_training(step_fn, total_steps=fit.steps, checkpoint_path=checkpoint_path,
                 checkpoint_every=max(fit.steps // 4, 1) if checkpoint_path else None,
                 state_dict_fn=state_dict_fn, load_state_fn=load_state_fn,
                 config={"fit": fit, "subject": subject.subject_id, "use_labels": labels, "motion": motion,
                         "optimise": list(optimise), "only_slices": None if only_slices is None else list(only_slices),
                         "scaling": scaling, "psf": config.psf.enabled if psf_enabled is None else psf_enabled},
                 kind=FIT_KIND, resume=resume, progress=progress, cancel=cancel,
                 description=f"fit {subject.subject_id}")
    params.requires_grad_(False)
    network.requires_grad_(False)
    result = SubjectFit(network, subject, params, config, device, history)
    result.adapted = adapt or (initial is not None and initial.adapted)
    return result


def save_subject_fit(fit: SubjectFit, path: Union[str, Path]) -> Path:
    """Write a fitted subject (latent, pose, offsets, scales, geometry) as a ``weights_only`` checkpoint."""
    from ..training import save_checkpoint

    state = fit.state()
    extra = {"subject": state["subject"]}
    if getattr(fit, "adapted", False):  # the subject's own copy of the network (test-time adaptation)
        extra["network_state"] = {k: v.detach().cpu() for k, v in fit.network.state_dict().items()}
    return save_checkpoint(path, model_state=state["params"], config=fit.config, step=0, kind="nisf_subject",
                           extra=extra)


def load_subject_fit(trained: TrainedNISF, path: Union[str, Path]) -> SubjectFit:
    """Read a fitted subject written by :func:`save_subject_fit` for the network of ``trained``."""
    checkpoint = load_checkpoint(path, expected_kind="nisf_subject", map_location="cpu")
    meta = checkpoint.extra.get("subject")
    if not isinstance(meta, dict):
        raise CheckpointError(path, "has no subject metadata")
    subject = subject_from_meta(meta)
    params = SubjectParameters(1, len(subject.slices), trained.config.network.latent_dim)
    try:
        params.load_state_dict(checkpoint.model_state)
    except (RuntimeError, KeyError, TypeError) as error:
        raise CheckpointError(path, f"does not fit this model (latent size or slice count differ): {error}") from error
    params.to(trained.device).requires_grad_(False)
    network = trained.network
    adapted = checkpoint.extra.get("network_state")
    if adapted is not None:
        network = copy.deepcopy(network)
        try:
            network.load_state_dict(adapted)
        except (RuntimeError, KeyError, TypeError) as error:
            raise CheckpointError(path, f"its adapted network does not fit this model: {error}") from error
        network.requires_grad_(False)
    result = SubjectFit(network, subject, params, trained.config, trained.device)
    result.adapted = adapted is not None
    return result


__all__ = ["FIT_KIND", "OPTIMISABLE", "fit_subject", "save_subject_fit", "load_subject_fit"]
