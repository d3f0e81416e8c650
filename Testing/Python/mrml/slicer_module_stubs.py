"""Load the Slicer module file ``CardiacMotionAtlas/CardiacMotionAtlas.py`` (and the Logic beside it,
``CardiacMotionAtlasModuleLogic.py``) on plain ``slicer-core``.

The module needs the Slicer application for its GUI layer only: ``qt``, the ``ScriptedLoadableModule``
base classes and ``slicer.parameterNodeWrapper``. These are replaced by minimal stand-ins so that its
real Logic runs against a real MRML scene. The ``qt`` stand-in fails on any use: a Logic call that
touched Qt (a dialog, a timer) fails the test. Nothing else is replaced.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

MODULE_FILE = Path(__file__).resolve().parents[3] / "CardiacMotionAtlas" / "CardiacMotionAtlas.py"
LOGIC_MODULE = "CardiacMotionAtlasModuleLogic"


class QtUsedError(AssertionError):
    """Qt was used where the module promises not to (the Logic)."""


class _NoQt(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise QtUsedError(f"qt.{name} used: the Logic must not touch Qt (dialogs belong to the Widget)")


def _scripted_loadable_module() -> types.ModuleType:
    stubs = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent=None) -> None:
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None) -> None:
            self.parent = parent

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None) -> None:
            pass

        def getParameterNode(self):
            raise AssertionError("no parameter node outside the application")

    class ScriptedLoadableModuleTest:
        pass

    for cls in (ScriptedLoadableModule, ScriptedLoadableModuleWidget, ScriptedLoadableModuleLogic,
                ScriptedLoadableModuleTest):
        setattr(stubs, cls.__name__, cls)
    return stubs


def _parameter_node_wrapper() -> types.ModuleType:
    stubs = types.ModuleType("slicer.parameterNodeWrapper")
    stubs.parameterNodeWrapper = lambda cls: cls
    stubs.Choice = lambda *args, **kwargs: ("Choice", args)
    stubs.WithinRange = lambda *args, **kwargs: ("WithinRange", args)
    return stubs


def load_slicer_module(monkeypatch) -> types.ModuleType:
    """The module file imported with the GUI stand-ins (undone by ``monkeypatch`` after the test)."""
    monkeypatch.setitem(sys.modules, "qt", _NoQt("qt"))
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", _scripted_loadable_module())
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", _parameter_node_wrapper())
    # the Logic and parameter node live beside the module file (Slicer puts that folder on sys.path)
    monkeypatch.syspath_prepend(str(MODULE_FILE.parent))
    monkeypatch.delitem(sys.modules, LOGIC_MODULE, raising=False)  # imported anew with these stand-ins
    spec = importlib.util.spec_from_file_location("CardiacMotionAtlasModuleUnderTest", MODULE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
