"""Generative cardiac motion for CT (Zuler et al., "Systole-conditioned generative cardiac motion"):
a CVAE samples 3D flow fields conditioned on one CT frame through a frozen PWC-style feature pyramid,
and warping the frame by them makes annotated frame pairs (exact flows by construction).

The package's public surface is what a user needs to train, load and apply a model::

    pairs = phantom_pairs(hearts, SynthConfig())          # ES/ED CT + exact flows, working grid
    trained = train_synthesis(pairs, SynthConfig(), out_dir="model", device="auto")
    run = run_synthesis(load_synthesis("model/synth.pt"), "ct_ES.nii.gz", "pairs/", n=5)  # the one runner
    run.key_results(), run.paths                          # pairs and samples.csv, published at once
    generate_pairs(trained, es_frame, "pairs", labels=es_labels, n=5)   # the pairs alone, any CT grid

Everything else lives in its sub-module: the CVAE (:mod:`.cvae`, its loss terms :mod:`.flow_loss`), the
feature pyramid and flow estimator (:mod:`.pyramid`), training pairs (:mod:`.data`), the working grid
(:mod:`.grid`), latents and samples (:mod:`.sample`), implied indices (:mod:`.indices`), pair files
(:mod:`.pairs`).

Flow convention (:mod:`.grid`): ``generated_ED(p) = ES(p + w(p))`` on the frame's grid. Latents are
standard-normal coordinates of the learned prior ``p(z | ES frame)`` (:mod:`.cvae`): ``0`` is the prior
mean, the motion the model expects for this heart; every sample's implied LVEF is in
``pairs/samples.csv`` when labels are given (:mod:`.indices`).
"""

from __future__ import annotations

from .config import SynthConfig
from .data import phantom_pairs
from .errors import SynthesisError
from .pairs import generate_pairs
from .runner import SynthesisRun, run_synthesis
from .train import TrainedSynthesis, load_synthesis, train_synthesis

__all__ = [
    "SynthConfig", "SynthesisError", "SynthesisRun", "TrainedSynthesis", "generate_pairs", "load_synthesis",
    "phantom_pairs", "run_synthesis", "train_synthesis",
]
