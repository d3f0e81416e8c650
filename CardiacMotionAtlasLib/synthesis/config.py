"""Configuration of the systole-conditioned CT motion CVAE (Zuler et al.) and its PWC-style pyramid.

Working resolution: the networks see a cube of ``working_size`` voxels of ``working_voxel_mm`` (mm)
centred on the heart, resampled from the CT frame (default 32 voxels of 4.5 mm = 144 mm, enough for
both ventricles and cheap on a CPU). Flows inside the networks are voxel displacements of that grid;
written pairs carry them resampled to the frame's own grid in RAS mm.

Four sizes: ``SynthConfig()`` trains in minutes on 1-2 CPU threads, ``SynthConfig.tiny()`` in
seconds (tests), ``SynthConfig.fine()`` (2 mm on a 64^3 crop, default networks) and
``SynthConfig.large()`` (2 mm, 80^3, wider networks) are GPU configurations. Every size crops its cube
around the heart: the labels' centroid when labels are given, else the frame's contrast-filled blood
pool (:func:`.grid.heart_centre`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

from .errors import SynthesisError


@dataclass
class AugmentConfig:
    """Training augmentations, drawn per sample: Gaussian intensity noise (HU), a random translation
    (working voxels, uniform in ``[-shift_vox, shift_vox]`` per axis) and an isotropic zoom (factor
    uniform in ``[1 - zoom, 1 + zoom]``). Shifts and zooms move frames and flow consistently. For the CVAE
    only, the ED->ES displacement is also scaled by ``s`` uniform in ``[1 - motion_scale, 1 + motion_scale]``:
    the same end-systolic anatomy with a weaker or stronger contraction, so one ES frame has several
    plausible flows and the latent has something to carry (the flow estimator sees the true pairs)."""

    enabled: bool = True
    noise_hu: float = 15.0
    shift_vox: float = 2.0
    zoom: float = 0.08
    motion_scale: float = 0.4


@dataclass
class SynthConfig:
    """Everything the trainers and the sampler need; stored in every checkpoint.

    Units: ``working_voxel_mm`` mm; ``hu_scale`` HU (frames enter the networks as
    ``clip(HU, -hu_clip, hu_clip) / hu_scale``); ``flow_scale_vox`` working voxels (flows enter the
    CVAE divided by it); ``flow_clip_mm``: every flow (training target and sample) is clipped to
    ``[-flow_clip_mm, flow_clip_mm]`` per RAS component (the paper clips flows to a fixed bound too).
    Loss: ``recon_weight * MSE + kl_weight * KL`` with the paper's 0.95 / 0.05; ``MSE`` is the mean squared
    endpoint error (working voxels^2, summed over the 3 components) and the KL is averaged over latent
    dimensions (nats per dimension),
    Adam, gradient-norm clipping at ``grad_clip``. Optionally the KL weight ramps linearly from 0 over
    the first ``kl_warmup_fraction`` of the CVAE steps (KL annealing; off by default: on the phantom it
    made the posterior collapse more, not less). ``kl_free_nats`` > 0 applies "free bits": each latent
    dimension's batch-mean KL counts as at least that many nats (0: the plain KL). ``conditional_prior``:
    the KL is to a learned prior ``p(z | ES frame)`` (see :mod:`.cvae`) instead of ``N(0, I)``; without
    it and without free bits the MSE over the mostly static cube is too small a reward for using the
    latent and the posterior collapses onto the prior (samples differed by 0.1 voxels).
    ``prior_recon_weight``: Sohn et al.'s hybrid term, the MSE of the flow decoded from a draw of the
    prior (weighted), which teaches the prior to predict this frame's motion rather than only to follow
    the posterior (0: off; only with ``conditional_prior``).
    ``motion_balanced`` (off): the endpoint error is averaged over moving voxels (training flow above
    ``motion_threshold_vox`` working voxels, dilated) and over static voxels separately, the two weighted
    equally, instead of over the mostly static cube (tried: the prior then stopped separating subjects,
    the decoder gave every heart one flow); ``jacobian_weight``: weight of the squared difference
    of ``det(I + grad w)`` (local ES/ED volume ratio) between generated and training flow over the moving
    voxels, which teaches the blood pool's contraction and the myocardium's constant volume
    (:mod:`.flow_loss`; both apply to the posterior and the prior reconstruction terms).
    ``index_weight``: weight of the squared relative error of the ES LV blood pool's and myocardium's
    volumes pulled by the generated flow against the same masks pulled by the training flow (the implied
    LVEF and myocardial volume change, :func:`.flow_loss.index_error`; needs ES labels with the
    training pairs, ignored without them; 0: off). Default 20, chosen on six held-out ellipsoidal
    (training-family) hearts, quick training (300 steps): implied-LVEF MAE 14.7 -> 12.7 points (constant
    cohort mean 14.8), bias -6.5 -> -4.8, Pearson 0.07 -> 0.67, myocardial volume change +13.5 -> +2.5 %,
    diversity 1.15 -> 0.57 mm (weight 5: MAE 13.1, Pearson 0.32, myo +6.3 %, diversity 0.35 mm).
    Benchmark (quick, 8 lofted hearts never seen, previous defaults in the same run): MAE 21.4 -> 13.0
    points, bias -18.3 -> -10.8, Pearson -0.25 -> 0.84, myocardial change +15.5 -> +10.9 %, diversity
    1.30 -> 0.57 mm; still above the constant cohort mean (6.9) and still under-contracting.
    ``index_log_ratio`` (opt-in, off): the implied-volume error as a squared log ratio
    (:func:`.flow_loss.index_error`). The motion-scale augmentation gives one frame several targets
    (contraction +-40 %), and the squared relative error's minimiser ``E[1/V] / E[1/V^2]`` lies below the
    mean generated ED volume (1.5-3 points of implied LVEF for hearts of 45-70 %); the log ratio's
    minimiser (geometric mean) is nearly unbiased. ``prior_recon_at_mean`` (opt-in, off): the hybrid prior
    term decodes the prior *mean* ``mu_p`` instead of a random prior draw: a term on random draws is
    lowest when every draw decodes to the same flow, so with ``index_weight`` 20 it taught the decoder to
    ignore the latent (sample diversity 1.15 -> 0.57 mm); at the mean it teaches the conditioning alone.
    Chosen together on the six held-out ellipsoidal dev hearts (indices 30-35, 300 steps) against
    index_weight 20 without them: implied-LVEF MAE 12.7 -> 11.8 points, bias -4.8 -> -1.1 (training
    hearts' own samples -2.1; the prior term at the mean alone: MAE 13.9, bias -5.0, training hearts
    -5.4, Pearson 0.22; the log ratio alone: MAE 13.3, bias -2.2, training hearts -3.4, Pearson 0.27,
    diversity 0.99 mm), diversity 0.57 -> 1.22 mm, Pearson 0.67 -> 0.59, myocardial volume change +2.5 -> +7.6 %.
    Benchmark (quick, at 9207507, the session 8 default trained in the same run): lofted (unseen) bias
    -10.8 -> -8.5, MAE 13.0 -> 13.3, diversity 0.57 -> 1.28 mm, but Pearson 0.84 -> -0.11 (the one
    reduced-EF heart, 28 %, now sampled at 47 %) and myocardial change +10.9 -> +17.3 %; clean reverse
    (train lofted, seed 1) Pearson 0.42 -> 0.30, MAE 22.5 -> 20.5, diversity 0.29 -> 0.27 mm. Worse on
    the conditioning across families, hence off.
    ``amplitude_latent``: latent dimension 0 is the motion-scale augmentation's known factor ``s``,
    standardised to ``(s - 1) / (motion_scale / sqrt(3))`` (:func:`.cvae.amplitude_coordinate`): the
    decoder is given it in training (posterior and prior-draw terms alike, so neither has to hedge between
    the +-40 % targets of one frame), the posterior's ``mu_0`` is regressed onto it (weight
    ``amplitude_weight``; its estimate for a given flow, used for reconstruction) and it leaves the KL; its
    prior is ``N(0, 1)`` for every frame (the augmentation is independent of the frame), so ``z_0 = 0``
    decodes the frame's own motion and sampling along ``z_0`` spans the contraction.
    ``amplitude_lvef`` (with ``amplitude_latent``): the coordinate is the LVEF implied by the scaled
    training flow, ``(EF - 50) / 15`` (:func:`.cvae.lvef_coordinate`; needs ES labels, else the latent is
    all free), and the conditional prior learns ``p(z_0 | frame)`` by its Gaussian likelihood (weight
    ``amplitude_weight``): the prior predicts the heart's contraction from the frame and samples spread
    around it by the learned uncertainty. Opt-in (off), measured with ``augment.motion_scale`` 0.25 on six
    held-out ellipsoidal (training-family) dev hearts (indices 30-35, 300 steps, 4 samples per heart)
    against the default (no coordinate, +-40 %): implied-LVEF MAE 12.7 -> 11.8 points (constant cohort
    mean 14.8), bias -4.8 -> +0.1, diversity 0.57 -> 2.36 mm, but Pearson of the sample means 0.67 -> 0.46
    (prior-mean flows 0.68), myocardial volume change +2.5 -> +7.4 %, folded 0.013 -> 0.019 %; with
    ``amplitude_weight`` 10: MAE 14.9, Pearson -0.03. The scale coordinate (prior fixed N(0, 1)) at +-40 %:
    MAE 15.1, bias -9.3, Pearson -0.01, diversity 2.13 mm; at +-25 %: MAE 15.0, bias +0.2, Pearson -0.08;
    the LVEF coordinate at +-40 %: MAE 12.8, bias -8.2, Pearson 0.26, diversity 3.05 mm. The latent no
    longer collapses, but the conditioning is unreliable: on two tiny subjects contracting x0.5 / x1.5 the
    prior means of the coordinate do not separate (-0.28 / -0.26) and the prior-mean flows move both hearts
    alike, while the decoder's response along z_0 is strong; hence off. Benchmark (quick, at b37335d,
    ``--baselines amplitude``, measured once after choosing, never used for it): lofted (unseen) default vs
    opt-in: Pearson 0.84 -> 0.60, MAE 13.0 -> 12.3 (cohort mean 6.9), bias -10.8 -> -9.1, diversity
    0.57 -> 1.58 mm, myocardial change +10.9 -> +5.3 %, folded 0.0002 -> 0 %; in-family Pearson 0.55 -> -0.02;
    clean reverse (train lofted, seed 1): Pearson 0.42 -> 0.60, MAE 22.5 -> 15.8, diversity 0.29 -> 1.03 mm,
    myocardial change +2.3 -> +9.9 %, folded 0 -> 0.14 %.
    Cause it was meant to address (measured on the training hearts with the default): the decoder ignored
    the amplitude (posterior-mean reconstructions of a flow scaled 0.6 / 1.0 / 1.4 implied LVEF
    48.1 / 48.4 / 48.8 %), the prior had shrunk to sd ~0.17 on every dimension and +2 prior sd changed
    the heart's flow by 0.02-0.08 voxels: the latent carried no motion amplitude, and one hedged flow
    per frame under-contracted (training hearts -6.9 points).
    ``prior_grad_clip`` (opt-in, 0 = off): the conditional prior's parameters (its frame encoder and head)
    are clipped on their own gradient norm at this value and the rest at ``grad_clip``, instead of one norm
    over all. Measured (LVEF coordinate, +-25 %, dev hearts 30-35, 300 steps): the shared clip does starve
    the prior early (pre-clip norms over steps 0-50: rest 41.6, prior 2.2, so the prior's step is scaled by
    ~1/55), but its own clip made the conditioning worse, not better: implied-LVEF Pearson 0.46 -> 0.27
    (prior mean 0.68 -> 0.49), MAE 11.8 -> 13.1, while the training hearts' own bias went -4.2 -> -3.5: a
    faster prior fits the six training hearts and generalises less. ``prior_pooled_only`` (opt-in, off):
    the prior head sees only the global channel averages (120 inputs by default), not the coarsest level
    in place (3584 position-specific inputs with which it can tell the few training hearts apart by pose).
    Measured alike: worse as well, Pearson 0.46 -> 0.14 (prior mean 0.68 -> 0.31), MAE 11.8 -> 13.2,
    myocardial change +7.4 -> +10.6 % (training hearts' bias -4.2 -> -2.9). Both stay off; with six
    training hearts the prior's conditioning is a six-point regression and the dev Pearson over six hearts
    moves by ~0.3 between such variants, so neither is evidence of a cure.
    ``tiled_latent``: the decoder broadcasts the latent over its coarsest grid (where the heart moves
    comes from the frame's features); off: a linear map from the latent to a position-specific coarse
    grid (the earlier decoder, which learned where the training hearts sit).
    ``decoder_frame_skips``: a trainable encoder of the ES frame feeds every decoder level (a conditional
    U-Net) beside the frozen estimator's pyramid, whose features were the decoder's only view of the
    anatomy above full size; ``coarse_to_fine_flow``: every decoder level predicts a flow and the next
    one adds its correction to it upsampled, so the large displacements (heart translation, wall
    excursion; up to ~8 working voxels) are learned where they are a fraction of a voxel. Without both,
    even the posterior mean reconstructed only 40-65 % of the training hearts' displacement and every
    sample under-contracted (half the true flow implies LVEF ~30 % for hearts of ~60 %). With them the
    decoder fits the frame's motion and the latent's +-20 % of contraction was no longer worth encoding
    (samples differed by 0.05 voxels), hence ``augment.motion_scale`` 0.4 (was 0.2; chosen on held-out
    training-family hearts).
    """

    seed: int = 0
    working_voxel_mm: float = 4.5
    working_size: int = 32
    hu_clip: float = 1024.0
    hu_scale: float = 512.0
    flow_clip_mm: float = 36.0
    flow_scale_vox: float = 4.0
    # pyramid + PWC flow estimator
    pyramid_channels: Tuple[int, ...] = (8, 16, 24)
    search_radius: int = 2
    estimator_hidden: int = 32
    estimator_steps: int = 300
    estimator_lr: float = 2e-3
    # CVAE
    cvae_channels: Tuple[int, ...] = (16, 24, 32)
    latent_dim: int = 16
    cvae_steps: int = 400
    cvae_lr: float = 3e-3
    recon_weight: float = 0.95
    kl_weight: float = 0.05
    kl_warmup_fraction: float = 0.0
    kl_free_nats: float = 0.25
    conditional_prior: bool = True
    prior_recon_weight: float = 0.5
    motion_balanced: bool = False
    motion_threshold_vox: float = 0.25
    jacobian_weight: float = 1.0
    index_weight: float = 20.0
    index_log_ratio: bool = False
    prior_recon_at_mean: bool = False
    amplitude_latent: bool = False
    amplitude_weight: float = 1.0
    amplitude_lvef: bool = False
    tiled_latent: bool = True
    decoder_frame_skips: bool = True
    coarse_to_fine_flow: bool = True
    grad_clip: float = 0.75
    prior_grad_clip: float = 0.0
    prior_pooled_only: bool = False
    batch_size: int = 2
    checkpoint_every: int = 100
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @classmethod
    def tiny(cls) -> "SynthConfig":
        return cls(working_voxel_mm=8.0, working_size=16, pyramid_channels=(4, 6, 8), search_radius=1,
                   estimator_hidden=8, estimator_steps=8, cvae_channels=(4, 6, 8), latent_dim=4, cvae_steps=8,
                   checkpoint_every=4, batch_size=2)

    @classmethod
    def fine(cls) -> "SynthConfig":
        """2 mm voxels on a 64^3 crop (128 mm) around the heart (labels, else the frame's blood pool):
        the issue's resolution target with the default networks; hours on a CPU, minutes on a GPU."""
        return cls(working_voxel_mm=2.0, working_size=64, flow_scale_vox=8.0, estimator_steps=2000,
                   cvae_steps=3000, checkpoint_every=250)

    @classmethod
    def large(cls) -> "SynthConfig":
        return cls(working_voxel_mm=2.0, working_size=80, pyramid_channels=(16, 32, 64, 96),
                   estimator_hidden=64, estimator_steps=4000, cvae_channels=(32, 48, 64, 96), latent_dim=32,
                   cvae_steps=6000, batch_size=4, checkpoint_every=500, flow_scale_vox=8.0)

    @property
    def levels(self) -> int:
        return len(self.pyramid_channels)

    @property
    def working_fov_mm(self) -> float:
        return self.working_voxel_mm * self.working_size

    def validate(self) -> "SynthConfig":
        if self.working_voxel_mm <= 0 or self.working_size < 4:
            raise SynthesisError(f"working grid must be >= 4 voxels of positive size, got "
                                 f"{self.working_size} x {self.working_voxel_mm} mm")
        if self.working_size % (2 ** self.levels):
            raise SynthesisError(f"working_size {self.working_size} must be divisible by 2^levels = "
                                 f"{2 ** self.levels} ({self.levels} pyramid levels)")
        if len(self.cvae_channels) != self.levels:
            raise SynthesisError(f"cvae_channels {self.cvae_channels} needs one entry per pyramid level "
                                 f"({self.levels})")
        if min(self.pyramid_channels) < 1 or min(self.cvae_channels) < 1 or self.latent_dim < 1:
            raise SynthesisError("channel counts and latent_dim must be >= 1")
        if self.search_radius < 0 or self.flow_clip_mm <= 0 or self.flow_scale_vox <= 0 or self.hu_scale <= 0:
            raise SynthesisError("search_radius >= 0, flow_clip_mm, flow_scale_vox and hu_scale > 0 are required")
        if self.estimator_steps < 0 or self.cvae_steps < 0 or self.batch_size < 1:
            raise SynthesisError("step counts must be >= 0 and batch_size >= 1")
        if not 0.0 <= self.augment.motion_scale < 1.0:
            raise SynthesisError(f"augment.motion_scale must lie in [0, 1), got {self.augment.motion_scale}")
        if self.kl_free_nats < 0:
            raise SynthesisError(f"kl_free_nats must be >= 0, got {self.kl_free_nats}")
        if not 0.0 <= self.kl_warmup_fraction <= 1.0:
            raise SynthesisError(f"kl_warmup_fraction must lie in [0, 1], got {self.kl_warmup_fraction}")
        if self.motion_threshold_vox < 0 or self.jacobian_weight < 0 or self.index_weight < 0:
            raise SynthesisError("motion_threshold_vox, jacobian_weight and index_weight must be >= 0")
        if self.amplitude_weight < 0:
            raise SynthesisError(f"amplitude_weight must be >= 0, got {self.amplitude_weight}")
        if self.prior_grad_clip < 0:
            raise SynthesisError(f"prior_grad_clip must be >= 0 (0: one clip for all), got {self.prior_grad_clip}")
        if self.grad_clip <= 0 or self.recon_weight < 0 or self.kl_weight < 0 or self.prior_recon_weight < 0:
            raise SynthesisError("grad_clip must be > 0 and loss weights >= 0")
        return self


__all__ = ["AugmentConfig", "SynthConfig"]
