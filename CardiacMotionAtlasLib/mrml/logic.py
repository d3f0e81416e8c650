"""GUI-free logic of the CardiacMotionAtlas Slicer module: load library data into an MRML scene and
run the library's CLI in the background.

Works on any MRML scene: ``slicer.mrmlScene`` in the Slicer application (GUI, Python console,
``Slicer --no-main-window --python-script``) or a plain-Python scene from
:func:`~CardiacMotionAtlasLib.mrml.scene.create_standalone_scene`. It imports no Qt and does not derive
from ``ScriptedLoadableModuleLogic`` (the module's Logic in ``CardiacMotionAtlas.py`` wraps it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

from .background import BackgroundCLIRun, CLIRunResult, DoneCallback, ProgressCallback, run_cli_in_background
from .cine import CineStudyNodes, cine_study_to_nodes
from .common import set_attribute
from .ct import CTPhaseNodes, ct_phases_to_nodes, phantom_ct_files, read_ct_phases
from .dependencies import DependencyReport, dependency_report, require_dependencies
from .method_logic import MethodRunsMixin
from .method_runs import MethodInputError, MethodRun
from .models import configure_model_display, mesh_sequence_to_sequence_node
from .segmentations import labels_to_segmentation_node
from .tables import VolumeCurvePlot, clinical_indices_to_table_node, volume_curves_to_plot
from .transforms import displacement_field_to_grid_transform_node, slice_transforms_to_nodes
from .volumes import add_sequences_to_browser

PathLike = Union[str, os.PathLike]


@dataclass
class PhantomSubjectNodes:
    """Everything :meth:`CardiacMotionAtlasLogic.load_phantom_subject` put in the scene."""

    subject_id: str
    cine: CineStudyNodes
    mesh_sequence: Any
    displacement_transform: Any
    segmentation: Any
    indices_table: Any
    volume_curves: VolumeCurvePlot
    slice_misalignments: Dict[str, Any] = field(default_factory=dict)
    folder_item: int = 0

    @property
    def browser(self) -> Any:
        """The sequence browser playing the cine slices and the mesh."""
        return self.cine.browser

    @property
    def mesh_proxy(self) -> Any:
        """The displayed model node of the mesh sequence."""
        return self.cine.browser.GetProxyNode(self.mesh_sequence)


@dataclass
class CohortRun:
    """A background phantom-cohort run and the studies it loaded into the scene once complete."""

    run: BackgroundCLIRun
    loaded: List[CineStudyNodes] = field(default_factory=list)

    @property
    def result(self) -> Optional[CLIRunResult]:
        return self.run.result


class CardiacMotionAtlasLogic(MethodRunsMixin):
    """Load phantom subjects and studies as MRML nodes, and run the methods and CLI pipelines in the
    background (the ``run_*`` methods: :mod:`~CardiacMotionAtlasLib.mrml.method_logic`).

    ``python_executable``: interpreter of background runs (default: ``PythonSlicer`` inside Slicer,
    else the current one); ``force_cpu`` hides CUDA devices from them (``device="cpu"`` does so per run);
    ``dependency_check``: returns the :class:`~.dependencies.DependencyReport` checked before every
    background run (default: the library's requirements against this interpreter's packages; None: no
    check). Background runs block by default (``wait=True``).
    """

    def __init__(self, python_executable: Optional[str] = None, force_cpu: bool = False,
                 dependency_check: Optional[Callable[[], DependencyReport]] = dependency_report) -> None:
        self.python_executable = python_executable
        self.force_cpu = force_cpu
        self.dependency_check = dependency_check

    def check_dependencies(self) -> None:
        """Raise :class:`~.dependencies.MissingDependencyError` (message: what is missing and how to
        install it) when a required Python package is missing or too old."""
        if self.dependency_check is not None:
            require_dependencies(self.dependency_check)

    # ------------------------------------------------------------------ phantom
    def load_phantom_subject(self, scene: Any, seed: int = 0, index: int = 0, tiny: bool = False,
                             progress: Optional[ProgressCallback] = None, *,
                             family: str = "ellipsoidal") -> PhantomSubjectNodes:
        """Simulate phantom subject ``index`` of cohort ``seed`` of phantom ``family`` (``ellipsoidal``,
        ``lofted`` or ``mixed``; see :mod:`CardiacMotionAtlasLib.phantom.families`) and add to ``scene``:

        - its cine slices (SAX stack + LAX views) as volume sequences, with label sequences, in one
          browser (``<subject> cine``) that also plays the ground-truth myocardium mesh sequence
          (point scalars ``displacement_mm`` from ED);
        - the exact ED->ES displacement field on an isotropic grid (4 mm tiny, 2 mm otherwise) as a grid
          transform (to parent: ``x -> x + u(x)``, so the ED mesh placed under it lands on ES);
        - the ED labels on that grid as a segmentation (LV blood pool, LV myocardium, RV blood pool);
        - the true clinical indices (table) and the LV/RV volume curves (table + plot chart);
        - the per-slice breath-hold misalignments (ground truth, ``true = M @ nominal``) as linear
          transforms, not applied to the slices (their headers hold the nominal planes).

        ``tiny`` uses ``CMRConfig.tiny()`` (8 frames, 48x48, seconds) instead of the realistic protocol.
        Everything goes into a subject-hierarchy folder named after the subject.
        """
        from ..analysis.volume_curves import VolumeCurve
        from ..phantom.cmr import CMRConfig, simulate_cine
        from ..phantom.families import make_heart

        report = progress or (lambda fraction, message: None)
        report(0.0, "simulating cine CMR")
        heart = make_heart(family, int(seed), int(index))
        subject = heart.subject_id
        simulated = simulate_cine(heart, CMRConfig.tiny() if tiny else CMRConfig(), seed=int(seed),
                                  progress=lambda fraction, message: report(0.4 * fraction, message))
        study = simulated.study
        phases = study.slices[0].image.phases
        report(0.4, "cine volume sequences")
        cine = cine_study_to_nodes(scene, study, include_labels=True, prefix=f"{subject} ")

        report(0.55, "myocardium mesh sequence")
        rings, around = (16, 32) if tiny else (40, 80)
        mesh = heart.mesh_sequence("myocardium", phases, rings, around)
        mesh_sequence = mesh_sequence_to_sequence_node(scene, mesh, f"{subject} myocardium",
                                                       active_scalars="displacement_mm")
        add_sequences_to_browser(cine.browser, [mesh_sequence])
        mesh_proxy = cine.browser.GetProxyNode(mesh_sequence)
        if mesh_proxy is not None:
            configure_model_display(mesh_proxy)

        report(0.65, "ED->ES displacement field")
        matrix, shape = heart.bounding_grid(4.0 if tiny else 2.0)
        flow = heart.displacement_field(matrix, shape, 0.0, heart.es_phase)
        transform = displacement_field_to_grid_transform_node(scene, flow, f"{subject} ED->ES displacement")

        report(0.8, "ED segmentation")
        labels = heart.label_volume(matrix, shape, 0.0)
        segmentation = labels_to_segmentation_node(scene, labels, matrix, name=f"{subject} ED segmentation",
                                                   closed_surface=True)
        set_attribute(segmentation, "Phase", 0.0)

        report(0.9, "indices and volume curves")
        table = clinical_indices_to_table_node(scene, heart.clinical_indices(), f"{subject} clinical indices",
                                               subject_ids=[subject])
        curves = [VolumeCurve(phases, heart.lv_volume_ml(phases), "LV"),
                  VolumeCurve(phases, heart.rv_volume_ml(phases), "RV")]
        plot = volume_curves_to_plot(scene, curves, f"{subject} volume curves",
                                     title=f"{subject}: ventricular volumes (ground truth)")
        misalignments = slice_transforms_to_nodes(
            scene, {f"{subject} {truth.name}": truth.misalignment for truth in simulated.truth},
            suffix=" misalignment (ground truth)")

        nodes = PhantomSubjectNodes(subject, cine, mesh_sequence, transform, segmentation, table, plot,
                                    misalignments)
        folder = place_in_folder(scene, _subject_nodes(nodes), subject)
        if folder:
            place_in_folder(scene, misalignments.values(), "slice misalignment (ground truth)", folder)
        nodes.folder_item = folder
        report(1.0, "done")
        return nodes

    # ------------------------------------------------------------------ studies on disk
    def load_study(self, scene: Any, folder: PathLike, layout: Optional[str] = None,
                   include_labels: bool = True) -> CineStudyNodes:
        """Read a study (UK Biobank-style, ACDC, M&Ms, DICOM folder or one SAX stack file; see
        :func:`~CardiacMotionAtlasLib.io.layouts.read_study`) and add its cine slices (and labels) as
        volume sequences with one browser, in a subject-hierarchy folder named after the subject.
        Bad input raises the library's ``CineStudyError`` naming the file and the problem."""
        from ..io.layouts import read_study

        study = read_study(Path(folder), layout)
        nodes = cine_study_to_nodes(scene, study, include_labels=include_labels, prefix=f"{study.subject_id} ")
        place_in_folder(scene, [nodes.browser, *nodes.all_sequences(),
                                *[nodes.browser.GetProxyNode(s) for s in nodes.all_sequences()]],
                        study.subject_id)
        return nodes

    def load_ct(self, scene: Any, files: Any, phases: Optional[Sequence[float]] = None,
                label_files: Optional[Sequence[PathLike]] = None, name: str = "CT") -> CTPhaseNodes:
        """CT phase volumes (3D NIfTI/NRRD in HU, one per phase; or a phantom subject folder holding
        ``ct_ED``/``ct_ES``) as a volume sequence indexed by phase, with a browser; with label files also a
        label sequence and a segmentation of the first phase. All phases must share one grid; a 4D cine
        file is refused with a message."""
        if isinstance(files, (str, os.PathLike)) and Path(files).is_dir():
            found = phantom_ct_files(files)
            files, phases = found["images"], found["phases"]
            label_files = label_files or found["labels"] or None
            name = f"{Path(found['images'][0]).parent.name} CT" if name == "CT" else name
        elif isinstance(files, (str, os.PathLike)):
            files = [files]
        image, labels = read_ct_phases(list(files), phases, label_files, name)
        nodes = ct_phases_to_nodes(scene, image, labels, name)
        nodes.files = [Path(f) for f in files]
        place_in_folder(scene, [n for n in (nodes.image_sequence, nodes.label_sequence, nodes.segmentation,
                                            nodes.browser) if n is not None], name)
        return nodes

    # ------------------------------------------------------------------ background runs
    def run_cli_in_background(self, args: Sequence[str], on_progress: Optional[ProgressCallback] = None,
                              on_done: Optional[DoneCallback] = None, *, wait: bool = False,
                              work_dir: Optional[PathLike] = None, dispatch: str = "thread") -> BackgroundCLIRun:
        """``cardiac-atlas <args> --progress lines`` in a child process; see
        :func:`~CardiacMotionAtlasLib.mrml.background.run_cli_in_background`."""
        self.check_dependencies()
        return run_cli_in_background(args, on_progress, on_done, wait=wait, work_dir=work_dir,
                                     python_executable=self.python_executable, dispatch=dispatch,
                                     force_cpu=self.force_cpu)

    def generate_phantom_cohort(self, scene: Any, subjects: int = 1, tiny: bool = True, seed: int = 0,
                                ct: bool = False, family: str = "ellipsoidal", on_progress: Optional[ProgressCallback] = None,
                                on_done: Optional[Callable[[CohortRun], None]] = None, *, wait: bool = True,
                                work_dir: Optional[PathLike] = None, dispatch: str = "poll",
                                load_into_scene: bool = True) -> CohortRun:
        """Write a phantom cohort with ``cardiac-atlas phantom`` in the background (in ``work_dir``,
        default a temporary folder, sub-folder ``cohort``, removed once the studies are loaded); once it
        completed, load every subject's study into ``scene`` (``load_into_scene``), then call
        ``on_done(cohort_run)``. ``family`` names the phantom family (``ellipsoidal``, ``lofted``,
        ``mixed``). A cancelled or failed run changes nothing in the scene (a failed run's folder is kept).

        Blocks until the studies are loaded (``wait=True``, the default: console, scripts). With
        ``wait=False`` the scene is modified in the thread that dispatches callbacks: with
        ``dispatch="poll"`` call ``cohort.run.dispatch_pending()`` from the GUI thread (the module does so
        from a ``qt.QTimer``)."""
        if subjects < 1:
            raise ValueError(f"subjects must be >= 1, got {subjects}")
        from ..phantom.families import check_family

        args = ["phantom", "--subjects", str(int(subjects)), "--seed", str(int(seed)), "--out", "cohort",
                "--family", check_family(family)]
        if tiny:
            args.append("--tiny")
        if not ct:
            args.append("--no-ct")
        holder: Dict[str, CohortRun] = {}

        def finished(result: CLIRunResult) -> None:
            cohort = holder["cohort"]
            failed = False
            try:
                if result.ok and load_into_scene:
                    from ..phantom.cohort import subject_is_complete

                    out = result.work_dir / "cohort"
                    for subject_folder in sorted(p for p in out.iterdir() if p.is_dir()):
                        if subject_is_complete(subject_folder):
                            cohort.loaded.append(self.load_study(scene, subject_folder))
            except BaseException:
                failed = True
                raise
            finally:
                try:
                    if on_done is not None:
                        on_done(cohort)
                finally:
                    if load_into_scene:  # the studies are in the scene: the temporary folder has done its job
                        cohort.run.cleanup(failed=failed)

        self.check_dependencies()
        run = BackgroundCLIRun(args, on_progress, finished, work_dir=work_dir,
                               python_executable=self.python_executable,
                               dispatch="poll" if wait else dispatch, force_cpu=self.force_cpu)
        cohort = CohortRun(run)
        holder["cohort"] = cohort
        run.start_and_maybe_wait(wait)
        return cohort


