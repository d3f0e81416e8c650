"""A working MRML scene outside the Slicer application (plain Python with ``slicer-core``), and the
lookup of module logics that some conversions need (the Sequences logic creates proxy nodes).

Inside Slicer use ``slicer.mrmlScene``: the application has already attached every module logic. Outside
Slicer, :func:`create_standalone_scene` does what ``qSlicerCoreApplication`` and the module loaders do:
an application logic (with the default colour tables), the module logics whose ``SetMRMLScene``
registers the node classes (Sequences, Segmentations, Transforms, Volumes, Models, Tables, Plots,
Subject hierarchy), and a cache manager + data I/O manager so that scenes and ``.mrb`` bundles read and
write. The Terminologies logic is left out: it needs the Slicer share folder (terminology JSON files),
which ``slicer-core`` does not ship; segments then keep plain names and colours.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Union

import slicer

from .common import MRMLBridgeError

MODULE_LOGIC_CLASSES = {
    "Sequences": "vtkSlicerSequencesLogic",
    "Segmentations": "vtkSlicerSegmentationsModuleLogic",
    "Transforms": "vtkSlicerTransformLogic",
    "Volumes": "vtkSlicerVolumesLogic",
    "Models": "vtkSlicerModelsLogic",
    "Tables": "vtkSlicerTablesLogic",
    "Plots": "vtkSlicerPlotsLogic",
    "SubjectHierarchy": "vtkSlicerSubjectHierarchyModuleLogic",
}
"""Slicer module name -> logic class attached by :func:`create_standalone_scene`."""

# scene -> StandaloneScene, so that converters given only a scene find its module logics
_STANDALONE: "weakref.WeakValueDictionary[int, StandaloneScene]" = weakref.WeakValueDictionary()


@dataclass
class StandaloneScene:
    """A plain-Python MRML scene with its application and module logics. Keep this object alive as
    long as the scene is used: the logics observe the scene (proxy nodes, node classes)."""

    scene: Any
    application_logic: Any
    module_logics: Dict[str, Any] = field(default_factory=dict)
    cache_directory: Optional[str] = None
    _io: list = field(default_factory=list, repr=False)
    _owns_cache: bool = field(default=False, repr=False)

    def logic(self, module_name: str) -> Any:
        """The logic of ``module_name`` (a key of :data:`MODULE_LOGIC_CLASSES`)."""
        return self.module_logics[module_name]

    def new_scene(self) -> "StandaloneScene":
        """Another independent standalone scene (e.g. to reopen a saved ``.mrb``)."""
        return create_standalone_scene()

    def close(self) -> None:
        """Clear the scene and delete a cache folder this object created."""
        self.scene.Clear(True)
        if self._owns_cache and self.cache_directory:
            shutil.rmtree(self.cache_directory, ignore_errors=True)
            self.cache_directory = None


def create_standalone_scene(cache_directory: Optional[Union[str, os.PathLike]] = None) -> StandaloneScene:
    """A new scene with the logics of :data:`MODULE_LOGIC_CLASSES`, the default colour tables, a cache
    manager and a data I/O manager (see module docstring). ``cache_directory`` defaults to a new
    temporary folder removed by :meth:`StandaloneScene.close` (or at garbage collection)."""
    scene = slicer.vtkMRMLScene()
    application_logic = slicer.vtkSlicerApplicationLogic()
    application_logic.SetMRMLScene(scene)
    application_logic.GetColorLogic().SetMRMLScene(scene)
    application_logic.GetColorLogic().AddDefaultColorNodes()
    logics: Dict[str, Any] = {}
    for module_name, class_name in MODULE_LOGIC_CLASSES.items():
        logic_class = getattr(slicer, class_name, None)
        if logic_class is None:  # an older or smaller slicer-core: that module's nodes stay unavailable
            continue
        logic = logic_class()
        logic.SetMRMLApplicationLogic(application_logic)
        logic.SetMRMLScene(scene)
        application_logic.SetModuleLogic(module_name, logic)
        logics[module_name] = logic
    owns_cache = cache_directory is None
    cache = str(cache_directory) if cache_directory else tempfile.mkdtemp(prefix="CardiacMotionAtlas-mrml-cache-")
    Path(cache).mkdir(parents=True, exist_ok=True)
    remote_io = slicer.vtkMRMLRemoteIOLogic()
    remote_io.SetMRMLScene(scene)
    remote_io.SetMRMLApplicationLogic(application_logic)
    remote_io.GetCacheManager().SetRemoteCacheDirectory(cache)
    data_io_logic = slicer.vtkDataIOManagerLogic()
    data_io_logic.SetMRMLScene(scene)
    data_io_logic.SetMRMLApplicationLogic(application_logic)
    data_io_logic.SetAndObserveDataIOManager(remote_io.GetDataIOManager())
    remote_io.AddDataIOToScene()
    standalone = StandaloneScene(scene, application_logic, logics, cache, [remote_io, data_io_logic], owns_cache)
    if owns_cache:  # also removed when the object is garbage-collected or at interpreter exit
        weakref.finalize(standalone, shutil.rmtree, cache, True)
    _STANDALONE[id(scene)] = standalone
    return standalone


def module_logic(scene: Any, module_name: str) -> Optional[Any]:
    """The logic of a Slicer module for ``scene``: inside Slicer ``slicer.modules.<name>.logic()``
    (when it works on that scene), outside it the one attached by :func:`create_standalone_scene`;
    ``None`` if neither exists."""
    standalone = _STANDALONE.get(id(scene))
    if standalone is not None and standalone.scene is scene:
        return standalone.module_logics.get(module_name)
    modules = getattr(slicer, "modules", None)
    module = getattr(modules, module_name.lower(), None) if modules is not None else None
    if module is not None:
        logic = module.logic()
        if logic is not None and logic.GetMRMLScene() is scene:
            return logic
    return None


def require_module_logic(scene: Any, module_name: str) -> Any:
    """:func:`module_logic`, or :class:`MRMLBridgeError` saying how to get one."""
    logic = module_logic(scene, module_name)
    if logic is None:
        raise MRMLBridgeError(
            f"the scene has no {module_name} module logic: use slicer.mrmlScene inside Slicer, or a scene "
            f"made by CardiacMotionAtlasLib.mrml.create_standalone_scene() outside it")
    return logic


def save_scene_bundle(scene: Any, path: Union[str, os.PathLike]) -> Path:
    """Write ``scene`` (every storable node, with its storage files) to a Slicer data bundle ``.mrb``.
    MRML storage nodes write volumes/sequences as NRRD, models as VTK (LPS on disk), transforms as
    ITK HDF5 and tables as TSV (+ schema with units)."""
    path = Path(path).resolve()
    if path.suffix.lower() != ".mrb":
        raise MRMLBridgeError(f"{path}: a Slicer data bundle must end with .mrb")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not scene.WriteToMRB(str(path)):
        raise MRMLBridgeError(f"{path}: MRML could not write the scene bundle")
    return path


def load_scene_bundle(scene: Any, path: Union[str, os.PathLike]) -> None:
    """Replace the content of ``scene`` by the ``.mrb`` bundle at ``path``."""
    path = Path(path).resolve()
    if not path.is_file():
        raise MRMLBridgeError(f"{path}: no such scene bundle")
    if not scene.ReadFromMRB(str(path)):
        raise MRMLBridgeError(f"{path}: MRML could not read the scene bundle")


__all__ = [
    "MODULE_LOGIC_CLASSES",
    "StandaloneScene",
    "create_standalone_scene",
    "load_scene_bundle",
    "module_logic",
    "require_module_logic",
    "save_scene_bundle",
]
