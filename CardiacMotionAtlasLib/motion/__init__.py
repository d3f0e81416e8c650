"""CardioMorphNet (Movahed et al., Medical Image Analysis 2026): shape-guided Bayesian motion estimation
of cine SAX volume sequences with per-voxel uncertainty, warped segmentations, clinical indices and
myocardial strain.

The package's public surface is what a user needs to train, load and apply a model::

    sequences = [sequence_from_study(study) for study in studies]       # SAX stack + ED/ES labels
    trained = train_motion(sequences, MotionConfig(), checkpoint_path="motion.pt", device="auto")
    run = run_motion(load_motion("motion.pt"), "subject_dir/", "out/")   # the one runner: the stored
    run.estimate.indices, run.paths, run.key_results()                  # preprocessing, estimate, publish
    estimate = estimate_motion(trained, sequence)                        # the estimate alone, in memory

Everything else lives in its sub-module: networks and the model (:mod:`.networks`, :mod:`.model`), losses
(:mod:`.losses`), the posterior (:mod:`.gaussian`), per-subject refinement and the use of the study's own
labels (:mod:`.refine`, :mod:`.adapt`), index intervals and their calibration (:mod:`.intervals`,
:mod:`.calibration`), the preprocessing a model carries (:mod:`.preprocessing`), outputs (:mod:`.outputs`),
evaluation and baselines (:mod:`.evaluation`, :mod:`.baselines`).
"""

from __future__ import annotations

from .config import MotionConfig
from .data import MotionSequence, sequence_from_study
from .errors import MotionError, MotionInputError
from .estimate import estimate_motion
from .runner import MotionRun, run_motion
from .train import TrainedMotion, load_motion, train_motion

__all__ = [
    "MotionConfig", "MotionError", "MotionInputError", "MotionRun", "MotionSequence", "TrainedMotion",
    "estimate_motion", "load_motion", "run_motion", "sequence_from_study", "train_motion",
]
