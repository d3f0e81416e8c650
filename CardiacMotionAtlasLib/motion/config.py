"""CardioMorphNet configuration: network sizes, loss weights, training schedule, posterior sampling.

Units: images are normalised to ~[0, 1]; displacement fields inside the networks are voxel
displacements (``(di, dj, dk)``) of the SAX grid, velocities and the bending energy are in voxels of
DeformNet's half in-plane resolution grid (as in VoxelMorph and the paper).

Three sizes: ``MotionConfig()`` (CPU, minutes), ``MotionConfig.tiny()`` (tests, seconds),
``MotionConfig.large()`` (GPU: wider and deeper networks, higher rank, more steps).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Tuple

from .errors import MotionConfigError

GUIDANCES = ("segnet", "none")


@dataclass
class MotionConfig:
    """Everything that defines a CardioMorphNet model and its training.

    Networks (FeatNet/RecNet/DeformNet work at in-plane resolution / ``2``; only SegNet sees the
    full grid; every downsampling is in-plane only, the thin z axis is kept):
    ``seg_channels`` / ``deform_channels``: U-Net widths per level; ``feat_channels``: FeatNet output;
    ``latent_channels``: the recurrent VAE's latent ``Z_t``; ``hidden_channels``: ConvLSTM state;
    ``rank``: columns of the low-rank factor ``V_t`` of the DVF posterior; ``shape_inputs``: with SegNet
    guidance, DeformNet also gets SegNet's (frozen) class probabilities of both frames of a step, so each
    step sees which way the shapes change (without them a short training learns one image-independent
    "contraction" step, and ED -> t chains keep contracting after ES).

    Loss (negative ELBO + bending energy): ``shape_weight`` (CE + soft Dice of warped vs given masks at
    ED and ES), ``semi_weight`` (KL of SegNet's pseudo-labels vs warped previous masks at the other
    frames; 0 or ``guidance="none"`` switches SegNet guidance off), ``anchor_weight`` (relative weight
    of the same KL against the ED labels carried by the whole ED -> t chain: anchors diastolic frames),
    ``latent_kl_weight``,
    ``reconstruction_weight`` (MSE of decoded ``I_t``), ``bending_weight`` (rho, paper 0.3; squared second differences of
    the posterior-mean step velocities in voxels of DeformNet's grid), ``posterior_kl_weight`` (KL of the
    DVF posterior to a zero-mean isotropic prior of std ``prior_std`` voxels, mean term left to the
    bending energy: it keeps the posterior from collapsing, so its spread means something),
    ``cyclic`` (the cycle closes: ED is appended after the last frame with its own labels, so the
    chained fields must return to the identity), ``two_sided`` (with ``cyclic``: the backward chains from
    the closing ED are supervised at the labelled frames too and combined with the forward chains,
    :func:`~.fields.closed_chain_fields`),
    ``intensity_weight`` (NCC between warped and fixed frames: 0 by default, the ablation switch).

    Inference (:mod:`.refine`, SegNet models): ``refine_steps`` normalised descent steps (at most
    ``refine_lr`` voxels each) refine the subject's posterior mean on the shape terms of the ELBO against
    its ED labels and SegNet's labels at every frame (``refine_step_weight``: the frame-to-frame term;
    ``refine_coarsening``: control grid of the correction; ``refine_size_weight``: its L2 penalty;
    ``refine_fold_weight``: a penalty on folding ED -> t fields); 0 keeps the network's (amortised) mean.
    """

    # networks
    seg_channels: Tuple[int, ...] = (8, 16, 24)
    feat_channels: int = 8
    latent_channels: int = 4
    hidden_channels: int = 8
    deform_channels: Tuple[int, ...] = (12, 16, 24)
    rank: int = 2
    shape_inputs: bool = False  # opt-in: DeformNet also sees SegNet's class probabilities of both frames (SegNet models)
    max_velocity: float = 3.0  # bound (tanh) of a step velocity, voxels of DeformNet's grid
    integration_steps: int = 5  # scaling and squaring of each frame-to-frame velocity
    min_log_variance: float = -12.0
    # loss
    shape_weight: float = 1.0
    label_blur: int = 1  # in-plane half-width (pixels) of the box blur of warped masks in the shape loss
    dice_weight: float = 1.0
    semi_weight: float = 0.2
    anchor_weight: float = 0.0  # opt-in: relative weight of the anchored (ED -> t chain) pseudo-label terms
    latent_kl_weight: float = 1e-3
    reconstruction_weight: float = 0.1
    bending_weight: float = 0.3
    posterior_kl_weight: float = 1e-2
    prior_std: float = 0.5
    cyclic: bool = True
    two_sided: bool = False  # cyclic: also supervise / combine the chains from the closing ED
    intensity_weight: float = 0.0
    guidance: str = "segnet"
    # training
    seg_steps: int = 400  # SegNet's labels drive the refinement: 120 steps left systole ~15 ml too large
    steps: int = 200
    seg_batch: int = 4
    lr: float = 5e-3
    seg_lr: float = 3e-3
    final_lr_fraction: float = 0.2
    intensity_percentile: float = 99.0
    augment: bool = True  # random in-plane flips/transposes of whole training sequences
    # frames per motion-training step: the labelled positions (ED, ES) plus randomly chosen others, in cycle
    # order, so a step costs the same whatever the acquisition's frame count and sees varied frame spacings
    # (0: every frame, the previous behaviour). 10 chosen on the in-family held-out hearts of the quick motion
    # benchmark at 2.5 mm / 20 frames (same SegNet stage, 100 motion steps): motion stage 1013 -> ~400 s,
    # LVEF RMSE 1.78 -> 1.73, RVEF 13.6 -> 12.8, all-frame EPE 2.05 -> 2.04 mm, ES EPE 4.38 -> 4.19, Dice
    # 97.5/95.0/92.4 -> 97.0/93.1/90.7, coverage 77.8 -> 83.3 %
    train_frames: int = 10
    seed: int = 0
    checkpoint_every: int = 50
    # inference
    posterior_samples: int = 16
    refine_steps: int = 150  # semi-amortised inference: descent steps on the subject's posterior mean (0: off)
    refine_lr: float = 0.05  # largest move of a control point per step, voxels of DeformNet's grid
    refine_step_weight: float = 1.0  # frame-to-frame pseudo-label term, relative to the anchored one
    refine_coarsening: int = 2  # the correction lives on a control grid this many times coarser (trilinear)
    refine_size_weight: float = 0.05  # L2 penalty on the correction (voxels^2): none where no shape evidence
    refine_fold_weight: float = 0.1  # squared hinge on small Jacobian determinants of the ED -> t fields

    def validate(self) -> "MotionConfig":
        if len(self.seg_channels) < 2 or len(self.deform_channels) < 2:
            raise MotionConfigError("seg_channels and deform_channels need at least two levels")
        if min(self.seg_channels + self.deform_channels) < 1 or self.feat_channels < 1 or self.hidden_channels < 1:
            raise MotionConfigError(f"channel counts must be >= 1, got {self}")
        if self.latent_channels < 1 or self.rank < 0 or self.integration_steps < 0:
            raise MotionConfigError("latent_channels >= 1, rank >= 0 and integration_steps >= 0 are required")
        if self.guidance not in GUIDANCES:
            raise MotionConfigError(f"guidance must be one of {GUIDANCES}, got {self.guidance!r}")
        if min(self.steps, self.seg_steps, self.checkpoint_every) < 0 or self.seg_batch < 1:
            raise MotionConfigError("steps, seg_steps, checkpoint_every must be >= 0 and seg_batch >= 1")
        if self.train_frames < 0 or self.train_frames == 1:
            raise MotionConfigError(f"train_frames must be 0 (every frame) or >= 2, got {self.train_frames}")
        if self.max_velocity <= 0:
            raise MotionConfigError(f"max_velocity must be > 0, got {self.max_velocity}")
        if self.prior_std <= 0:
            raise MotionConfigError(f"prior_std must be > 0, got {self.prior_std}")
        if self.posterior_samples < 2:
            raise MotionConfigError(f"posterior_samples must be >= 2, got {self.posterior_samples}")
        for name in ("shape_weight", "dice_weight", "semi_weight", "latent_kl_weight", "reconstruction_weight",
                     "bending_weight", "posterior_kl_weight", "intensity_weight", "anchor_weight"):
            if getattr(self, name) < 0:
                raise MotionConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.refine_steps < 0 or self.refine_lr <= 0 or min(self.refine_step_weight, self.refine_fold_weight) < 0:
            raise MotionConfigError("refine_steps >= 0, refine_lr > 0, refine_step_weight >= 0 and refine_fold_weight >= 0 are required")
        return self

    @property
    def uses_segnet(self) -> bool:
        return self.guidance == "segnet" and self.semi_weight > 0

    @property
    def levels(self) -> int:
        """In-plane downsampling factor the grid must be divisible by (SegNet and DeformNet U-Nets)."""
        return max(2 ** (len(self.seg_channels) - 1), 2 * 2 ** (len(self.deform_channels) - 1))

    @classmethod
    def tiny(cls) -> "MotionConfig":
        """Seconds on a CPU: for unit tests."""
        return cls(seg_channels=(4, 8), feat_channels=4, latent_channels=2, hidden_channels=4,
                   deform_channels=(8, 8), rank=1, integration_steps=3, seg_steps=20, steps=20, seg_batch=2,
                   checkpoint_every=10, posterior_samples=4, augment=False, refine_steps=5)

    @classmethod
    def large(cls) -> "MotionConfig":
        """GPU sizes: wider networks, longer training."""
        return cls(seg_channels=(16, 32, 64, 96), feat_channels=32, latent_channels=8, hidden_channels=32,
                   deform_channels=(32, 48, 64, 96), rank=4, integration_steps=7, seg_steps=2000, steps=4000,
                   seg_batch=8, lr=1e-3, seg_lr=1e-3, checkpoint_every=250, posterior_samples=32)

    def with_changes(self, **changes) -> "MotionConfig":
        return replace(self, **changes)


__all__ = ["GUIDANCES", "MotionConfig"]
