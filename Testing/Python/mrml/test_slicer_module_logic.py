"""The Slicer module's own Logic (``CardiacMotionAtlas/CardiacMotionAtlas.py``) run on real MRML classes,
its GUI layer replaced by stand-ins that fail on any Qt use (``slicer_module_stubs``):

- a console call blocks by default and returns the result nodes; its temporary work folder is gone;
- a failed run raises with the CLI's message and keeps its work folder, named in the message;
- a motion model applied with other settings than it was trained with is refused before anything starts;
- without torch a run is refused with the install offer (not a traceback), and ``installDependencies``
  goes through the PyTorch extension's installer (stubbed at that boundary: ``PyTorchUtils``).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import types

import numpy as np
import pytest

from mrml_helpers import require_slicer_core

require_slicer_core()

import slicer  # noqa: E402
import slicer.util  # noqa: E402

from CardiacMotionAtlasLib.data.image_sequence import ImageSequence  # noqa: E402
from CardiacMotionAtlasLib.mrml import dependencies  # noqa: E402
from CardiacMotionAtlasLib.mrml.method_runs import MethodInputError, MethodRunError  # noqa: E402
from CardiacMotionAtlasLib.mrml.volumes import image_sequence_to_sequence_node  # noqa: E402
from slicer_module_stubs import load_slicer_module  # noqa: E402


@pytest.fixture
def module(monkeypatch):
    return load_slicer_module(monkeypatch)


@pytest.fixture
def private_tmp(monkeypatch, tmp_path):
    """Temporary folders of this process go to a fresh folder, so leftovers can be counted."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def no_torch(monkeypatch):
    """torch looks uninstalled until ``state["installed"]`` is set (the probe of installed versions)."""
    state = {"installed": False}
    real = dependencies.installed_version

    def installed_version(name):
        if name.lower() == "torch" and not state["installed"]:
            return None
        return real(name)

    monkeypatch.setattr(dependencies, "installed_version", installed_version)
    return state


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("CardiacMotionAtlas-run-"))


def test_console_call_blocks_returns_result_nodes_and_leaves_no_folder(scene, module, tiny_motion_model,
                                                                       private_tmp):
    logic = module.CardiacMotionAtlasLogic()
    subject = logic.loadPhantomSubject(0, 0, tiny=True, scene=scene)
    nodes = logic.estimateMotion(tiny_motion_model, subject.browser, device="cpu", samples=2, scene=scene)
    assert isinstance(nodes, dict)
    transform = nodes["ed_to_es_transform"]
    assert transform.IsA("vtkMRMLGridTransformNode") and transform.GetScene() is scene
    assert nodes["myocardium_model"].GetPolyData().GetNumberOfPoints() > 0
    assert _leftovers(private_tmp) == []


def test_failed_run_raises_and_keeps_its_folder(scene, module, phantom_heart, tmp_path, private_tmp):
    broken = tmp_path / "atlas.pt"
    broken.write_bytes(b"not a checkpoint")
    matrix, shape = phantom_heart.bounding_grid(5.0)
    phases = np.arange(3) / 3
    labels = ImageSequence(phantom_heart.label_volumes(matrix, shape, phases), matrix, phases, name="labels")
    node = image_sequence_to_sequence_node(scene, labels, "labels", labels=True)
    with pytest.raises(MethodRunError, match="work folder kept for inspection") as failure:
        module.CardiacMotionAtlasLogic().fitAtlas(broken, node, "all", device="cpu", scene=scene)
    kept = _leftovers(private_tmp)
    assert len(kept) == 1 and str(private_tmp / kept[0]) in str(failure.value)
    assert "atlas.pt" in str(failure.value)  # the CLI's own message about the file
    shutil.rmtree(private_tmp / kept[0])


def test_motion_model_refuses_other_settings_than_stored(scene, module, tiny_motion_model, tmp_path,
                                                         private_tmp):
    model = tmp_path / "motion.pt"
    shutil.copy(tiny_motion_model, model)
    (tmp_path / "motion.cohort.json").write_text(json.dumps(
        {"format": "CardiacMotionAtlas cohort record", "method": "motion",
         "reduction": {"factor": 2, "crop": 16, "frames": 6}}))
    logic = module.CardiacMotionAtlasLogic()
    settings = logic.motionTrainingSettings(model)
    assert (settings.factor, settings.crop, settings.frames) == (2, 16, 6) and settings.known
    assert "motion.cohort.json" in settings.describe()
    subject = logic.loadPhantomSubject(0, 0, tiny=True, scene=scene)
    before = scene.GetNumberOfNodes()
    for wrong in ({"factor": 1}, {"crop": 20}, {"frames": 8}):
        with pytest.raises(MethodInputError, match="trained with factor 2, crop 16, frames 6"):
            logic.estimateMotion(model, subject.browser, scene=scene, **wrong)
    assert scene.GetNumberOfNodes() == before and _leftovers(private_tmp) == []
    # what the run applies when nothing is given: the stored reduction
    assert settings.cli_arguments(None, None, None) == ["--factor", "2", "--crop", "16", "--frames", "6"]
    settings.check(model, 2, 16, 6)  # the same values are accepted


def test_missing_torch_gives_the_install_offer_and_installs_through_pytorch_utils(scene, module, no_torch,
                                                                                  monkeypatch, tmp_path,
                                                                                  private_tmp):
    logic = module.CardiacMotionAtlasLogic()
    subject = logic.loadPhantomSubject(0, 0, tiny=True, scene=scene)
    before = scene.GetNumberOfNodes()
    model = tmp_path / "motion.pt"
    model.write_bytes(b"x")  # never read: the run is refused first
    with pytest.raises(dependencies.MissingDependencyError) as refused:
        logic.reconstructNisf(model, subject.browser, scene=scene)
    offer = str(refused.value)
    assert "torch>=" in offer and "PyTorch extension" in offer and "installDependencies()" in offer
    assert not isinstance(refused.value, ModuleNotFoundError)
    assert scene.GetNumberOfNodes() == before and _leftovers(private_tmp) == []
    assert logic.missingPythonPackages() == [dependencies.dependency_report().torch_requirement]

    calls, pip_calls = [], []

    class PyTorchUtilsLogic:
        def installTorch(self, askConfirmation=False, torchVersionRequirement=None, **kwargs):
            calls.append({"askConfirmation": askConfirmation, "torchVersionRequirement": torchVersionRequirement})
            no_torch["installed"] = True
            return types.SimpleNamespace(__version__="2.99")

    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic))
    monkeypatch.setattr(slicer.util, "pip_install", lambda requirements, **kwargs: pip_calls.append(requirements))
    report = logic.installDependencies()
    assert report.ok and logic.missingPythonPackages() == []
    assert calls == [{"askConfirmation": True, "torchVersionRequirement": report.torch_version_requirement}]
    assert report.torch_version_requirement.startswith(">=")
    assert pip_calls == []  # everything else is installed here; torch never goes through pip


def test_install_without_the_pytorch_extension_says_what_to_do(module, no_torch, monkeypatch):
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)  # import fails: extension not installed
    with pytest.raises(RuntimeError, match="PyTorch' extension"):
        module.CardiacMotionAtlasLogic().installDependencies()


def test_logic_environment_calls_need_no_qt(module):
    logic = module.CardiacMotionAtlasLogic()
    assert logic.libraryVersion()
    assert logic.torchStatus()
    assert logic.dependencyReport().ok
    assert not hasattr(module, "PYTHON_REQUIREMENTS")  # one list: the library's own requirements
