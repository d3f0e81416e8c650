"""NISF++: a 4D (3D+t) neural implicit intensity and segmentation field of the heart from 2D cine slices
(SAX stack and LAX views), with per-slice rigid motion correction, per-slice intensity scaling and a
Gaussian slice PSF (Stolt-Anso et al., "NISF: Neural Implicit Segmentation Functions", and its
NISF++ extension).

Typical use::

    from CardiacMotionAtlasLib.nisf import NISFConfig, train_nisf, fit_subject, sample_grid, standard_grid

    trained = train_nisf(training_studies, NISFConfig(), checkpoint_path="nisf.pt", device="auto")
    fit = fit_subject(trained, new_study)                 # frozen network; intensities alone
    grid, shape = standard_grid(fit, spacing_mm=1.25)
    sampled = sample_grid(fit, grid, shape, phases=None)  # ImageSequences in RAS mm, (t, z, y, x)
    fit.corrected_geometries(); fit.intensity_scales()    # per-slice IJK->RAS and scales

    run = reconstruct_subject(load_nisf("nisf.pt"), "study_folder", "out")  # the one runner: fit, sample,
    run.key_results(); run.paths                                              # indices, publish at once

Frames: RAS mm outside; inside, the subject's standardised frame (:mod:`.frame`) scaled to ~[-1, 1].
"""

from .config import FitConfig, NetworkConfig, NISFConfig, PSFConfig, RegularisationConfig
from .data import N_CLASSES, SliceData, SubjectData, prepare_subject, validate_study
from .errors import NISFConfigError, NISFError, NISFInputError
from .fit import fit_subject, load_subject_fit, save_subject_fit
from .frame import StandardFrame, standard_frame_from_study
from .model import NISFModel, SubjectFit
from .network import NISFNetwork, SinusoidalEncoding
from .outputs import write_reconstruction
from .runner import NISFRun, reconstruct_subject
from .psf import blur_monte_carlo, psf_offsets, psf_sigmas_mm
from .sampling import (
    SampledSequence,
    keep_largest_components,
    label_meshes,
    predict_slice,
    sample_grid,
    sample_points,
    standard_grid,
)
from .slices import SliceTable, SubjectParameters, rotation_from_vector_deg
from .train import TrainedNISF, load_nisf, train_nisf

__all__ = [
    "FitConfig", "NetworkConfig", "NISFConfig", "PSFConfig", "RegularisationConfig",
    "N_CLASSES", "SliceData", "SubjectData", "prepare_subject", "validate_study",
    "NISFConfigError", "NISFError", "NISFInputError",
    "fit_subject", "load_subject_fit", "save_subject_fit",
    "StandardFrame", "standard_frame_from_study",
    "NISFModel", "SubjectFit",
    "NISFNetwork", "SinusoidalEncoding",
    "write_reconstruction",
    "blur_monte_carlo", "psf_offsets", "psf_sigmas_mm",
    "SampledSequence", "keep_largest_components", "label_meshes", "predict_slice", "sample_grid", "sample_points",
    "standard_grid",
    "SliceTable", "SubjectParameters", "rotation_from_vector_deg",
    "TrainedNISF", "load_nisf", "train_nisf",
    "NISFRun", "reconstruct_subject",
]
