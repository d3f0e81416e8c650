"""Motion estimation with a trained CardioMorphNet: mean DVFs, posterior samples, uncertainty, warped
segmentations, volume curves, clinical indices and strain with confidence bounds.

Every array is indexed by the sequence's own frames (ED need not be frame 0). DVFs are RAS mm on the
SAX grid: ``ed_to_t[t]`` carries the material at ``x`` at ED to ``x + u(x)`` at frame ``t`` (sampled on
the ED grid, like the phantom's ground truth); ``t_to_ed[t]`` is its inverse (on frame t's grid) and
``steps[t]`` the frame-to-frame field ``u_{t-1 -> t}`` (zeros at ED), consistent with ``ed_to_t``.
Mean motion: where the study gives ED and ES labels, the full-cycle trajectory ``exp(a_t v)`` of one
stationary velocity fitted to them (:mod:`.trajectory`, the default; diffeomorphic at every frame, no
chain to drift), else (or with ``trajectory="chain"``) the network's frame-to-frame chain, refined per
subject (:mod:`.refine`). Uncertainty: the covariance of the posterior samples of ``ed_to_t`` (each step's Gaussian
posterior sampled and propagated through the chain) plus, for cyclic models, the chain-drift variance
(:func:`chain_drift_variance`: the disagreement of the chains from both EDs, a random-walk model of the
bias the step posteriors do not see); the differential entropy (nats, of that per-voxel Gaussian in mm)
and the closed-form entropy of each step's Gaussian posterior (velocity, voxels). Volumes are soft (summed warped probabilities), indices in ml / % / g, strain in %.

Intervals (95 %) are centred on the point estimates (so they always contain them): indices and volumes
``+/- 1.96 c sigma`` with ``sigma`` the posterior samples' spread and the labels' partial-volume
uncertainty combined, ``c`` the model's per-index calibration (:mod:`.intervals`); strain ``+/- 1.96``
times its posterior samples' std (0 at ED: ED is strain's reference by definition).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..analysis.clinical_indices import ClinicalIndices, clinical_indices_from_volumes
from ..analysis.strain import STRAIN_NAMES, lv_frame_from_labels, strain_from_displacement
from ..geometry.warp import compose, voxel_to_ras_displacement, warp
from ..training import make_generator
from .data import MotionSequence, crop_volume
from .errors import MotionInputError
from .adapt import ADAPT_STEPS, FOLD_MARGIN, FOLD_WEIGHT, GIVEN_WEIGHT, adapt_segnet, refinement_targets
from .gaussian import voxel_entropy
from .intervals import (Z95, combined_sds, intervals, label_volume_sd_ml, misfit_sds, reference_indices, sample_sds,
                        segmentation_sds)
from .losses import one_hot
from .preprocessing import check_grid as grid_check
from .refine import refine_velocities
from .trajectory import (AMPLITUDE_SOURCE, FIT_REGULARISATION, FIT_STEPS, FIT_VOLUME_WEIGHT, TRAJECTORIES, TRAJECTORY,
                         svf_trajectory)
from .model import TrainedMotion, frame_order, sequence_tensors

VOLUME_NAMES = ("LV", "LV myocardium", "RV")  # labels 1, 2, 3
# svf trajectory: the indices' sd includes the fit's misfit to the given ED/ES labels' indices (the posterior
# samples spread around the network's chain, not the fit). In-family held-out hearts, fit without the volume
# term: coverage 66.7 -> 83.3 %, Spearman 0.10 -> 0.57; with it the misfit is small and changes little.
MISFIT_SD = True


@dataclass
class MotionEstimate:
    """Outputs of :func:`estimate_motion` (see the module docstring for units and frames)."""

    subject_id: str
    ijk_to_ras: np.ndarray
    phases: np.ndarray
    ed_frame: int
    es_frame: int
    ed_to_t: np.ndarray  # (T, 3, z, y, x) RAS mm
    t_to_ed: np.ndarray  # (T, 3, z, y, x) RAS mm
    steps: np.ndarray  # (T, 3, z, y, x) RAS mm, u_{t-1 -> t}
    covariance: np.ndarray  # (T, z, y, x, 3, 3) mm^2, posterior samples of ed_to_t
    entropy: np.ndarray  # (T, z, y, x) nats
    step_entropy: np.ndarray  # (T, z, y, x) nats (voxel units), closed form, zeros at ED
    ed_labels: np.ndarray  # (z, y, x)
    labels: np.ndarray  # (T, z, y, x) ED labels warped to every frame
    segnet_labels: Optional[np.ndarray]  # (T, z, y, x) SegNet's own prediction
    volumes_ml: Dict[str, np.ndarray]  # name -> (T,)
    volume_bounds_ml: Dict[str, np.ndarray]  # name -> (2, T): 95 % interval around the estimate
    indices: Dict[str, float]
    index_bounds: Dict[str, tuple]
    strain: Dict[str, np.ndarray]  # name -> (T,) %
    strain_bounds: Dict[str, np.ndarray]  # name -> (2, T)
    n_samples: int = 0
    metadata: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.ed_to_t.shape[0])

    def displacement_std_mm(self) -> np.ndarray:
        """``(T, z, y, x)`` sqrt of the trace of the posterior covariance (mm)."""
        return np.sqrt(np.clip(np.trace(self.covariance, axis1=-2, axis2=-1), 0, None))


def _voxel_volume_ml(ijk_to_ras: np.ndarray) -> float:
    return abs(float(np.linalg.det(np.asarray(ijk_to_ras)[:3, :3]))) / 1000.0


def _quantities(fields: Dict[str, torch.Tensor], ed_onehot: torch.Tensor, shape, ijk_to_ras, myo_mask, frame,
                voxel_ml: float):
    """(ed_to_t RAS numpy, warped probabilities, volumes (3, T), strain dict) of one set of fields."""
    ed_to_t = voxel_to_ras_displacement(crop_volume(fields["ed_to_t"], shape), ijk_to_ras)
    probs = crop_volume(warp(ed_onehot.expand(fields["t_to_ed"].shape[0], -1, -1, -1, -1), fields["t_to_ed"]), shape)
    volumes = probs.sum((2, 3, 4)).T[1:] * voxel_ml  # (3 classes, T)
    ed_np = ed_to_t.cpu().numpy()
    strain = strain_from_displacement(ed_np, ijk_to_ras, myo_mask, *frame)
    return ed_np, probs, volumes.cpu().numpy(), strain


def _indices(volumes: np.ndarray, ed: int, es: Optional[int]) -> ClinicalIndices:
    return clinical_indices_from_volumes(volumes[0], volumes[2], volumes[1], ed, es)


def chain_drift_variance(fields: Dict[str, torch.Tensor], n: int, shape, ijk_to_ras: np.ndarray,
                         smooth: int = 1, bridge: bool = True) -> np.ndarray:
    """Per-voxel variance (mm^2 per component) ``(n, z, y, x)`` of the chain drift of the combined ED -> t
    fields of a closed cycle of ``n`` steps (:func:`~.fields.closed_chain_fields`).

    Random-walk model: every step adds an independent error of variance ``s^2`` per component, so the
    forward and backward chains to frame ``t`` differ by ``d_t`` with ``E|d_t|^2 = 3 n s^2`` whatever
    ``t``. ``s^2`` is estimated per voxel from the discrepancies of all frames (``mean_t |d_t|^2 / (3 n)``,
    averaged over ``(2 smooth + 1)^2`` in-plane neighbours), and the combined field's error variance
    is that of a Brownian bridge pinned at both EDs: ``s^2 t (n - t) / n`` (``bridge=False``: the forward
    chain alone is the estimate, a random walk from ED: ``s^2 t``). It is label-free and adds
    to the posterior samples' covariance the error that sampling each step's posterior does not see
    (steps that are individually confident but biased)."""
    difference = voxel_to_ras_displacement(crop_volume(fields["ed_to_t_forward"] - fields["ed_to_t_backward"], shape),
                                           ijk_to_ras)  # (n, 3, z, y, x) mm
    step_variance = (difference ** 2).sum(1).mean(0, keepdim=True)[None] / (3.0 * n)  # (1, 1, z, y, x)
    if smooth > 0:
        size = 2 * smooth + 1
        step_variance = F.avg_pool3d(step_variance, (1, size, size), stride=1, padding=(0, smooth, smooth),
                                     count_include_pad=False)
    t = torch.arange(n, dtype=difference.dtype, device=difference.device)
    growth = (t * (n - t) / n if bridge else t).view(-1, 1, 1, 1)
    return (growth * step_variance[0]).cpu().numpy().astype(np.float64)


@torch.no_grad()
def estimate_motion(trained: TrainedMotion, sequence: MotionSequence, samples: Optional[int] = None,
                    use_given_ed_labels: bool = True, seed: int = 0, progress=None,
                    refine_steps: Optional[int] = None, calibrated: bool = True,
                    given_label_targets: bool = True, adapt_steps: Optional[int] = None,
                    given_weight: float = GIVEN_WEIGHT, fold_margin: float = FOLD_MARGIN,
                    fold_weight: Optional[float] = FOLD_WEIGHT, trajectory: str = TRAJECTORY,
                    amplitude_source: str = AMPLITUDE_SOURCE, svf_fit_steps: int = FIT_STEPS,
                    svf_regularisation: str = FIT_REGULARISATION, svf_volume_weight: float = FIT_VOLUME_WEIGHT,
                    misfit_sd: bool = MISFIT_SD, check_grid: bool = True) -> MotionEstimate:
    """Estimate the motion of ``sequence`` (posterior mean + ``samples`` posterior samples, default
    ``config.posterior_samples``). ED labels: the sequence's own when given and ``use_given_ed_labels``,
    else SegNet's. ``refine_steps``: refinement steps of the posterior mean on this subject
    (:mod:`.refine`; default ``config.refine_steps``, 0: the network's amortised mean).
    ``progress``: a ProgressReporter (one update per refinement step, then one per posterior sample).
    ``calibrated``: scale the intervals by the model's per-index calibration (False: unit scales, as
    when the calibration itself is fitted).
    ``given_label_targets``: the refinement's targets at the frames the study labels (ED, ES) are its
    own labels, SegNet's only at the other frames (False: SegNet's everywhere, the previous behaviour);
    ``adapt_steps``: fine-tuning steps of a copy of SegNet on the study's labelled frames before it
    labels the others (default :data:`.adapt.ADAPT_STEPS` = 0: SegNet as trained; measured worse). Both need given
    labels; ``given_weight``: weight of the given frames' anchored term in the refinement relative to
    SegNet's frames; ``fold_margin`` / ``fold_weight`` (None: ``config.refine_fold_weight``): the
    refinement penalises Jacobian determinants below the margin with this weight
    (:func:`.refine.refinement_loss`; :data:`.adapt.FOLD_MARGIN`). Without given labels the estimate
    falls back to SegNet's labels and says so in
    ``metadata["refine_targets"]`` (:mod:`.adapt`).
    ``trajectory``: ``"svf"`` (default: one stationary velocity, initialised from the network's steps up
    to ES and fitted to the given ED/ES labels in ``svf_fit_steps`` steps with ``svf_regularisation``
    (``"physical"``, default: the network's weights in their 4 mm meaning at the study's pixel size;
    ``"network"``, the previous default: as they are; ``"light"``, opt-in: :data:`.trajectory.FIT_LIGHT`), scaled per frame by an amplitude
    from ``amplitude_source`` ``"intensity"`` (default) or ``"labels"`` (SegNet's), :mod:`.trajectory`;
    needs given ED and ES labels, else the chain is used and ``metadata["trajectory"]`` says so; the
    chain refinement is then skipped unless ``refine_steps`` is given; ``svf_volume_weight``: the fit's
    per-structure volume term, :data:`.trajectory.FIT_VOLUME_WEIGHT`, 0 the session 7 fit) or ``"chain"`` (the previous
    behaviour: the refined frame-to-frame chain is the estimate). Posterior samples keep the chain's
    spread around the mean either way; ``misfit_sd`` (svf only): the indices' sd also holds the svf's
    misfit to the given labels' indices (:func:`.intervals.misfit_sds`). ``check_grid``: refuse a sequence
    whose pixel size or frame count is not the model's training grid (:func:`.preprocessing.check_grid`,
    :class:`~.preprocessing.MotionPreprocessingError`; False: apply anyway)."""
    model, config, device = trained.model, trained.config, trained.device
    if check_grid:
        model_name = Path(trained.checkpoint_path).name if trained.checkpoint_path else "the motion model"
        grid_check(trained.preprocessing, model_name, float(sequence.spacing[0]), sequence.n_frames,
                   sequence.subject_id)
    samples = config.posterior_samples if samples is None else int(samples)
    if samples < 2:
        raise MotionInputError(sequence.subject_id, f"need >= 2 posterior samples, got {samples}")
    order = frame_order(sequence)
    n, shape = sequence.n_frames, sequence.shape_zyx
    images, labels = sequence_tensors(sequence, config, device)
    padded = images.shape[2:]
    segnet_labels = segnet_probabilities = None
    adapt_steps = ADAPT_STEPS if adapt_steps is None else max(int(adapt_steps), 0)
    if not labels:
        adapt_steps = 0
    if config.uses_segnet:  # once: the labels are an output, the probabilities drive the refinement
        segnet_probabilities = adapt_segnet(model, images, labels, steps=adapt_steps, seed=seed)
        segnet_labels = crop_volume(segnet_probabilities.argmax(1), shape).cpu().numpy().astype(np.uint8)
    if use_given_ed_labels and 0 in labels:
        ed_label = labels[0]
    elif segnet_probabilities is not None:
        ed_label = segnet_probabilities[:1].argmax(1)
    else:
        raise MotionInputError(sequence.subject_id, "no ED labels given and the model has no SegNet")
    ed_onehot = one_hot(ed_label)
    ed_np = crop_volume(ed_label, shape)[0].cpu().numpy().astype(np.uint8)
    myo = ed_np == 2
    if not myo.any() or not np.isin(ed_np, (1,)).any():
        raise MotionInputError(sequence.subject_id, "ED segmentation has no LV blood pool or myocardium")
    frame = lv_frame_from_labels(ed_np, sequence.ijk_to_ras)
    voxel_ml = _voxel_volume_ml(sequence.ijk_to_ras)
    es_position = order.index(sequence.es_frame) if sequence.es_frame is not None else None

    # a closed cycle (ED appended): the chains from both EDs; combined with ``two_sided``, else the forward
    # chain is the estimate and the backward one only measures its drift
    closed = bool(config.cyclic)
    two_sided = closed and config.two_sided
    posterior = model.posterior_over_steps(torch.cat([images, images[:1]]) if closed else images,
                                           sample_latent=False)
    if trajectory not in TRAJECTORIES:
        raise MotionInputError(sequence.subject_id, f"trajectory must be one of {TRAJECTORIES}, got {trajectory!r}")
    use_svf = trajectory == "svf" and 0 in labels and es_position is not None and es_position > 0 \
        and es_position in labels
    if refine_steps is None:  # the svf trajectory is fitted to the given labels itself: no chain refinement
        refine_steps = 0 if use_svf else config.refine_steps
    refine_steps = int(refine_steps)
    if refine_steps > 0 and segnet_probabilities is not None:  # semi-amortised: the subject's own pseudo-labels
        callback = None
        if progress is not None:
            progress.start(refine_steps, f"refine posterior mean {sequence.subject_id}")
            callback = lambda step, loss: progress.update(step, loss=loss)  # noqa: E731
        targets, given_positions = segnet_probabilities, ()
        if given_label_targets and labels:
            targets = refinement_targets(segnet_probabilities, labels, ed_label)
            given_positions = sorted(labels)
        refined = refine_velocities(model, posterior.mean, ed_label, targets, padded, config, closed,
                                    steps=refine_steps, callback=callback, given_positions=given_positions,
                                    given_weight=given_weight, fold_margin=fold_margin, fold_weight=fold_weight)
        if progress is not None:
            progress.close()
        posterior = replace(posterior, mean=refined)

    def chain_of(velocities: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = model.fields(velocities, padded, closed=closed)
        if closed and not two_sided:
            out["ed_to_t"], out["t_to_ed"] = out["ed_to_t_forward"], out["t_to_ed_forward"]
        return {k: (v[:n] if k != "weights" else v) for k, v in out.items()}

    chain_mean = chain_of(posterior.mean)
    path = None
    if use_svf:  # ED -> t = exp(a_t v): v fitted to the given ED/ES labels, one amplitude per frame
        pseudo = segnet_probabilities.argmax(1) if segnet_probabilities is not None else None
        source = amplitude_source if pseudo is not None else "intensity"
        path = svf_trajectory(posterior.mean, ed_label, labels[es_position], es_position, padded, config, n,
                              source=source, pseudo_labels=pseudo, images=images, fit_steps=svf_fit_steps,
                              regularisation=svf_regularisation, volume_weight=svf_volume_weight,
                              pixel_mm=float(sequence.spacing[0]))

    def fields_of(velocities: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = chain_of(velocities)
        if path is not None:  # the chain's deviation from its mean, around the svf trajectory
            same = velocities is posterior.mean
            for key in ("ed_to_t", "t_to_ed"):
                out[key] = path[key] if same else path[key] + (out[key] - chain_mean[key])
        return out

    mean_fields = fields_of(posterior.mean)
    ed_to_t, probs, volumes, strain = _quantities(mean_fields, ed_onehot, shape, sequence.ijk_to_ras, myo, frame,
                                                  voxel_ml)
    t_to_ed = voxel_to_ras_displacement(crop_volume(mean_fields["t_to_ed"], shape), sequence.ijk_to_ras).cpu().numpy()
    if two_sided or path is not None:  # frame-to-frame fields consistent with the ED -> t fields: u_{t-1->0} then u_{0->t}
        step_fields = compose(mean_fields["t_to_ed"][:-1], mean_fields["ed_to_t"][1:])
    else:
        step_fields = mean_fields["forward"][: n - 1]
    steps = voxel_to_ras_displacement(crop_volume(step_fields, shape), sequence.ijk_to_ras).cpu().numpy()
    steps = np.concatenate([np.zeros_like(steps[:1]), steps])
    drift = np.zeros(ed_to_t.shape[:1] + ed_to_t.shape[2:], np.float64)
    if closed:
        drift = chain_drift_variance(mean_fields, n, shape, sequence.ijk_to_ras, bridge=two_sided)
    step_entropy = voxel_entropy(posterior.low_rank[: n - 1], posterior.log_variance[: n - 1])[:, None]
    step_entropy = F.interpolate(step_entropy, size=tuple(padded), mode="trilinear", align_corners=True)
    step_entropy = np.concatenate([np.zeros((1, *shape), np.float32),
                                   crop_volume(step_entropy[:, 0], shape).cpu().numpy()])

    generator = make_generator(seed, stream=0)
    if device.type == "cuda":
        cuda_generator = torch.Generator(device=device)
        cuda_generator.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        generator = cuda_generator
    total = np.zeros_like(ed_to_t, dtype=np.float64)
    outer = np.zeros((n, *shape, 3, 3), np.float64)
    volume_samples, strain_samples = [], {name: [] for name in STRAIN_NAMES}
    if progress is not None:
        progress.start(samples, f"posterior samples {sequence.subject_id}")
    for s in range(samples):
        velocities = model.step_velocities(posterior, sample=True, generator=generator)
        sample_np, _, sample_volumes, sample_strain = _quantities(fields_of(velocities), ed_onehot, shape,
                                                                   sequence.ijk_to_ras, myo, frame, voxel_ml)
        total += sample_np
        moved = np.moveaxis(sample_np, 1, -1)
        outer += moved[..., :, None] * moved[..., None, :]
        volume_samples.append(sample_volumes)
        for name in STRAIN_NAMES:
            strain_samples[name].append(sample_strain[name])
        if progress is not None:
            progress.update(s + 1)
    if progress is not None:
        progress.close()
    sample_mean = np.moveaxis(total / samples, 1, -1)
    covariance = (outer - samples * sample_mean[..., :, None] * sample_mean[..., None, :]) / (samples - 1)
    covariance = covariance + (drift[..., None, None] + 1e-6) * np.eye(3)
    entropy = 0.5 * (3 * np.log(2 * np.pi * np.e) + np.linalg.slogdet(covariance)[1])

    def reorder(array: np.ndarray, axis: int = 0) -> np.ndarray:  # ED-first positions -> frame indices
        out = np.empty_like(array)
        index = [slice(None)] * array.ndim
        for position, frame_index in enumerate(order):
            index[axis] = frame_index
            source = [slice(None)] * array.ndim
            source[axis] = position
            out[tuple(index)] = array[tuple(source)]
        return out

    volume_samples = np.stack(volume_samples)  # (S, 3, T)
    ed_index, es_index = sequence.ed_frame, sequence.es_frame
    if es_position is None:
        es_position = int(np.argmin(volumes[0]))
    indices = _indices(volumes, 0, es_position).as_dict()
    sampled = [_indices(v, 0, es_position).as_dict() for v in volume_samples]
    labels_t = crop_volume(probs.argmax(1), shape).cpu().numpy().astype(np.uint8)
    calibration = (trained.calibration or {}) if calibrated else {}
    given_positions = sorted(order[p] for p in labels)
    if not config.uses_segnet or refine_steps <= 0:
        target_note = "none (no refinement)"
    elif given_label_targets and labels:
        target_note = f"given labels at frames {given_positions}, SegNet's elsewhere"
    else:
        target_note = "SegNet's labels at every frame" + ("" if labels else " (the study gives no labels)")
    segmentation = segmentation_sds(ed_np, labels_t[es_position], sequence.ijk_to_ras, volumes, 0, es_position)
    motion_sd = sample_sds(sampled)
    if misfit_sd and path is not None:  # the svf's own residual against the labels it was fitted to
        given = {0: ed_np, 1: crop_volume(labels[es_position], shape)[0].cpu().numpy()}
        misfit = misfit_sds(indices, reference_indices(given, 0, 1, sequence.ijk_to_ras))
        motion_sd = {k: float(np.hypot(motion_sd[k], misfit[k])) for k in motion_sd}
    raw_sd = combined_sds(motion_sd, segmentation)
    index_sd = combined_sds(motion_sd, segmentation, calibration)
    index_bounds = intervals(indices, index_sd)
    if es_index is None:
        es_index = order[es_position]
    volume_sd = np.sqrt(volume_samples.var(0, ddof=1) + np.array(
        [[label_volume_sd_ml(labels_t[t], label, sequence.ijk_to_ras) ** 2 for t in range(n)] for label in (1, 2, 3)]))
    volume_sd *= np.array([calibration.get(k, 1.0) for k in ("LVESV", "LVM", "RVESV")])[:, None]
    strain_sd = {name: np.std(np.stack(v), axis=0, ddof=1) for name, v in strain_samples.items()}
    return MotionEstimate(
        subject_id=sequence.subject_id, ijk_to_ras=sequence.ijk_to_ras.copy(), phases=sequence.phases.copy(),
        ed_frame=ed_index, es_frame=int(es_index),
        ed_to_t=reorder(ed_to_t.astype(np.float32)), t_to_ed=reorder(t_to_ed.astype(np.float32)),
        steps=reorder(steps.astype(np.float32)), covariance=reorder(covariance.astype(np.float32)),
        entropy=reorder(entropy.astype(np.float32)), step_entropy=reorder(step_entropy.astype(np.float32)),
        ed_labels=ed_np, labels=reorder(labels_t),
        segnet_labels=None if segnet_labels is None else reorder(segnet_labels),
        volumes_ml={name: reorder(volumes[i]) for i, name in enumerate(VOLUME_NAMES)},
        volume_bounds_ml={name: reorder(np.stack([np.maximum(volumes[i] - Z95 * volume_sd[i], np.minimum(volumes[i], 0.0)),
                                                  volumes[i] + Z95 * volume_sd[i]]),  # volumes >= 0 ml
                                        axis=1) for i, name in enumerate(VOLUME_NAMES)},
        indices=indices, index_bounds=index_bounds,
        strain={name: reorder(values) for name, values in strain.items()},
        strain_bounds={name: reorder(np.stack([strain[name] - Z95 * sd, strain[name] + Z95 * sd]), axis=1)
                       for name, sd in strain_sd.items()},
        n_samples=samples, metadata={"lv_centre_ras": frame[0].tolist(), "long_axis_ras": frame[1].tolist(),
                                    "refine_steps": refine_steps if config.uses_segnet else 0,
                                    "refine_targets": target_note, "fold_margin": fold_margin,
                                    "trajectory": "svf" if path is not None else "chain",
                                    "amplitudes": None if path is None else [float(a) for a in path["amplitudes"]],
                                    "fold_weight": config.refine_fold_weight if fold_weight is None else fold_weight, "segnet_adapt_steps": adapt_steps
                                    if config.uses_segnet else 0,
                                    "index_sd": raw_sd, "index_sd_calibrated": index_sd,
                                    "calibration": dict(calibration)})


__all__ = ["VOLUME_NAMES", "MotionEstimate", "chain_drift_variance", "estimate_motion"]
