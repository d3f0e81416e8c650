"""Cardiac Motion Atlas: the Slicer module of the CardiacMotionAtlas extension.

The Widget only binds the GUI (``Resources/UI/CardiacMotionAtlas.ui``) to a typed parameter node and
calls the Logic. The Logic is a thin ``ScriptedLoadableModuleLogic`` around the GUI-free
``CardiacMotionAtlasLib.mrml.logic.CardiacMotionAtlasLogic`` (the same code runs in the Python console,
headless with ``Slicer --no-main-window --python-script ...``, and outside Slicer with ``slicer-core``).
All computation lives in the pure-Python package ``CardiacMotionAtlasLib``, installed next to this file;
within the extension only the Widget uses ``qt``/``ctk`` and dialogs; the Logic opens none.

Python dependencies come from one list, the library's own requirements (``pyproject.toml``, installed
next to the library), checked with their versions before a run; torch is installed through the PyTorch
extension's installer (``PyTorchUtils``, which picks the CPU or CUDA build), asked once before the first
run, never at import and never while testing.
"""

import importlib.metadata
import importlib.util
import logging
import os
import pathlib
import shutil
import sys
from typing import Annotated, List, Optional

import qt
import slicer
import vtk
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

try:
    from slicer.i18n import tr as _
except ImportError:  # Slicer < 5.4 has no translation helpers

    def _(text):
        return text


def _ensureLibraryImportable():
    """Make ``import CardiacMotionAtlasLib`` work when the module is loaded from a source checkout (the
    library is then a sibling of this module's folder). In an installed extension the library already
    sits next to this file, on Slicer's module path, and nothing is changed."""
    if importlib.util.find_spec("CardiacMotionAtlasLib") is not None:
        return
    checkoutRoot = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.isfile(os.path.join(checkoutRoot, "CardiacMotionAtlasLib", "__init__.py")):
        sys.path.append(checkoutRoot)


def _isSet(path) -> bool:
    """A path parameter that the user filled in (unset ones read as '' or '.')."""
    return path is not None and str(path) not in ("", ".")


#
# CardiacMotionAtlas
#


