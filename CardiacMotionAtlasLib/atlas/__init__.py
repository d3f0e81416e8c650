"""Spatiotemporal Neural Diffeomorphic Flow atlas of the LV myocardium.

``F(p, t, c) = T(D1(p, c_p), D2(t, c_t))``: ``T`` a 4D template SDF, ``D1`` a neural-ODE diffeomorphism
of space, ``D2`` a diffeomorphism of the cycle, ``c`` per-subject auto-decoder codes. Typical use::

    subjects = [subject_from_phantom(heart, phases) for heart in hearts]      # or subject_from_labels(...)
    atlas = train_atlas(subjects, AtlasConfig(), device=select_device("auto"), checkpoint_path="atlas.pt")
    fitted = fit_subject(atlas, new_subject, "ed")                            # "all", "ed_es" or "ed"
    meshes = subject_mesh_sequence(atlas, fitted, np.arange(25) / 25)        # RAS mm, shared faces

Training also builds a shape-to-motion prior (:mod:`.shape_prior`) that ED and ED+ES fits use; when the
training subjects' material trajectories are known, :func:`material_template_motion` gives the template
a tangential motion that SDFs cannot show (better temporal correspondence)::

    motion = material_template_motion(atlas, track_template(atlas), [heart.positions for heart in hearts])
    meshes = subject_mesh_sequence(atlas, fitted, phases, motion)

A fit ends with a small per-subject residual warp (:mod:`.residual`) for shapes the cohort's codes do
not reach; :mod:`.timing` gives the subject's ES phase and, from ED alone, the prediction's spread.
:func:`run_atlas_fit` (:mod:`.runner`) is the one "fit a subject and publish its outputs" job that the
CLI, the batch and the main job share.

Frames: RAS mm outside, canonical heart frame inside (:mod:`.frame`); phases normalised, ED = 0.
"""

from .baselines import cohort_mean_motion, sdf_blend_meshes
from .config import FIT_SETTINGS, ODE_METHODS, AtlasConfig, FitConfig, MeshConfig, SamplingConfig
from .errors import AtlasConfigError, AtlasDataError, AtlasError
from .evaluation import (
    SurfaceParameterisation,
    cavity_volume_curve,
    cross_subject_correspondence_error,
    d1_jacobian_determinant,
    d2_folds,
    lv_cavity_volume_ml,
    temporal_correspondence_error,
)
from .fit import (CodePrior, FittedSubject, fit_shape_motion_prior, fit_subject, prior_subject, sdf_error_mm,
                  training_subject)
from .material_tracking import inverse_time_warp, material_template_motion
from .frame import CanonicalFrame, canonical_frame_from_labels, canonical_frame_from_mesh
from .meshing import (
    TemplateMotion,
    extract_template_mesh,
    subject_mesh_sequence,
    template_mesh_sequence,
    track_template,
)
from .model import Atlas, NeuralDiffeomorphicAtlas, load_atlas
from .networks import SpatialFlow, TemplateSDF, TemporalFlow
from .sampling import SubjectData, phantom_canonical_frame, subject_from_labels, subject_from_meshes, subject_from_phantom
from .residual import apply_residual, invert_residual, residual_jacobian_determinant
from .runner import AtlasFitRun, run_atlas_fit
from .shape_prior import ShapeMotionPrior, regress_shape_motion_prior
from .timing import cyclic_phase_error, prediction_spread, recovered_es_phase
from .train import train_atlas

__all__ = [
    "AtlasConfig", "FitConfig", "MeshConfig", "SamplingConfig", "FIT_SETTINGS", "ODE_METHODS",
    "AtlasError", "AtlasDataError", "AtlasConfigError",
    "CanonicalFrame", "canonical_frame_from_labels", "canonical_frame_from_mesh",
    "SubjectData", "subject_from_labels", "subject_from_meshes", "subject_from_phantom", "phantom_canonical_frame",
    "TemplateSDF", "SpatialFlow", "TemporalFlow", "NeuralDiffeomorphicAtlas", "Atlas", "load_atlas",
    "train_atlas", "fit_subject", "FittedSubject", "prior_subject", "training_subject", "sdf_error_mm",
    "TemplateMotion", "extract_template_mesh", "track_template", "subject_mesh_sequence", "template_mesh_sequence",
    "lv_cavity_volume_ml", "cavity_volume_curve", "d1_jacobian_determinant", "d2_folds",
    "temporal_correspondence_error", "cross_subject_correspondence_error", "SurfaceParameterisation",
    "cohort_mean_motion", "sdf_blend_meshes", "CodePrior",
    "ShapeMotionPrior", "fit_shape_motion_prior", "regress_shape_motion_prior",
    "material_template_motion", "inverse_time_warp",
    "apply_residual", "invert_residual", "residual_jacobian_determinant",
    "recovered_es_phase", "prediction_spread", "cyclic_phase_error",
    "run_atlas_fit", "AtlasFitRun",
]
