"""The only bridge between the library and MRML nodes (requires ``slicer-core`` or 3D Slicer).

Every converter takes or returns RAS millimetre data exactly as the library holds it (MRML keeps RAS in
memory; LPS appears only in files written by MRML storage nodes):

- :mod:`.volumes`: ImageSequence <-> volume sequence nodes (index ``phase``) + sequence browsers;
- :mod:`.cine`: CineStudy <-> one volume sequence per slice with a shared browser;
- :mod:`.models`: MeshSequence <-> model sequence nodes with point scalars;
- :mod:`.transforms`: DisplacementField <-> grid transform nodes (to parent: ``x -> x + u(x)``),
  4x4 matrices <-> linear transform nodes;
- :mod:`.segmentations`: label maps <-> segmentation nodes (LV blood pool, LV myocardium, RV blood pool);
- :mod:`.tables`: clinical indices <-> table nodes, volume curves -> table + plot chart;
- :mod:`.scene`: a standalone scene outside Slicer, ``.mrb`` save/load;
- :mod:`.background`: the library's CLI in a background process (progress, cancel);
- :mod:`.logic`, :mod:`.method_logic`: the GUI-free logic of the Slicer module (method runs block by
  default and return the result nodes; temporary work folders are removed after success);
- :mod:`.dependencies`: the library's requirements (one list: pyproject.toml) checked with versions;
- :mod:`.motion_settings`: the grid reduction a CardioMorphNet model was trained with;
- :mod:`.render`: 3D and slice views of a scene rendered offscreen (EGL) by the MRML displayable managers.

Outside Slicer (plain Python with ``slicer-core``)::

    from CardiacMotionAtlasLib.mrml import CardiacMotionAtlasLogic, create_standalone_scene, save_scene_bundle

    app = create_standalone_scene()        # scene + module logics; keep ``app`` alive while using the scene
    nodes = CardiacMotionAtlasLogic().load_phantom_subject(app.scene, seed=0, index=3, tiny=True)
    save_scene_bundle(app.scene, "phantom003.mrb")   # open it in Slicer

Inside Slicer pass ``slicer.mrmlScene`` instead of ``app.scene``.
"""

from .background import BackgroundCLIRun, CLIRunResult, run_cli_in_background
from .cine import CineStudyNodes, cine_study_from_browser, cine_study_to_nodes
from .common import MRMLBridgeError
from .logic import CardiacMotionAtlasLogic, CohortRun, PhantomSubjectNodes, place_in_folder
from .models import mesh_sequence_to_sequence_node, sequence_node_to_mesh_sequence
from .scene import StandaloneScene, create_standalone_scene, load_scene_bundle, save_scene_bundle
from .segmentations import CARDIAC_SEGMENTS, labels_to_segmentation_node, segmentation_node_to_labels
from .tables import (
    VolumeCurvePlot,
    clinical_indices_to_table_node,
    table_node_to_clinical_indices,
    table_node_to_indices,
    volume_curves_from_table_node,
    volume_curves_to_plot,
)
from .transforms import (
    displacement_field_to_grid_transform_node,
    grid_transform_node_to_displacement_field,
    linear_transform_node_to_matrix,
    matrix_to_linear_transform_node,
    slice_transforms_to_nodes,
)
from .method_outputs import load_atlas_fit_outputs, load_motion_outputs, load_nisf_outputs, load_synth_outputs
from .method_runs import MethodInputError, MethodRun, MethodRunError
from .dependencies import DependencyReport, MissingDependencyError, dependency_report
from .motion_settings import MotionTrainingSettings, read_motion_training_settings
from .volumes import (
    create_sequence_browser,
    image_sequence_to_browser,
    image_sequence_to_sequence_node,
    sequence_node_to_image_sequence,
)

__all__ = [
    "BackgroundCLIRun",
    "CARDIAC_SEGMENTS",
    "CLIRunResult",
    "CardiacMotionAtlasLogic",
    "CineStudyNodes",
    "CohortRun",
    "DependencyReport",
    "MRMLBridgeError",
    "MethodInputError",
    "MethodRun",
    "MethodRunError",
    "MissingDependencyError",
    "MotionTrainingSettings",
    "PhantomSubjectNodes",
    "StandaloneScene",
    "VolumeCurvePlot",
    "cine_study_from_browser",
    "cine_study_to_nodes",
    "dependency_report",
    "clinical_indices_to_table_node",
    "create_sequence_browser",
    "create_standalone_scene",
    "displacement_field_to_grid_transform_node",
    "grid_transform_node_to_displacement_field",
    "image_sequence_to_browser",
    "image_sequence_to_sequence_node",
    "labels_to_segmentation_node",
    "linear_transform_node_to_matrix",
    "load_atlas_fit_outputs",
    "load_motion_outputs",
    "load_nisf_outputs",
    "load_synth_outputs",
    "load_scene_bundle",
    "matrix_to_linear_transform_node",
    "mesh_sequence_to_sequence_node",
    "place_in_folder",
    "read_motion_training_settings",
    "run_cli_in_background",
    "save_scene_bundle",
    "segmentation_node_to_labels",
    "sequence_node_to_image_sequence",
    "sequence_node_to_mesh_sequence",
    "slice_transforms_to_nodes",
    "table_node_to_clinical_indices",
    "table_node_to_indices",
    "volume_curves_from_table_node",
    "volume_curves_to_plot",
]
