"""Cardiac Motion Atlas: the Slicer module of the CardiacMotionAtlas extension.

The Widget only binds the GUI (``Resources/UI/CardiacMotionAtlas.ui``) to the typed parameter node and
calls the Logic; both live in ``CardiacMotionAtlasModuleLogic.py`` beside this file, which imports no Qt.
All computation lives in the pure-Python package ``CardiacMotionAtlasLib``, installed next to this file;
within the extension only the Widget uses ``qt``/``ctk`` and dialogs; the Logic opens none.
"""

import logging
import pathlib
import shutil
from typing import Optional

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from CardiacMotionAtlasModuleLogic import CardiacMotionAtlasLogic, CardiacMotionAtlasParameterNode, _, isSet

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
        self.ui.loadStudyButton.enabled = not running and isSet(folder)
        self.ui.loadCtButton.enabled = not running and isSet(folder)
        self.ui.generateCohortButton.enabled = not running
        self.ui.useRegistryButton.enabled = not running and node is not None and isSet(node.modelRegistry)
        # the Logic refuses bad input with a clear message; buttons only need the obvious fields set
        self.ui.runAtlasFitButton.enabled = not running and node is not None and isSet(node.atlasCheckpoint)
        self.ui.runNisfButton.enabled = not running and node is not None and isSet(node.nisfCheckpoint)
        self.ui.runSynthButton.enabled = not running and node is not None and isSet(node.synthCheckpoint)
        self.ui.runMotionButton.enabled = not running and node is not None and isSet(node.motionCheckpoint)
        self._updateMotionSettings()

    def _updateMotionSettings(self) -> None:
        """Show (and lock) the grid reduction the selected motion model was trained with."""
        node = self._parameterNode
        checkpoint = str(node.motionCheckpoint) if node is not None and isSet(node.motionCheckpoint) else None
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
