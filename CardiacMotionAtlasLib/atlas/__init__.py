"""Spatiotemporal Neural Diffeomorphic Flow atlas of the LV myocardium.

``F(p, t, c) = T(D1(p, c_p), D2(t, c_t))``: ``T`` a 4D template SDF, ``D1`` a neural-ODE diffeomorphism
of space, ``D2`` a diffeomorphism of the cycle, ``c`` per-subject auto-decoder codes.

The package's public surface is what a user needs to train, load and apply an atlas::

    atlas = train_atlas(subjects, AtlasConfig(), device="auto", checkpoint_path="atlas.pt")
    atlas = load_atlas("atlas.pt")
    run = run_atlas_fit(atlas, "study_or_label_map", "out/", setting="ed")   # the one runner: fit, meshes,
    run.meshes, run.lv_ml, run.paths, run.key_results()                     # volume curve, published at once

Everything else lives in its sub-module: sampling a subject's SDF (:mod:`.sampling`, :mod:`.inputs`), the
fit itself (:mod:`.fit`, with a per-subject residual warp, :mod:`.residual`), meshing with dense
correspondence (:mod:`.meshing`), the shape-to-motion prior (:mod:`.shape_prior`), material tracking of
the template (:mod:`.material_tracking`), the subject's ES phase and the ED-alone spread (:mod:`.timing`),
evaluation and baselines (:mod:`.evaluation`, :mod:`.baselines`).

Frames: RAS mm outside, canonical heart frame inside (:mod:`.frame`); phases normalised, ED = 0.
"""

from __future__ import annotations

from .config import AtlasConfig, FitConfig, MeshConfig, SamplingConfig
from .errors import AtlasError
from .fit import FittedSubject, fit_subject
from .model import Atlas, load_atlas
from .runner import AtlasFitRun, run_atlas_fit
from .train import train_atlas

__all__ = [
    "Atlas", "AtlasConfig", "AtlasError", "AtlasFitRun", "FitConfig", "FittedSubject", "MeshConfig",
    "SamplingConfig", "fit_subject", "load_atlas", "run_atlas_fit", "train_atlas",
]
