"""Cardiac Motion Atlas: the Slicer module of the CardiacMotionAtlas extension.

This first release only shows which library is installed; the methods (spatiotemporal NDF atlas,
NISF++, CardioMorphNet, CT motion synthesis) arrive in later releases. All computation lives in the
pure-Python package ``CardiacMotionAtlasLib``, installed next to this file; only this file imports
``slicer``.
"""

import importlib.metadata
import importlib.util
import logging
import os
import sys

import ctk
import qt
import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)

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


#
# CardiacMotionAtlas
#


class CardiacMotionAtlas(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Cardiac Motion Atlas")
        self.parent.categories = ["Cardiac"]
        self.parent.dependencies = []
        self.parent.contributors = ["CardiacMotionAtlas developers"]
        self.parent.helpText = _(
            "3D+t cardiac shape and motion modelling from cine CMR and cardiac CT: a spatiotemporal "
            "neural distance field atlas, NISF++ 4D reconstruction from cine slices, CardioMorphNet motion "
            "estimation with uncertainty, and generative CT motion synthesis.<br>"
            "This release contains the library and its infrastructure only; the methods arrive in later "
            "releases. The same pipelines run without Slicer through the library's command line."
        )
        self.parent.acknowledgementText = _(
            "The methods follow published work on spatiotemporal neural distance field atlases, neural "
            "implicit segmentation functions (NISF), Bayesian cardiac motion estimation (CardioMorphNet) "
            "and generative CT motion models. PyTorch is provided by the SlicerPyTorch extension."
        )


#
# CardiacMotionAtlasWidget
#


class CardiacMotionAtlasWidget(ScriptedLoadableModuleWidget):
    """Shows the installed library and PyTorch status; all work is delegated to the Logic."""

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = CardiacMotionAtlasLogic()

        aboutButton = ctk.ctkCollapsibleButton()
        aboutButton.text = _("About")
        self.layout.addWidget(aboutButton)
        formLayout = qt.QFormLayout(aboutButton)

        statusLabel = qt.QLabel(_("Cardiac Motion Atlas methods arrive in later releases."))
        statusLabel.wordWrap = True
        formLayout.addRow(statusLabel)

        try:
            libraryText = self.logic.libraryVersion()
        except ImportError as error:
            libraryText = _("not found ({error})").format(error=error)
            logging.error("CardiacMotionAtlas: %s", error)
        formLayout.addRow(_("Library version:"), qt.QLabel(libraryText))
        formLayout.addRow(_("PyTorch:"), qt.QLabel(self.logic.torchStatus()))

        self.layout.addStretch(1)


#
# CardiacMotionAtlasLogic
#


class CardiacMotionAtlasLogic:
    """Computation entry points, free of GUI code: usable from the Python console and headless
    (``Slicer --no-main-window --python-script ...``). Deliberately not a ScriptedLoadableModuleLogic:
    it needs no parameter node yet."""

    def libraryVersion(self):
        """Version string of the installed ``CardiacMotionAtlasLib`` (ImportError when it is missing)."""
        _ensureLibraryImportable()
        import CardiacMotionAtlasLib

        return CardiacMotionAtlasLib.__version__

    def torchStatus(self):
        """A short text: PyTorch version, or how to get it. Never imports or installs torch."""
        if importlib.util.find_spec("torch") is None:
            return _("not installed (install the PyTorch extension, then use its PyTorch Utils module)")
        try:
            return importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            return _("installed (version unknown)")


#
# CardiacMotionAtlasTest
#


class CardiacMotionAtlasTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_LibraryIsInstalled()

    def test_LibraryIsInstalled(self):
        self.delayDisplay("Checking the CardiacMotionAtlasLib installation")
        logic = CardiacMotionAtlasLogic()
        version = logic.libraryVersion()
        import CardiacMotionAtlasLib

        self.assertEqual(version, CardiacMotionAtlasLib.__version__)
        self.assertTrue(logic.torchStatus())
        self.delayDisplay("Test passed")
