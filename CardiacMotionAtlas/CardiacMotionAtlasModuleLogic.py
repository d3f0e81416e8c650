"""The Cardiac Motion Atlas module's Logic and its typed parameter node (no Qt here: the Widget, in
``CardiacMotionAtlas.py``, owns every dialog and widget).

The Logic is a thin ``ScriptedLoadableModuleLogic`` around the GUI-free
``CardiacMotionAtlasLib.mrml.logic.CardiacMotionAtlasLogic``: the same code runs in the Python console,
headless with ``Slicer --no-main-window --python-script ...``, and outside Slicer with ``slicer-core``.
Python dependencies come from one list, the library's own requirements (``pyproject.toml``, installed next
to the library), checked with their versions before a run; torch is installed through the PyTorch
extension's installer (``PyTorchUtils``, which picks the CPU or CUDA build), asked once before the first
run, never at import and never while testing.
"""

import importlib.metadata
import importlib.util
import os
import pathlib
import shutil
import sys
from typing import Annotated, List, Optional

import slicer
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic

try:
    from slicer.i18n import tr as _
except ImportError:  # Slicer < 5.4 has no translation helpers

    def _(text):
        return text


def ensureLibraryImportable():
    """Make ``import CardiacMotionAtlasLib`` work when the module is loaded from a source checkout (the
    library is then a sibling of this module's folder). In an installed extension the library already
    sits next to this file, on Slicer's module path, and nothing is changed."""
    if importlib.util.find_spec("CardiacMotionAtlasLib") is not None:
        return
    checkoutRoot = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(checkoutRoot, "CardiacMotionAtlasLib", "__init__.py")):
        sys.path.append(checkoutRoot)


def isSet(path) -> bool:
    """A path parameter that the user filled in (unset ones read as '' or '.')."""
    return path is not None and str(path) not in ("", ".")


#
# CardiacMotionAtlasParameterNode
#


@parameterNodeWrapper
class CardiacMotionAtlasParameterNode:
    """The module's GUI state (saved with the scene).

    phantomFamily, phantomSeed, phantomIndex - which synthetic subject (phantom family, cohort seed,
        subject index).
    tinyPhantom - small fast images (8 frames, 48x48) instead of the realistic protocol.
    studyFolder - a study folder (UK Biobank-style, ACDC, M&Ms or DICOM).
    cohortSubjects - subjects of a background phantom cohort run.
    modelRegistry - a JSON model registry (name, method, checkpoint, sha256).
    atlasCheckpoint, atlasLabels, atlasSetting, atlasFitSteps - atlas fit: checkpoint, label-map sequence
        (2 = LV myocardium), observed frames (all, ed_es, ed), optimisation steps.
    nisfCheckpoint, nisfStudy, nisfSpacing - NISF++: checkpoint, cine study browser, output grid spacing (mm).
    motionCheckpoint, motionStudy - CardioMorphNet: checkpoint, cine study.
    motionFactor, motionCrop, motionFrames - the grid reduction (in-plane factor, crop pixels (0: none), frames
        (0: all)); filled in and locked when the model stores the one it was trained with.
    synthCheckpoint, synthFrame, synthLabels, synthSamples - CT synthesis: CVAE, ES CT volume, its labels, samples.
    computeDevice - where method runs compute: auto (GPU when present), cpu, cuda.
    """

    phantomFamily: Annotated[str, Choice(["ellipsoidal", "lofted", "mixed"])] = "ellipsoidal"
    phantomSeed: Annotated[int, WithinRange(0, 1000000)] = 0
    phantomIndex: Annotated[int, WithinRange(0, 100000)] = 0
    tinyPhantom: bool = True
    studyFolder: pathlib.Path
    cohortSubjects: Annotated[int, WithinRange(1, 1000)] = 1
    modelRegistry: pathlib.Path
    atlasCheckpoint: pathlib.Path
    atlasLabels: slicer.vtkMRMLSequenceNode
    atlasSetting: Annotated[str, Choice(["all", "ed_es", "ed"])] = "all"
    atlasFitSteps: Annotated[int, WithinRange(10, 100000)] = 200
    nisfCheckpoint: pathlib.Path
    nisfStudy: slicer.vtkMRMLSequenceBrowserNode
    nisfSpacing: Annotated[float, WithinRange(0.5, 10.0)] = 1.25
    motionCheckpoint: pathlib.Path
    motionStudy: slicer.vtkMRMLSequenceBrowserNode
    motionFactor: Annotated[int, WithinRange(1, 8)] = 1
    motionCrop: Annotated[int, WithinRange(0, 512)] = 0
    motionFrames: Annotated[int, WithinRange(0, 100)] = 0
    synthCheckpoint: pathlib.Path
    synthFrame: slicer.vtkMRMLScalarVolumeNode
    synthLabels: slicer.vtkMRMLLabelMapVolumeNode
    synthSamples: Annotated[int, WithinRange(1, 100)] = 3
    computeDevice: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"


