"""Generative cardiac motion for CT (Zuler et al., "Systole-conditioned generative cardiac motion"):
a CVAE samples 3D flow fields conditioned on one CT frame through a frozen PWC-style feature pyramid,
and warping the frame by them makes annotated frame pairs (exact flows by construction).

Typical use::

    from CardiacMotionAtlasLib.synthesis import SynthConfig, phantom_pairs, train_synthesis, generate_pairs

    pairs = phantom_pairs(hearts, SynthConfig())          # ES/ED CT + exact flows, working grid
    trained = train_synthesis(pairs, SynthConfig(), out_dir="model", device="auto")
    generate_pairs(trained, es_frame, "pairs", labels=es_labels, n=5)   # any CT grid, RAS mm

Flow convention (:mod:`.grid`): ``generated_ED(p) = ES(p + w(p))`` on the frame's grid. Latents are
standard-normal coordinates of the learned prior ``p(z | ES frame)`` (:mod:`.cvae`): ``0`` is the prior
mean, the motion the model expects for this heart; every sample's implied LVEF is in
``pairs/samples.csv`` when labels are given (:mod:`.indices`).
"""

from .config import AugmentConfig, SynthConfig
from .cvae import ConditionalFlowVAE, SynthesisModel, cvae_loss, kl_divergence, kl_per_dimension
from .data import (FlowPair, PairTensors, annotate_flow_demons, annotated_pair, augment, pair_from_frames, phantom_pair, phantom_pairs,
                   random_bspline_flow, stack_pairs)
from .errors import SynthesisError
from .indices import conditioning_summary, implied_indices, pearson
from .grid import as_frame, check_flow_matches, pull_frame, working_grid
from .pairs import SAMPLE_TABLE, check_pair, generate_pairs, read_pair, write_pair, write_sample_table
from .runner import SynthesisRun, run_synthesis
from .pyramid import FeaturePyramid, FlowEstimator, correlation, estimator_loss
from .sample import GeneratedSample, generate, grid_latents, line_latents, make_latents, random_latents, sample_flows
from .train import (TrainedSynthesis, estimate_flow, load_synthesis, model_fingerprint, train_cvae,
                    train_flow_estimator, train_synthesis)

__all__ = [
    "AugmentConfig", "SAMPLE_TABLE", "conditioning_summary", "implied_indices", "kl_per_dimension", "pearson",
    "write_sample_table", "ConditionalFlowVAE", "FeaturePyramid", "FlowEstimator", "FlowPair", "GeneratedSample",
    "PairTensors", "SynthConfig", "SynthesisError", "SynthesisModel", "TrainedSynthesis", "annotate_flow_demons",
    "annotated_pair", "as_frame", "pair_from_frames", "augment", "check_flow_matches", "check_pair", "correlation", "cvae_loss",
    "estimate_flow", "estimator_loss", "generate", "generate_pairs", "grid_latents", "kl_divergence", "line_latents",
    "load_synthesis", "make_latents", "model_fingerprint", "phantom_pair", "phantom_pairs", "pull_frame",
    "random_bspline_flow", "random_latents", "read_pair", "sample_flows", "stack_pairs", "train_cvae",
    "train_flow_estimator", "train_synthesis", "working_grid", "write_pair", "SynthesisRun", "run_synthesis",
]