# ---------------------------------------------------------------------------------------- subject hierarchy
def place_in_folder(scene: Any, nodes: Iterable[Any], folder_name: str, parent_item: Optional[int] = None) -> int:
    """Put ``nodes`` under a subject-hierarchy folder ``folder_name`` (created under ``parent_item``,
    default the scene); returns the folder item ID, or 0 when the scene has no subject hierarchy."""
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    if hierarchy is None:
        return 0
    parent = hierarchy.GetSceneItemID() if parent_item is None else parent_item
    folder = hierarchy.CreateFolderItem(parent, folder_name)
    for node in nodes:
        if node is None or node.GetScene() is not scene:
            continue
        item = hierarchy.GetItemByDataNode(node)
        if item:
            hierarchy.SetItemParent(item, folder)
        else:  # outside the application no plugin adds items for new nodes
            hierarchy.CreateItem(folder, node)
    return folder


def _subject_nodes(nodes: PhantomSubjectNodes) -> List[Any]:
    cine = nodes.cine
    sequences = cine.all_sequences() + [nodes.mesh_sequence]
    proxies = [cine.browser.GetProxyNode(sequence) for sequence in sequences]
    plot = nodes.volume_curves
    return [cine.browser, *sequences, *proxies, nodes.displacement_transform, nodes.segmentation,
            nodes.indices_table, plot.table, plot.chart, *plot.series]


__all__ = ["CardiacMotionAtlasLogic", "CohortRun", "MethodRun", "MethodInputError", "PhantomSubjectNodes",
           "place_in_folder"]
