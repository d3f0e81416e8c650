"""Slicer views of a scene rendered offscreen, without Qt: the MRML displayable managers of ``slicer-core``
draw a 3D view and a slice view into offscreen VTK render windows (EGL on a headless Linux machine).

What the Slicer application's ``qMRMLThreeDView``/``qMRMLSliceView`` do is done here by hand:

- 3D view: a ``vtkMRMLViewNode``, a renderer with the 3D displayable managers (camera, view, models,
  segmentations, transforms, volume rendering) instantiated by their factory;
- slice view: a ``vtkMRMLSliceLogic`` (slice + composite node) registered with the application logic
  (``SetSliceLogics``: the model and segmentation 2D managers look the logic up there), its blended
  image (``GetImageDataConnection``) drawn by an image actor, and the 2D displayable managers (model
  intersections, segmentation fill/outline, transforms) on top.

Images come back as ``(rows, columns, 3)`` uint8 arrays, row 0 at the top, and can be written as PNG.
:func:`offscreen_rendering_problem` says, without risking the calling process, whether this machine can
render offscreen at all (a missing EGL/OpenGL driver can abort a process). Use these views only on a
standalone scene (:func:`~CardiacMotionAtlasLib.mrml.scene.create_standalone_scene`): inside the Slicer
application the views exist already and its application logic must keep its own slice logics.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import slicer
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from .common import MRMLBridgeError

PathLike = Union[str, os.PathLike]
THREE_D_MANAGERS = ("vtkMRMLCameraDisplayableManager", "vtkMRMLViewDisplayableManager",
                    "vtkMRMLModelDisplayableManager", "vtkMRMLSegmentationsDisplayableManager3D",
                    "vtkMRMLTransformsDisplayableManager3D", "vtkMRMLVolumeRenderingDisplayableManager")
SLICE_MANAGERS = ("vtkMRMLModelSliceDisplayableManager", "vtkMRMLSegmentationsDisplayableManager2D",
                  "vtkMRMLTransformsDisplayableManager2D")
BACKGROUND_3D = (0.08, 0.09, 0.12)

_PROBE = """
import vtk
from vtk.util.numpy_support import vtk_to_numpy
window = vtk.vtkRenderWindow()
window.SetOffScreenRendering(1)
window.SetSize(32, 32)
renderer = vtk.vtkRenderer()
window.AddRenderer(renderer)
source = vtk.vtkSphereSource()
mapper = vtk.vtkPolyDataMapper()
mapper.SetInputConnection(source.GetOutputPort())
actor = vtk.vtkActor()
actor.SetMapper(mapper)
renderer.AddActor(actor)
window.Render()
grab = vtk.vtkWindowToImageFilter()
grab.SetInput(window)
grab.Update()
pixels = vtk_to_numpy(grab.GetOutput().GetPointData().GetScalars())
print("RENDER-OK" if pixels.max() > 0 else "RENDER-EMPTY", window.GetClassName())
"""


def offscreen_rendering_problem(timeout_s: float = 120.0) -> Optional[str]:
    """None when an offscreen VTK render window draws pixels on this machine; else what went wrong
    (the window class VTK chose, the exit status and the last lines of its output). Probed in a child
    process, since a broken OpenGL/EGL driver may abort instead of raising."""
    try:
        done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return f"an offscreen VTK render window did not finish rendering a sphere within {timeout_s:.0f} s"
    text = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)  # VTK's coloured log lines
    lines = [line for line in text.splitlines() if line.strip()]
    if done.returncode == 0 and any(line.startswith("RENDER-OK") for line in lines):
        return None
    tail = " | ".join(line.strip() for line in lines[-6:])
    return (f"offscreen rendering is unavailable (VTK {vtk.vtkVersion.GetVTKVersion()}, exit status "
            f"{done.returncode}): {tail or 'no output'}; an EGL or OSMesa OpenGL driver is needed "
            f"(Debian/Ubuntu: libegl1 and libgl1-mesa-dri)")


def _grab(window: Any) -> np.ndarray:
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    columns, rows, _ = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(rows, columns, -1)[:, :, :3]
    return np.ascontiguousarray(pixels[::-1])  # VTK's row 0 is the bottom


def write_png(pixels: np.ndarray, path: PathLike) -> Path:
    """Write ``(rows, columns, 3)`` uint8 pixels (row 0 at the top) as a PNG file (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, columns = pixels.shape[:2]
    image = vtk.vtkImageData()
    image.SetDimensions(columns, rows, 1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    vtk_to_numpy(image.GetPointData().GetScalars())[:] = np.ascontiguousarray(pixels[::-1]).reshape(-1, 3)
    writer = vtk.vtkPNGWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(image)
    writer.Write()
    return path


def _new_window(size: Tuple[int, int]) -> Tuple[Any, Any, Any]:
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(int(size[0]), int(size[1]))
    renderer = vtk.vtkRenderer()
    window.AddRenderer(renderer)
    interactor = vtk.vtkRenderWindowInteractor()  # displayable managers expect one (never started)
    interactor.SetRenderWindow(window)
    return window, renderer, interactor


def _managers(factory_class: Any, names: Sequence[str], application_logic: Any, renderer: Any) -> Any:
    factory = factory_class.GetInstance()
    factory.SetMRMLApplicationLogic(application_logic)
    for name in names:
        if hasattr(slicer, name) and not factory.IsDisplayableManagerRegistered(name):
            factory.RegisterDisplayableManager(name)
    return factory.InstantiateDisplayableManagers(renderer)


SLICE_VIEW_NODE_CLASSES = ("vtkMRMLSliceNode", "vtkMRMLSliceCompositeNode", "vtkMRMLSliceDisplayNode")


class OffscreenViews:
    """One 3D view and one slice view (``Red``) of ``scene``, ``size = (width, height)`` pixels each.
    ``application_logic``: the standalone scene's (``StandaloneScene.application_logic``)."""

    def __init__(self, scene: Any, application_logic: Any, size: Tuple[int, int] = (480, 400)) -> None:
        if application_logic.GetSliceLogics() is not None and application_logic.GetSliceLogics().GetNumberOfItems():
            raise MRMLBridgeError("the application logic has slice logics already (the Slicer application?): "
                                  "render offscreen only on a standalone scene")
        self.scene = scene
        self.size = (int(size[0]), int(size[1]))
        self._nodes_before = set(self._slice_node_ids())
        self.view_node = scene.AddNewNodeByClass("vtkMRMLViewNode", "OffscreenView")
        self.view_node.SetLayoutName("1")
        self.view_node.SetBoxVisible(False)
        self.view_node.SetAxisLabelsVisible(False)
        self.view_node.SetBackgroundColor(*BACKGROUND_3D)
        self.view_node.SetBackgroundColor2(*BACKGROUND_3D)
        self.window, self.renderer, self._interactor = _new_window(self.size)
        self._three_d = _managers(slicer.vtkMRMLThreeDViewDisplayableManagerFactory, THREE_D_MANAGERS,
                                  application_logic, self.renderer)
        self._three_d.SetMRMLDisplayableNode(self.view_node)

        self.slice_logic = slicer.vtkMRMLSliceLogic()
        self.slice_logic.SetMRMLApplicationLogic(application_logic)
        self.slice_logic.SetMRMLScene(scene)
        self.slice_node = self.slice_logic.AddSliceNode("Red")
        self.slice_node.SetDimensions(self.size[0], self.size[1], 1)
        logics = vtk.vtkCollection()
        logics.AddItem(self.slice_logic)
        application_logic.SetSliceLogics(logics)
        self._application_logic = application_logic
        self.slice_window, self.slice_renderer, self._slice_interactor = _new_window(self.size)
        mapper = vtk.vtkImageMapper()
        mapper.SetInputConnection(self.slice_logic.GetImageDataConnection())
        mapper.SetColorWindow(255.0)
        mapper.SetColorLevel(127.5)
        self._image_actor = vtk.vtkActor2D()
        self._image_actor.SetMapper(mapper)
        self.slice_renderer.AddViewProp(self._image_actor)
        self._slice = _managers(slicer.vtkMRMLSliceViewDisplayableManagerFactory, SLICE_MANAGERS,
                                application_logic, self.slice_renderer)
        self._slice.SetMRMLDisplayableNode(self.slice_node)

    # ------------------------------------------------------------------ 3D
    def render_3d(self, path: Optional[PathLike] = None, *, focus_bounds: Optional[Sequence[float]] = None,
                  azimuth: float = 0.0, elevation: float = 0.0, zoom: float = 1.0) -> np.ndarray:
        """Render the 3D view: camera looking from anterior (``-A`` towards ``+A``, superior up), turned by
        ``azimuth``/``elevation`` degrees, fitted to ``focus_bounds`` (RAS ``xmin, xmax, ymin, ymax,
        zmin, zmax``; default: everything visible). Returns the pixels; writes a PNG at ``path``."""
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(0.0, 0.0, 0.0)
        camera.SetPosition(0.0, 1.0, 0.0)  # from anterior, as Slicer's default 3D view
        camera.SetViewUp(0.0, 0.0, 1.0)
        camera.Azimuth(azimuth)
        camera.Elevation(elevation)
        camera.OrthogonalizeViewUp()
        if focus_bounds is not None:
            self.renderer.ResetCamera(*[float(b) for b in focus_bounds])
        else:
            self.renderer.ResetCamera()
        camera.Zoom(zoom)
        self.renderer.ResetCameraClippingRange()
        self.window.Render()
        pixels = _grab(self.window)
        if path is not None:
            write_png(pixels, path)
        return pixels

    def project_3d(self, points_ras: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Where RAS points land in the last 3D render: ``(N, 2)`` pixel ``(column, row from top)`` and
        whether each point is visible (in the view and not hidden behind another surface)."""
        points = np.asarray(points_ras, float).reshape(-1, 3)
        width, height = self.size
        depth = vtk.vtkFloatArray()
        self.window.GetZbufferData(0, 0, width - 1, height - 1, depth)
        zbuffer = vtk_to_numpy(depth).reshape(height, width)
        pixels = np.zeros((len(points), 2))
        visible = np.zeros(len(points), bool)
        for i, point in enumerate(points):
            self.renderer.SetWorldPoint(*point, 1.0)
            self.renderer.WorldToDisplay()
            x, y, z = self.renderer.GetDisplayPoint()
            pixels[i] = (x, height - 1 - y)
            column, row = int(round(x)), int(round(y))
            if 0 <= column < width and 0 <= row < height:
                visible[i] = z <= zbuffer[row, column] + 2e-3
        return pixels, visible

    # ------------------------------------------------------------------ slice
    def render_slice(self, background: Any, path: Optional[PathLike] = None, *, label: Any = None,
                     fit: bool = True, focus_ras: Optional[Sequence[float]] = None,
                     field_of_view_mm: Optional[float] = None) -> np.ndarray:
        """Render the slice view with volume ``background`` (and label map ``label``) in the plane of the
        volume's own axes (its lowest-spacing slice direction), fitted to it, or centred on ``focus_ras``
        with ``field_of_view_mm`` across its height; models with ``Visibility2D`` show their intersection,
        segmentations their fill and outline."""
        composite = self.slice_logic.GetSliceCompositeNode()
        composite.SetBackgroundVolumeID(background.GetID() if background is not None else None)
        composite.SetLabelVolumeID(label.GetID() if label is not None else None)
        self.slice_node.SetDimensions(self.size[0], self.size[1], 1)
        if fit and background is not None:
            self.slice_logic.RotateSliceToLowestVolumeAxes()
            self.slice_logic.FitSliceToBackground()
            self.slice_logic.SnapSliceOffsetToIJK()
        if focus_ras is not None and field_of_view_mm is not None:
            offset = self.slice_logic.GetSliceOffset()
            self.slice_node.JumpSliceByCentering(*[float(v) for v in focus_ras])
            self.slice_logic.SetSliceOffset(offset)  # stay in the volume's plane, only move within it
            aspect = self.size[0] / self.size[1]
            thickness = self.slice_node.GetFieldOfView()[2]
            self.slice_node.SetFieldOfView(field_of_view_mm * aspect, field_of_view_mm, thickness)
        self.slice_logic.UpdateImageData()
        # the logic's blended output changes with the layers: attach it again (as the Slicer slice view does)
        self._image_actor.GetMapper().SetInputConnection(self.slice_logic.GetImageDataConnection())
        self.slice_window.Render()
        pixels = _grab(self.slice_window)
        if path is not None:
            write_png(pixels, path)
        return pixels

    def project_slice(self, points_ras: np.ndarray) -> np.ndarray:
        """``(N, 3)`` slice-view coordinates of RAS points: ``(column, row from top, z)``, z = 0 on the
        slice plane (the slice node's XY->RAS inverted; XY has its origin at the bottom left)."""
        matrix = vtk.vtkMatrix4x4()
        matrix.DeepCopy(self.slice_node.GetXYToRAS())
        matrix.Invert()
        ras_to_xy = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
        points = np.asarray(points_ras, float).reshape(-1, 3)
        xy = (ras_to_xy @ np.c_[points, np.ones(len(points))].T).T[:, :3]
        xy[:, 1] = self.size[1] - 1 - xy[:, 1]
        return xy

    # ------------------------------------------------------------------ life
    def close(self) -> None:
        """Release the views (windows, managers) and detach the slice logic from the application logic."""
        self._three_d.SetMRMLDisplayableNode(None)
        self._slice.SetMRMLDisplayableNode(None)
        self._application_logic.SetSliceLogics(None)
        self.slice_logic.SetMRMLScene(None)
        for window in (self.window, self.slice_window):
            window.Finalize()
        if self.view_node.GetScene() is self.scene:
            self.scene.RemoveNode(self.view_node)
        # the slice, slice-composite and slice-display nodes this view made: singletons that the scene's
        # Clear() keeps, and with which a later view of the same scene draws no segmentation or outline
        for node_id in set(self._slice_node_ids()) - self._nodes_before:
            node = self.scene.GetNodeByID(node_id)
            if node is not None:
                self.scene.RemoveNode(node)

    def _slice_node_ids(self) -> List[str]:
        return [self.scene.GetNthNodeByClass(index, class_name).GetID()
                for class_name in SLICE_VIEW_NODE_CLASSES
                for index in range(self.scene.GetNumberOfNodesByClass(class_name))]

    def __enter__(self) -> "OffscreenViews":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def set_visibility(nodes: Iterable[Any], *, in_3d: Optional[bool] = None, in_2d: Optional[bool] = None) -> None:
    """Show or hide displayable nodes in 3D views and/or slice views (their display nodes created if needed)."""
    for node in nodes:
        if node is None:
            continue
        if node.GetDisplayNode() is None:
            node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        display.SetVisibility(True)
        if in_3d is not None:
            display.SetVisibility3D(bool(in_3d))
        if in_2d is not None:
            display.SetVisibility2D(bool(in_2d))


def show_as_glyphs(transform: Any, region: Any, spacing_mm: float) -> None:
    """Show a grid transform in 3D views only, as arrows every ``spacing_mm`` (mm, diameter a quarter of
    it, scaled 1:1 with the displacement) inside ``region``'s bounds (a model or volume node)."""
    set_visibility([transform], in_3d=True, in_2d=False)
    display = transform.GetDisplayNode()
    display.SetVisualizationMode(display.VIS_MODE_GLYPH)
    display.SetGlyphSpacingMm(spacing_mm)
    display.SetGlyphScalePercent(100.0)
    display.SetGlyphDiameterMm(0.25 * spacing_mm)
    display.SetAndObserveRegionNode(region)


def polydata_bounds(nodes: Iterable[Any], margin_mm: float = 5.0) -> Tuple[float, ...]:
    """RAS bounds (``xmin, xmax, ymin, ymax, zmin, zmax``) of the polydata of model nodes, widened by
    ``margin_mm``: a camera target around the heart."""
    boxes = []
    for node in nodes:
        polydata = node.GetPolyData() if node is not None else None
        if polydata is not None and polydata.GetNumberOfPoints():
            boxes.append(np.array(polydata.GetBounds()).reshape(3, 2))
    if not boxes:
        raise MRMLBridgeError("no model with points to frame")
    low = np.min([b[:, 0] for b in boxes], axis=0) - margin_mm
    high = np.max([b[:, 1] for b in boxes], axis=0) + margin_mm
    return tuple(float(v) for pair in zip(low, high) for v in pair)


__all__ = ["OffscreenViews", "offscreen_rendering_problem", "polydata_bounds", "set_visibility", "write_png"]