class CardiacMotionAtlas(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Cardiac Motion Atlas")
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = ["Sequences", "Segmentations", "Plots"]
        self.parent.contributors = ["CardiacMotionAtlas developers"]
        self.parent.helpText = _(
            "3D+t cardiac shape and motion modelling from cine CMR and cardiac CT: a spatiotemporal "
            "neural distance field atlas, NISF++ 4D reconstruction from cine slices, CardioMorphNet motion "
            "estimation with uncertainty, and generative CT motion synthesis.<br>"
            "Load the built-in synthetic 4D phantom or cine studies from disk, then run the methods in a "
            "background process (GPU when present) with progress and Cancel: atlas fit and motion recovery "
            "(mesh sequences with dense correspondence, template, volume curves) and NISF++ reconstruction "
            "(super-resolved 4D intensities and labels, corrected slice planes). The same pipelines run "
            "without Slicer through the library's command line."
        )
        self.parent.acknowledgementText = _(
            "The methods follow published work on spatiotemporal neural distance field atlases, neural "
            "implicit segmentation functions (NISF), Bayesian cardiac motion estimation (CardioMorphNet) "
            "and generative CT motion models. PyTorch is provided by the SlicerPyTorch extension."
        )


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
# CardiacMotionAtlasWidget
#


class CardiacMotionAtlasWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds the GUI to the parameter node; every action is a Logic call."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._cohortRun = None
        self._methodRun = None
        self._pollTimer = None
        self._dependenciesOffered = False  # the install offer is made once, before the first run
        self._motionCheckpointShown = None  # the checkpoint whose stored settings the motion section shows
        self._motionSettingsLocked = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CardiacMotionAtlas.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = CardiacMotionAtlasLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.loadPhantomButton.connect("clicked(bool)", self.onLoadPhantomButton)
        self.ui.loadStudyButton.connect("clicked(bool)", self.onLoadStudyButton)
        self.ui.loadCtButton.connect("clicked(bool)", self.onLoadCtButton)
        self.ui.generateCohortButton.connect("clicked(bool)", self.onGenerateCohortButton)
        self.ui.cancelRunButton.connect("clicked(bool)", self.onCancelRunButton)
        self.ui.installDependenciesButton.connect("clicked(bool)", self.onInstallDependenciesButton)
        self.ui.useRegistryButton.connect("clicked(bool)", self.onUseRegistryButton)
        self.ui.runAtlasFitButton.connect("clicked(bool)", self.onRunAtlasFitButton)
        self.ui.runNisfButton.connect("clicked(bool)", self.onRunNisfButton)
        self.ui.runSynthButton.connect("clicked(bool)", self.onRunSynthButton)
        self.ui.runMotionButton.connect("clicked(bool)", self.onRunMotionButton)

        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(100)
        self._pollTimer.connect("timeout()", self.onPollBackgroundRun)

        self._updateAbout()
        self._setRunning(False)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.onCancelRunButton()
        if self._pollTimer is not None:
            self._pollTimer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode: Optional[CardiacMotionAtlasParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtons)
        self._updateButtons()

    # ------------------------------------------------------------------ GUI state
    def _updateAbout(self) -> None:
        try:
            self.ui.libraryVersionLabel.text = self.logic.libraryVersion()
        except ImportError as error:
            self.ui.libraryVersionLabel.text = _("not found ({error})").format(error=error)
            logging.error("CardiacMotionAtlas: %s", error)
        self.ui.torchStatusLabel.text = self.logic.torchStatus()
        try:
            problems = self.logic.dependencyReport().problems
        except Exception as error:  # the library is missing or its requirement list unreadable
            problems = {str(error): "unknown"}
        self.ui.dependenciesLabel.text = (", ".join(f"{r} ({why})" for r, why in problems.items())
                                          if problems else _("all installed"))
        self.ui.installDependenciesButton.enabled = bool(problems)

    def _updateButtons(self, caller=None, event=None) -> None:
        running = self._cohortRun is not None or self._methodRun is not None
        node = self._parameterNode
        folder = node.studyFolder if node else None
        self.ui.loadPhantomButton.enabled = not running
        self.ui.loadStudyButton.enabled = not running and _isSet(folder)
        self.ui.loadCtButton.enabled = not running and _isSet(folder)
        self.ui.generateCohortButton.enabled = not running
        self.ui.useRegistryButton.enabled = not running and node is not None and _isSet(node.modelRegistry)
        # the Logic refuses bad input with a clear message; buttons only need the obvious fields set
        self.ui.runAtlasFitButton.enabled = not running and node is not None and _isSet(node.atlasCheckpoint)
        self.ui.runNisfButton.enabled = not running and node is not None and _isSet(node.nisfCheckpoint)
        self.ui.runSynthButton.enabled = not running and node is not None and _isSet(node.synthCheckpoint)
        self.ui.runMotionButton.enabled = not running and node is not None and _isSet(node.motionCheckpoint)
        self._updateMotionSettings()

    def _updateMotionSettings(self) -> None:
        """Show (and lock) the grid reduction the selected motion model was trained with."""
        node = self._parameterNode
        checkpoint = str(node.motionCheckpoint) if node is not None and _isSet(node.motionCheckpoint) else None
        if checkpoint == self._motionCheckpointShown:
            return
        self._motionCheckpointShown = checkpoint
        settings, text = None, ""
        if checkpoint is not None:
            try:
                settings = self.logic.motionTrainingSettings(checkpoint)
                text = _("Trained with: {settings}").format(settings=settings.describe())
            except Exception as error:  # a bad checkpoint is reported here and refused by the run
                text = _("Cannot read the model: {error}").format(error=error)
        self._motionSettingsLocked = settings is not None and settings.known
        if self._motionSettingsLocked and settings.preset is None:
            try:  # shown for information; the run applies the stored values even beyond the spin boxes' ranges
                node.motionFactor, node.motionCrop = settings.factor, settings.crop or 0
                node.motionFrames = settings.frames or 0
            except ValueError as error:
                logging.warning("CardiacMotionAtlas: stored motion settings outside the GUI ranges: %s", error)
        for spinBox in (self.ui.motionFactorSpinBox, self.ui.motionCropSpinBox, self.ui.motionFramesSpinBox):
            spinBox.enabled = not self._motionSettingsLocked
        self.ui.motionSettingsLabel.text = text

    def _setRunning(self, running: bool) -> None:
        self.ui.cancelRunButton.enabled = running
        self.ui.runProgressBar.visible = running
        if not running:
            self.ui.runProgressBar.value = 0
        self._updateButtons()

    # ------------------------------------------------------------------ actions
    def onLoadPhantomButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the phantom subject."), waitCursor=True):
            nodes = self.logic.loadPhantomSubject(self._parameterNode.phantomSeed, self._parameterNode.phantomIndex,
                                                  tiny=self._parameterNode.tinyPhantom,
                                                  family=self._parameterNode.phantomFamily)
            self.logic.showSubject(nodes)

    def onLoadStudyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the study."), waitCursor=True):
            nodes = self.logic.loadStudy(self._parameterNode.studyFolder)
            self.logic.showStudy(nodes)

    def onLoadCtButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the CT phases."), waitCursor=True):
            nodes = self.logic.loadCT(self._parameterNode.studyFolder)
            if slicer.app.layoutManager() is not None:
                slicer.util.setSliceViewerLayers(background=nodes.browser.GetProxyNode(nodes.image_sequence), fit=True)

    def onGenerateCohortButton(self) -> None:
        self._offerDependenciesOnce()
        with slicer.util.tryWithErrorDisplay(_("Failed to start the background run."), waitCursor=True):
            self.ui.runStatusLabel.text = _("starting...")
            self._cohortRun = self.logic.generatePhantomCohort(
                self._parameterNode.cohortSubjects, tiny=self._parameterNode.tinyPhantom,
                family=self._parameterNode.phantomFamily, progressCallback=self.onRunProgress, doneCallback=self.onRunDone,
                waitForCompletion=False)
            self._setRunning(True)
            self._pollTimer.start()

    def _offerDependenciesOnce(self) -> None:
        """Before the first run: if Python packages are missing, ask once whether to install them (torch
        through the PyTorch extension). Declined or failed: the run is refused with the same offer."""
        if self._dependenciesOffered:
            return
        self._dependenciesOffered = True
        try:
            report = self.logic.dependencyReport()
        except Exception as error:
            logging.error("CardiacMotionAtlas: cannot check the Python packages: %s", error)
            return
        if report.ok:
            return
        if slicer.util.confirmOkCancelDisplay(report.offer() + "\n\n" + _("Install them now?"),
                                              windowTitle=_("Cardiac Motion Atlas: Python packages")):
            self._installDependencies()

    def _installDependencies(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to install the Python packages."), waitCursor=True):
            self.logic.installDependencies()
        self._updateAbout()

    def onPollBackgroundRun(self) -> None:
        """Deliver the background run's callbacks in the GUI thread (they may touch widgets and the scene)."""
        if self._cohortRun is not None:
            self._cohortRun.run.dispatch_pending()
        if self._methodRun is not None:
            self._methodRun.run.dispatch_pending()

    def onUseRegistryButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to read the model registry."), waitCursor=True):
            found = self.logic.checkpointsFromRegistry(self._parameterNode.modelRegistry)
            if "atlas" in found:
                self._parameterNode.atlasCheckpoint = found["atlas"]
            if "nisf" in found:
                self._parameterNode.nisfCheckpoint = found["nisf"]
            if "synth" in found:
                self._parameterNode.synthCheckpoint = found["synth"]
            if "motion" in found:
                self._parameterNode.motionCheckpoint = found["motion"]
            self.ui.runStatusLabel.text = _("registry: {methods}").format(methods=", ".join(sorted(found)) or "-")

    def _startMethodRun(self, start) -> None:
        """Start a method run (``start(progress, done)`` returns a MethodRun, not waiting); input errors and
        missing packages (with the install offer) show at once."""
        self._offerDependenciesOnce()
        with slicer.util.tryWithErrorDisplay(_("Cannot start the run."), waitCursor=True):
            self.ui.runStatusLabel.text = _("starting...")
            self._methodRun = start(self.onRunProgress, self.onMethodRunDone)
            self._setRunning(True)
            self._pollTimer.start()

    def onRunAtlasFitButton(self) -> None:
        node = self._parameterNode
        self._startMethodRun(lambda progress, done: self.logic.fitAtlas(
            node.atlasCheckpoint, node.atlasLabels, node.atlasSetting, steps=node.atlasFitSteps,
            device=node.computeDevice, progressCallback=progress, doneCallback=done, waitForCompletion=False))

    def onRunNisfButton(self) -> None:
        node = self._parameterNode
        self._startMethodRun(lambda progress, done: self.logic.reconstructNisf(
            node.nisfCheckpoint, node.nisfStudy, spacingMm=node.nisfSpacing, device=node.computeDevice,
            progressCallback=progress, doneCallback=done, waitForCompletion=False))

    def onRunMotionButton(self) -> None:
        node = self._parameterNode
        # locked settings are the model's: let the Logic apply them (it refuses others)
        factor, crop, frames = ((None, None, None) if self._motionSettingsLocked else
                                (node.motionFactor, node.motionCrop or None, node.motionFrames or None))
        self._startMethodRun(lambda progress, done: self.logic.estimateMotion(
            node.motionCheckpoint, node.motionStudy, factor=factor, crop=crop, frames=frames,
            device=node.computeDevice, progressCallback=progress, doneCallback=done, waitForCompletion=False))

    def onRunSynthButton(self) -> None:
        node = self._parameterNode
        self._startMethodRun(lambda progress, done: self.logic.synthesizeCT(
            node.synthCheckpoint, node.synthFrame, node.synthLabels, samples=node.synthSamples,
            device=node.computeDevice, progressCallback=progress, doneCallback=done, waitForCompletion=False))

    def onMethodRunDone(self, methodRun) -> None:
        self._pollTimer.stop()
        if methodRun.ok:
            self.ui.runStatusLabel.text = _("done: {method}").format(method=methodRun.method)
            self.logic.showMethodResult(methodRun)
        elif methodRun.result is not None and methodRun.result.cancelled:
            self.ui.runStatusLabel.text = _("cancelled (scene unchanged)")
        else:
            self.ui.runStatusLabel.text = _("failed")
            slicer.util.errorDisplay(_("The {method} run failed.").format(method=methodRun.method),
                                     detailedText=methodRun.error_message())
        # the Logic removed a temporary work folder after success; a failed run's folder is kept (see the message)
        self._methodRun = None
        self._setRunning(False)

    def onRunProgress(self, fraction: float, message: str) -> None:
        self.ui.runProgressBar.value = int(round(100 * fraction))
        self.ui.runStatusLabel.text = message

    def onRunDone(self, cohortRun) -> None:
        self._pollTimer.stop()
        result = cohortRun.result
        if result.ok:
            self.ui.runStatusLabel.text = _("done: {count} subject(s) loaded").format(count=len(cohortRun.loaded))
            if cohortRun.loaded:
                self.logic.showStudy(cohortRun.loaded[-1])
        elif result.cancelled:
            self.ui.runStatusLabel.text = _("cancelled")
        else:
            self.ui.runStatusLabel.text = _("failed")
            slicer.util.errorDisplay(_("The background run failed."), detailedText=result.error_message)
        self._cohortRun = None
        self._setRunning(False)

    def onCancelRunButton(self) -> None:
        if self._cohortRun is not None:
            self.ui.runStatusLabel.text = _("cancelling...")
            self._cohortRun.run.cancel()
        if self._methodRun is not None:
            self.ui.runStatusLabel.text = _("cancelling...")
            self._methodRun.cancel()

    def onInstallDependenciesButton(self) -> None:
        self._dependenciesOffered = True
        report = self.logic.dependencyReport()
        if report.ok or slicer.util.confirmOkCancelDisplay(report.offer() + "\n\n" + _("Install them now?"),
                                                            windowTitle=_("Cardiac Motion Atlas: Python packages")):
            self._installDependencies()


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
            _ensureLibraryImportable()
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
        if not _isSet(filesOrFolder):
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
        if not _isSet(checkpoint):
            raise ValueError(_("Choose an atlas checkpoint first."))
        run = self.core.run_atlas_fit(scene or slicer.mrmlScene, pathlib.Path(checkpoint), labels, setting,
                                      steps=steps, device=device, on_progress=progressCallback, on_done=doneCallback,
                                      wait=waitForCompletion, dispatch="poll", **options)
        return self._finish(run, waitForCompletion)

    def reconstructNisf(self, checkpoint, study, spacingMm: float = 1.25, device: str = "auto", progressCallback=None,
                        doneCallback=None, waitForCompletion: bool = True, scene=None, **options):
        """NISF++ reconstruction in a background process: the result nodes (sequences, segmentation,
        corrected slice planes), or the MethodRun without waiting (``options``: ``phases``, ``steps``...)."""
        if not _isSet(checkpoint):
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
        if not _isSet(checkpoint):
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
        if not _isSet(checkpoint):
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
        _ensureLibraryImportable()
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
        _ensureLibraryImportable()
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


#
# CardiacMotionAtlasTest
#


class CardiacMotionAtlasTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LibraryIsInstalled()
        self.setUp()
        self.test_LoadPhantomSubject()
        self.setUp()
        self.test_MethodRuns()

    def test_LibraryIsInstalled(self):
        self.delayDisplay("Checking the CardiacMotionAtlasLib installation")
        logic = CardiacMotionAtlasLogic()
        version = logic.libraryVersion()
        import CardiacMotionAtlasLib
        from CardiacMotionAtlasLib.mrml.dependencies import library_requirements

        self.assertEqual(version, CardiacMotionAtlasLib.__version__)
        self.assertTrue(logic.torchStatus())
        requirements, source = library_requirements()  # the installed pyproject.toml: one list
        self.assertIn("torch", [r.name for r in requirements], source)
        report = logic.dependencyReport()  # checked, never installed by a test
        self.assertEqual(report.ok, not logic.missingPythonPackages())
        self.delayDisplay("Test passed")

    def _requirePackages(self, logic):
        missing = logic.missingPythonPackages()
        if missing:  # never installed by a test: install them with the module's button first
            self.skipTest(f"missing Python packages: {missing}")

    def test_LoadPhantomSubject(self):
        """The same check as the pytest suite (CardiacMotionAtlasLib.mrml.selftest)."""
        self.delayDisplay("Loading a tiny phantom subject")
        logic = CardiacMotionAtlasLogic()
        self._requirePackages(logic)
        from CardiacMotionAtlasLib.mrml.selftest import check_phantom_subject

        nodes = check_phantom_subject(slicer.mrmlScene)
        logic.showSubject(nodes)
        self.delayDisplay("Test passed")

    def test_MethodRuns(self):
        """Tiny atlas and NISF++ models, then atlas fit and NISF++ reconstruction in background PythonSlicer
        processes, loaded back into the scene (the same check as the pytest suite)."""
        import tempfile

        self.delayDisplay("Training tiny models and running the methods in the background")
        logic = CardiacMotionAtlasLogic()
        self._requirePackages(logic)
        from CardiacMotionAtlasLib.mrml.selftest import check_method_runs, train_tiny_models

        with tempfile.TemporaryDirectory() as folder:
            models = train_tiny_models(pathlib.Path(folder) / "models")
            results = check_method_runs(slicer.mrmlScene, models, pathlib.Path(folder) / "runs",
                                        python_executable=shutil.which("PythonSlicer"))
            logic.showMethodResult(results["nisf"])
        self.delayDisplay("Test passed")