#
# CardiacMotionAtlasLogic
#


class CardiacMotionAtlasLogic(ScriptedLoadableModuleLogic):
    """Slicer-side entry points (camelCase, defaulting to ``slicer.mrmlScene``) delegating to the GUI-free
    ``CardiacMotionAtlasLib.mrml.logic.CardiacMotionAtlasLogic``; usable from the Python console and
    headless. Opens no dialog (the Widget asks the user).

    Method runs block by default and return their result nodes (a dict: name -> node), raising with the
    CLI's message when a run fails; with ``waitForCompletion=False`` they return the running ``MethodRun``
    at once (the Widget polls ``run.run.dispatch_pending()`` from a QTimer). A missing Python package
    (torch) refuses the run with ``MissingDependencyError``, whose message offers the installation
    (:meth:`installDependencies`).
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self._core = None

    def getParameterNode(self):
        return CardiacMotionAtlasParameterNode(super().getParameterNode())

    @property
    def core(self):
        """The library's GUI-free logic (imported on first use: it needs numpy, scipy, SimpleITK...)."""
        if self._core is None:
            ensureLibraryImportable()
            from CardiacMotionAtlasLib.mrml.logic import CardiacMotionAtlasLogic as LibraryLogic

            self._core = LibraryLogic(python_executable=shutil.which("PythonSlicer"))
        return self._core

    # ------------------------------------------------------------------ loading
    def loadPhantomSubject(self, seed: int = 0, index: int = 0, tiny: bool = False, scene=None,
                           family: str = "ellipsoidal"):
        """Synthetic subject of phantom ``family`` as MRML nodes (see ``CardiacMotionAtlasLib.mrml.logic``);
        returns the library's ``PhantomSubjectNodes``."""
        return self.core.load_phantom_subject(scene or slicer.mrmlScene, seed=seed, index=index, tiny=tiny,
                                              family=family)

    def loadStudy(self, folder, scene=None):
        """A study folder's cine slices as volume sequences with one browser; returns ``CineStudyNodes``."""
        if not folder or str(folder) in ("", "."):
            raise ValueError(_("Choose a study folder first."))
        return self.core.load_study(scene or slicer.mrmlScene, pathlib.Path(folder))

    def loadCT(self, filesOrFolder, phases=None, labelFiles=None, scene=None):
        """CT phase volumes (files, or a folder with ct_*.nii.gz) as a volume sequence; returns ``CTPhaseNodes``."""
        if not isSet(filesOrFolder):
            raise ValueError(_("Choose a folder with CT phase volumes first."))
        return self.core.load_ct(scene or slicer.mrmlScene, filesOrFolder, phases=phases, label_files=labelFiles)

    def generatePhantomCohort(self, subjects: int = 1, tiny: bool = True, progressCallback=None, doneCallback=None,
                              waitForCompletion: bool = True, scene=None, family: str = "ellipsoidal"):
        """``cardiac-atlas phantom`` in a background ``PythonSlicer`` process; the finished subjects are
        loaded into the scene. Blocks and returns the loaded studies (``CineStudyNodes`` list) by default;
        with ``waitForCompletion=False`` returns the ``CohortRun`` at once (poll ``run.dispatch_pending()``)."""
        cohort = self.core.generate_phantom_cohort(scene or slicer.mrmlScene, subjects=subjects, tiny=tiny,
                                                   family=family, on_progress=progressCallback,
                                                   on_done=doneCallback, wait=waitForCompletion, dispatch="poll")
        if not waitForCompletion:
            return cohort
        if not cohort.result.ok:
            raise RuntimeError(_("The phantom cohort run failed: {error}").format(error=cohort.result.error_message))
        return cohort.loaded

    # ------------------------------------------------------------------ methods (background runs)
    def checkpointsFromRegistry(self, registry) -> dict:
        """``method -> checkpoint path`` of the first model of each method in a registry (sha256 verified)."""
        from CardiacMotionAtlasLib.registry import list_models, resolve_checkpoint

        found = {}
        for name, model in sorted(list_models(pathlib.Path(registry)).items()):
            if model.method not in found:
                found[model.method] = resolve_checkpoint(pathlib.Path(registry), name, model.method)
        return found

    @staticmethod
    def _finish(methodRun, waitForCompletion: bool):
        """The result nodes of a finished run (raising its error), or the running MethodRun."""
        return methodRun.result_nodes() if waitForCompletion else methodRun

    def fitAtlas(self, checkpoint, labels, setting: str = "all", steps: Optional[int] = None, device: str = "auto",
                 progressCallback=None, doneCallback=None, waitForCompletion: bool = True, scene=None, **options):
        """Atlas fit in a background process (see ``CardiacMotionAtlasLib.mrml.method_logic``): the result
        nodes (mesh sequence, template, volume curve, browser), or the MethodRun without waiting.
        ``options``: further keywords of the library's ``run_atlas_fit`` (``phases``, ``resolution``...)."""
        if not isSet(checkpoint):
            raise ValueError(_("Choose an atlas checkpoint first."))
        run = self.core.run_atlas_fit(scene or slicer.mrmlScene, pathlib.Path(checkpoint), labels, setting,
                                      steps=steps, device=device, on_progress=progressCallback, on_done=doneCallback,
                                      wait=waitForCompletion, dispatch="poll", **options)
        return self._finish(run, waitForCompletion)

    def reconstructNisf(self, checkpoint, study, spacingMm: float = 1.25, device: str = "auto", progressCallback=None,
                        doneCallback=None, waitForCompletion: bool = True, scene=None, **options):
        """NISF++ reconstruction in a background process: the result nodes (sequences, segmentation,
        corrected slice planes), or the MethodRun without waiting (``options``: ``phases``, ``steps``...)."""
        if not isSet(checkpoint):
            raise ValueError(_("Choose a NISF++ checkpoint first."))
        run = self.core.run_nisf_reconstruction(scene or slicer.mrmlScene, pathlib.Path(checkpoint), study,
                                                spacing_mm=spacingMm, device=device, on_progress=progressCallback,
                                                on_done=doneCallback, wait=waitForCompletion, dispatch="poll", **options)
        return self._finish(run, waitForCompletion)

    def motionTrainingSettings(self, checkpoint):
        """The grid reduction (factor, crop, frames or a preset) a CardioMorphNet model was trained with."""
        return self.core.motion_training_settings(pathlib.Path(checkpoint))

    def estimateMotion(self, checkpoint, study, factor: Optional[int] = None, crop: Optional[int] = None,
                       frames: Optional[int] = None, device: str = "auto", progressCallback=None, doneCallback=None,
                       waitForCompletion: bool = True, scene=None, **options):
        """CardioMorphNet in a background process with the model's stored grid reduction (other
        ``factor``/``crop``/``frames`` are refused): the result nodes (grid transform, uncertainty, warped
        labels, myocardium with uncertainty scalars, indices, volume curves, strain), or the MethodRun
        (``options``: ``samples``, ``refine_steps``)."""
        if not isSet(checkpoint):
            raise ValueError(_("Choose a CardioMorphNet model first."))
        run = self.core.run_motion_estimation(scene or slicer.mrmlScene, pathlib.Path(checkpoint), study,
                                              factor=factor, crop=crop, frames=frames, device=device,
                                              on_progress=progressCallback, on_done=doneCallback,
                                              wait=waitForCompletion, dispatch="poll", **options)
        return self._finish(run, waitForCompletion)

    def synthesizeCT(self, checkpoint, frame, labels=None, samples: int = 3, device: str = "auto",
                     progressCallback=None, doneCallback=None, waitForCompletion: bool = True, scene=None,
                     **options):
        """CT motion synthesis in a background process: the result nodes (generated frames, flows as grid
        transforms, sample table), or the MethodRun without waiting (``options``: ``mode``, ``seed``...)."""
        if not isSet(checkpoint):
            raise ValueError(_("Choose a CT synthesis model first."))
        run = self.core.run_ct_synthesis(scene or slicer.mrmlScene, pathlib.Path(checkpoint), frame, labels,
                                         n=samples, device=device, on_progress=progressCallback,
                                         on_done=doneCallback, wait=waitForCompletion, dispatch="poll", **options)
        return self._finish(run, waitForCompletion)

    # ------------------------------------------------------------------ views (GUI only)
    def showMethodResult(self, methodRun) -> None:
        """Show a method's result: its label/intensity volumes in the slice views, its plot chart."""
        if slicer.app.layoutManager() is None:
            return
        nodes = methodRun.nodes
        browser = nodes.get("browser")
        if "generated_sequence" in nodes and browser is not None:
            slicer.util.setSliceViewerLayers(background=browser.GetProxyNode(nodes["generated_sequence"]), fit=True)
        if "intensity_sequence" in nodes and browser is not None:
            slicer.util.setSliceViewerLayers(background=browser.GetProxyNode(nodes["intensity_sequence"]),
                                             label=browser.GetProxyNode(nodes["label_sequence"]), fit=True)
        if "label_sequence" in nodes and "uncertainty_sequence" in nodes and browser is not None:
            slicer.util.setSliceViewerLayers(background=browser.GetProxyNode(nodes["uncertainty_sequence"]),
                                             label=browser.GetProxyNode(nodes["label_sequence"]), fit=True)
        if "volume_curves" in nodes:
            slicer.modules.plots.logic().ShowChartInLayout(nodes["volume_curves"].chart)
        if browser is not None:
            slicer.modules.sequences.showSequenceBrowser(browser)

    def showSubject(self, nodes) -> None:
        """Show a phantom subject: first SAX slice with its labels, the plot chart, the 3D content."""
        self.showStudy(nodes.cine)
        if slicer.app.layoutManager() is not None:
            slicer.modules.plots.logic().ShowChartInLayout(nodes.volume_curves.chart)

    def showStudy(self, cineNodes) -> None:
        """Put the first slice (and its labels) in the slice views and fit them."""
        if slicer.app.layoutManager() is None or not cineNodes.image_sequences:
            return
        first = next(iter(cineNodes.image_sequences))
        label = cineNodes.proxy(first, labels=True) if first in cineNodes.label_sequences else None
        slicer.util.setSliceViewerLayers(background=cineNodes.proxy(first), label=label, fit=True)

    # ------------------------------------------------------------------ environment
    def libraryVersion(self) -> str:
        """Version string of the installed ``CardiacMotionAtlasLib`` (ImportError when it is missing)."""
        ensureLibraryImportable()
        import CardiacMotionAtlasLib

        return CardiacMotionAtlasLib.__version__

    def torchStatus(self) -> str:
        """A short text: PyTorch version, or how to get it. Never imports or installs torch."""
        if importlib.util.find_spec("torch") is None:
            return _("not installed (the module offers to install it through the PyTorch extension)")
        try:
            return importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            return _("installed (version unknown)")

    def dependencyReport(self):
        """What the library needs that this Slicer lacks, from the library's own requirement list
        (``pyproject.toml``), with versions checked (``CardiacMotionAtlasLib.mrml.dependencies``)."""
        ensureLibraryImportable()
        from CardiacMotionAtlasLib.mrml.dependencies import dependency_report

        return dependency_report()

    def missingPythonPackages(self) -> List[str]:
        """Unsatisfied requirements of the library, torch included (empty: ready to run)."""
        return list(self.dependencyReport().problems)

    def installDependencies(self):
        """Install what :meth:`dependencyReport` lists: torch through the PyTorch extension
        (``PyTorchUtilsLogic().installTorch(askConfirmation=True, torchVersionRequirement=...)``: it asks the
        user and picks the CPU or CUDA build), then the other packages with ``slicer.util.pip_install``.
        Never at import, refused while Slicer runs tests. Returns the report after installing; raises
        ``MissingDependencyError`` when something is still missing."""
        application = getattr(slicer, "app", None)
        if application is not None and application.testingEnabled():
            raise RuntimeError(_("Python packages are not installed while Slicer runs tests."))
        from CardiacMotionAtlasLib.mrml.dependencies import install_dependencies

        return install_dependencies(self._installTorch, self._pipInstall)

    @staticmethod
    def _installTorch(versionRequirement: str) -> None:
        """torch through the PyTorch extension's installer (the boundary the tests stub)."""
        try:
            import PyTorchUtils
        except ModuleNotFoundError as error:
            raise RuntimeError(_("CardiacMotionAtlas needs PyTorch: install the 'PyTorch' extension with the "
                                 "Extensions Manager, restart Slicer and run again.")) from error
        torchLogic = PyTorchUtils.PyTorchUtilsLogic()
        torchLogic.installTorch(askConfirmation=True, torchVersionRequirement=versionRequirement)
        importlib.invalidate_caches()

    @staticmethod
    def _pipInstall(requirements: List[str]) -> None:
        """pip requirements (version specifiers kept) into Slicer's Python."""
        slicer.util.pip_install(requirements)
        importlib.invalidate_caches()
