"""NISF++: a 4D (3D+t) neural implicit intensity and segmentation field of the heart from 2D cine slices
(SAX stack and LAX views), with per-slice rigid motion correction, per-slice intensity scaling and a
Gaussian slice PSF (Stolt-Anso et al., "NISF: Neural Implicit Segmentation Functions", and its
NISF++ extension).

The package's public surface is what a user needs to train, load and apply a model::

    trained = train_nisf(training_studies, NISFConfig(), checkpoint_path="nisf.pt", device="auto")
    run = reconstruct_subject(load_nisf("nisf.pt"), "study_folder", "out", spacing_mm=1.25)
    run.labels, run.intensity, run.key_results(), run.paths   # the one runner: fit, sample, indices, publish
    fit = fit_subject(trained, new_study)                     # the fit alone (frozen network)

Everything else lives in its sub-module: subject preparation (:mod:`.data`), the standardised frame
(:mod:`.frame`), slice parameters (:mod:`.slices`), PSF (:mod:`.psf`), the objective and the slice
intersections (:mod:`.objective`, :mod:`.intersections`), sampling on any 4D grid (:mod:`.sampling`) and
the files written (:mod:`.outputs`).

Frames: RAS mm outside; inside, the subject's standardised frame (:mod:`.frame`) scaled to ~[-1, 1].
"""

from __future__ import annotations

from .config import FitConfig, NISFConfig
from .errors import NISFError, NISFInputError
from .fit import fit_subject
from .runner import NISFRun, reconstruct_subject
from .train import TrainedNISF, load_nisf, train_nisf

__all__ = [
    "FitConfig", "NISFConfig", "NISFError", "NISFInputError", "NISFRun", "TrainedNISF", "fit_subject",
    "load_nisf", "reconstruct_subject", "train_nisf",
]
