"""CardioMorphNet (Movahed et al., Medical Image Analysis 2026): shape-guided Bayesian motion estimation
of cine SAX volume sequences with per-voxel uncertainty, warped segmentations, clinical indices and
myocardial strain.

    sequences = [sequence_from_study(study) for study in studies]       # SAX stack + ED/ES labels
    trained = train_motion(sequences, MotionConfig(), checkpoint_path="motion.pt", device="auto")
    estimate = estimate_motion(trained, sequence_from_study(new_study))  # DVFs, uncertainty, indices, strain
    write_motion_outputs(estimate, "out/")
    run = run_motion(load_motion("motion.pt"), "subject_dir/", "out/")   # the whole job on one subject
"""

from .config import MotionConfig
from .data import MotionSequence, prepare_sequence, sequence_from_study
from .errors import MotionConfigError, MotionError, MotionInputError
from .estimate import MotionEstimate, estimate_motion
from .model import CardioMorphNet
from .outputs import write_motion_outputs
from .runner import MotionRun, run_motion
from .train import TrainedMotion, load_motion, train_motion

__all__ = ["CardioMorphNet", "MotionConfig", "MotionConfigError", "MotionError", "MotionEstimate",
           "MotionInputError", "MotionRun", "MotionSequence", "TrainedMotion", "estimate_motion", "load_motion",
           "prepare_sequence", "run_motion", "sequence_from_study", "train_motion", "write_motion_outputs"]
