"""What each method shows a user, rendered offscreen from its loaded outputs (the nodes returned by
:mod:`~CardiacMotionAtlasLib.mrml.method_outputs`' ``load_*_outputs``, i.e. what the Logic puts in the scene):

- atlas: the fitted myocardium mesh sequence coloured by its displacement from ED (mm, one colour range
  for the whole cycle) at ED and at ES (the frame of least LV volume), 3D view;
- CardioMorphNet: the ED->ES grid transform as glyphs coloured by magnitude (mm) around the ED
  myocardium, the ED myocardium coloured by the ES uncertainty (nats), both 3D; and the ES uncertainty
  volume as a coloured foreground (nearest voxel, blue-to-red over its range) over a cine slice, slice view;
- NISF++: the ED labels as a segmentation (outline) over the reconstructed ED intensities, slice view
  through the LV centre;
- CT synthesis: a sample's flow as glyphs over the CT frame (slice view);
- the volume-curve plot: :mod:`~CardiacMotionAtlasLib.mrml.render_chart`.

Every renderer returns a :class:`MethodPictures` (pixels + what the checks of
:mod:`~CardiacMotionAtlasLib.mrml.render_method_checks` compare them with: projected RAS bounds, scalars,
colour tables). Frames: meshes and volumes in RAS mm; pixels ``(column, row from top)``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple, Union

import numpy as np
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from .render import OffscreenViews, polydata_bounds, set_visibility, show_as_glyphs, write_png
from .render_phantom import _frame_index

PathLike = Union[str, os.PathLike]
COLORMAP = "CardiacMotionAtlas blue to red"  # name of the colour table of scalars: blue (low) -> red (high)
VIEW_ANGLES = {"azimuth": -30.0, "elevation": 15.0}


@dataclass
class MethodPictures:
    """Rendered pictures (``name -> (rows, columns, 3) uint8``) and, per picture, what the checks need:
    ``boxes`` (projected RAS bounds of the heart: ``(column min, row min, column max, row max)``),
    ``points``/``visible``/``scalars`` (projected mesh vertices and their scalars), ``ranges`` and
    ``tables`` (the colour mapping: scalar range and vtkLookupTable), ``extra`` (anything else)."""

    pictures: Dict[str, np.ndarray] = field(default_factory=dict)
    paths: Dict[str, Path] = field(default_factory=dict)
    boxes: Dict[str, np.ndarray] = field(default_factory=dict)
    points: Dict[str, np.ndarray] = field(default_factory=dict)
    visible: Dict[str, np.ndarray] = field(default_factory=dict)
    scalars: Dict[str, np.ndarray] = field(default_factory=dict)
    ranges: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    tables: Dict[str, Any] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)

    def keep(self, name: str, pixels: np.ndarray, out: Optional[Path], prefix: str = "") -> None:
        """Store a picture and, with ``out``, write it as ``<out>/<prefix><name>.png``."""
        self.pictures[name] = pixels
        if out is not None and not name.startswith("_"):
            self.paths[name] = write_png(pixels, out / f"{prefix}{name}.png")


# ------------------------------------------------------------------------------------------ helpers
@contextmanager
def only_shown(scene: Any) -> Iterator[None]:
    """Hide every displayable node of ``scene`` (its display nodes' visibility) while the block runs, so
    that a method's picture shows only the nodes the block makes visible; restore them afterwards."""
    displays = [scene.GetNthNodeByClass(n, "vtkMRMLDisplayNode")
                for n in range(scene.GetNumberOfNodesByClass("vtkMRMLDisplayNode"))]
    saved = [(d, d.GetVisibility(), d.GetVisibility2D(), d.GetVisibility3D()) for d in displays]
    for display in displays:
        display.SetVisibility(False)
    try:
        yield
    finally:
        for display, visible, in_2d, in_3d in saved:
            display.SetVisibility(visible)
            display.SetVisibility2D(in_2d)
            display.SetVisibility3D(in_3d)


@contextmanager
def fresh_views(app: Any, size: Sequence[int]) -> Iterator[OffscreenViews]:
    """:class:`OffscreenViews` of ``app``'s (standalone) scene, closed afterwards (which removes the slice
    nodes the view made, so the next view of the scene draws its slice view fully)."""
    views = OffscreenViews(app.scene, app.application_logic, (int(size[0]), int(size[1])))
    try:
        yield views
    finally:
        views.close()


def bounds_corners(bounds: Sequence[float]) -> np.ndarray:
    """The 8 RAS corners of ``xmin, xmax, ymin, ymax, zmin, zmax``."""
    x, y, z = np.asarray(bounds, float).reshape(3, 2)
    return np.array([[a, b, c] for a in x for b in y for c in z])


def _box(pixels_xy: np.ndarray) -> np.ndarray:
    return np.array([pixels_xy[:, 0].min(), pixels_xy[:, 1].min(), pixels_xy[:, 0].max(), pixels_xy[:, 1].max()])


def label_bounds(array: np.ndarray, ijk_to_ras: np.ndarray, values: Sequence[int] = (1, 2, 3)) -> Tuple[float, ...]:
    """RAS bounds (mm) of the voxels of a ``(z, y, x)`` label array whose label is in ``values``."""
    k, j, i = np.nonzero(np.isin(array, values))
    if not len(k):
        raise ValueError("no heart labels to frame")
    ijk = np.array([[a, b, c] for a in (i.min(), i.max()) for b in (j.min(), j.max()) for c in (k.min(), k.max())])
    ras = (np.asarray(ijk_to_ras, float) @ np.c_[ijk, np.ones(8)].T).T[:, :3]
    return tuple(float(v) for pair in zip(ras.min(0), ras.max(0)) for v in pair)


def volume_array(node: Any) -> Tuple[np.ndarray, np.ndarray]:
    """``(z, y, x)`` voxels and the 4x4 IJK->RAS of a volume node."""
    from .volumes import volume_node_ijk_to_ras, volume_node_to_array

    return volume_node_to_array(node), volume_node_ijk_to_ras(node)


def _polydata_arrays(node: Any, scalars: str) -> Tuple[np.ndarray, np.ndarray]:
    polydata = node.GetPolyData()
    points = vtk_to_numpy(polydata.GetPoints().GetData()).astype(float)
    return points, vtk_to_numpy(polydata.GetPointData().GetArray(scalars)).astype(float)


def scalar_colour_table(scene: Any) -> Any:
    """The colour table node :data:`COLORMAP` of ``scene`` (made once): 256 fully saturated colours whose
    hue runs from blue (lowest value) through cyan, green and yellow to red (highest). Slicer's built-in
    ``Rainbow`` runs from red (low) to violet, ``ReverseRainbow`` only from violet to red through magenta."""
    import colorsys

    node = scene.GetFirstNodeByName(COLORMAP)
    if node is not None and node.IsA("vtkMRMLColorTableNode"):
        return node
    node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", COLORMAP)
    node.SetTypeToUser()
    node.SetNumberOfColors(256)
    for index in range(256):
        node.SetColor(index, *colorsys.hsv_to_rgb(2.0 / 3.0 * (1.0 - index / 255.0), 1.0, 1.0), 1.0)
    node.SetAttribute("Category", "CardiacMotionAtlas")
    return node


def colour_model(node: Any, scalars: str, scalar_range: Tuple[float, float]) -> Any:
    """Colour a model by point array ``scalars`` over ``scalar_range`` with :func:`scalar_colour_table`
    (blue = low, red = high); returns the table's vtkLookupTable."""
    display = node.GetDisplayNode()
    display.SetActiveScalar(scalars, vtk.vtkAssignAttribute.POINT_DATA)
    table = scalar_colour_table(node.GetScene())
    display.SetAndObserveColorNodeID(table.GetID())
    display.SetScalarRangeFlag(display.UseManualScalarRange)
    display.SetScalarRange(*scalar_range)
    display.SetScalarVisibility(True)
    display.SetOpacity(1.0)
    return table.GetLookupTable()


def _render_mesh(views: OffscreenViews, result: MethodPictures, name: str, model: Any, scalars: str,
                 scalar_range: Tuple[float, float], out: Optional[Path], prefix: str) -> None:
    table = colour_model(model, scalars, scalar_range)
    bounds = polydata_bounds([model], margin_mm=10.0)
    result.keep(name, views.render_3d(focus_bounds=bounds, **VIEW_ANGLES), out, prefix)
    vertices, values = _polydata_arrays(model, scalars)
    result.points[name], result.visible[name] = views.project_3d(vertices)
    result.scalars[name], result.ranges[name], result.tables[name] = values, scalar_range, table
    result.boxes[name] = _box(views.project_3d(bounds_corners(polydata_bounds([model], 0.0)))[0])


def _render_glyphs(views: OffscreenViews, result: MethodPictures, name: str, transform: Any, region: Any,
                   out: Optional[Path], prefix: str, spacing_mm: float) -> None:
    """The grid transform as glyphs (coloured by magnitude) inside ``region``'s bounds, the region model
    grey and translucent under them; ``_<name>_region`` keeps the region alone for the checks."""
    display = region.GetDisplayNode()
    display.SetScalarVisibility(False)
    display.SetColor(0.75, 0.75, 0.75)
    display.SetOpacity(0.3)
    bounds = polydata_bounds([region], margin_mm=10.0)
    result.keep(f"_{name}_region", views.render_3d(focus_bounds=bounds, **VIEW_ANGLES), None)
    show_as_glyphs(transform, region, spacing_mm)
    result.keep(name, views.render_3d(focus_bounds=bounds, **VIEW_ANGLES), out, prefix)
    result.boxes[name] = _box(views.project_3d(bounds_corners(bounds))[0])
    set_visibility([transform], in_3d=False)
    display.SetOpacity(1.0)
    display.SetScalarVisibility(True)


def _strongest_displacement_mm(transform: Any, default: float) -> float:
    """The 99.5th percentile of a grid transform's displacement magnitudes (mm): the colour its strongest
    glyphs get (real flows stay below the colour map's top); ``default`` when the grid is not reachable."""
    from vtk.util.numpy_support import vtk_to_numpy

    grid_transform = transform.GetTransformToParent()
    grid = grid_transform.GetDisplacementGrid() if hasattr(grid_transform, "GetDisplacementGrid") else None
    if grid is None or grid.GetPointData().GetScalars() is None:
        return default
    vectors = vtk_to_numpy(grid.GetPointData().GetScalars()).reshape(-1, 3)
    return float(np.percentile(np.linalg.norm(vectors, axis=1), 99.5))


def _slice_through(views: OffscreenViews, background: Any, centre_ras: np.ndarray, extent_mm: float) -> Dict[str, Any]:
    """Put the slice view in ``background``'s own plane (a 2D cine slice: its plane; a 3D volume: its
    IJ plane through ``centre_ras``), centred on ``centre_ras`` projected onto that plane, ``1.6 *
    extent_mm`` across the view's height; returns the arguments of ``render_slice`` that keep it there."""
    array, ijk_to_ras = volume_array(background)
    axes = np.asarray(ijk_to_ras, float)[:3, :3]
    unit = axes / np.linalg.norm(axes, axis=0)
    flat = [axis for axis, count in zip((0, 1, 2), array.shape[::-1]) if count == 1]
    normal_axis = flat[0] if flat else 2
    in_plane = [axis for axis in (0, 1, 2) if axis != normal_axis]
    normal, across = unit[:, normal_axis], unit[:, in_plane[0]]
    if normal_axis == 2 and np.linalg.det(unit) < 0:
        normal = -normal  # keep (across, up, normal) right-handed
    origin = (ijk_to_ras @ np.r_[(np.array(array.shape[::-1]) - 1) / 2.0, 1.0])[:3]
    centre = np.asarray(centre_ras, float)
    if flat:
        centre = centre - normal * float(normal @ (centre - origin))
    views.slice_node.SetSliceToRASByNTP(*normal, *across, *centre, 0)
    views.slice_node.UpdateMatrices()
    aspect = views.size[0] / views.size[1]
    views.slice_node.SetFieldOfView(1.6 * extent_mm * aspect, 1.6 * extent_mm, 1.0)
    return {"fit": False}


def _slice_box(views: OffscreenViews, bounds: Sequence[float]) -> np.ndarray:
    return _box(views.project_slice(bounds_corners(bounds))[:, :2])


# ------------------------------------------------------------------------------------------ atlas
def render_atlas_outputs(app: Any, nodes: Dict[str, Any], out_dir: Optional[PathLike] = None,
                         size: Sequence[int] = (480, 400)) -> MethodPictures:
    """``atlas_ED`` and ``atlas_ES``: the fitted mesh (``nodes`` of ``load_atlas_fit_outputs``) coloured
    by ``displacement_mm`` over [0, the cycle's largest displacement] mm; ES = the frame of least LV
    volume in the volume-curve table."""
    from .tables import volume_curves_from_table_node

    out = Path(out_dir) if out_dir is not None else None
    sequence, browser = nodes["mesh_sequence"], nodes["browser"]
    proxy = browser.GetProxyNode(sequence)
    curve = volume_curves_from_table_node(nodes["volume_curves"].table)[0]
    es_phase = float(curve.phases[int(np.argmin(curve.volumes_ml))])
    highest = max(float(np.max(vtk_to_numpy(sequence.GetNthDataNode(i).GetPolyData().GetPointData()
                                            .GetArray("displacement_mm"))))
                  for i in range(sequence.GetNumberOfDataNodes()))
    result = MethodPictures(extra={"es_phase": es_phase})
    with only_shown(app.scene), fresh_views(app, size) as views:
        set_visibility([proxy], in_3d=True, in_2d=False)
        for frame, phase in (("ED", 0.0), ("ES", es_phase)):
            browser.SetSelectedItemNumber(_frame_index(sequence, phase))
            _render_mesh(views, result, f"atlas_{frame}", proxy, "displacement_mm", (0.0, max(highest, 1e-3)),
                         out, "")
    return result


# ------------------------------------------------------------------------------------------ motion
def render_motion_outputs(app: Any, nodes: Dict[str, Any], cine_frame: Any, out_dir: Optional[PathLike] = None,
                          size: Sequence[int] = (480, 400), glyph_spacing_mm: float = 8.0) -> MethodPictures:
    """CardioMorphNet (``nodes`` of ``load_motion_outputs``): ``motion_dvf_glyphs`` (ED->ES grid transform
    as glyphs around the ED myocardium), ``motion_uncertainty_mesh`` (ED myocardium coloured by the ES
    uncertainty, nats) and ``motion_uncertainty_slice`` (the ES uncertainty volume, nearest voxel, blue
    to red over its range, opacity 0.5, over ``cine_frame``: a cine slice volume node at ES)."""
    out = Path(out_dir) if out_dir is not None else None
    model, transform = nodes["myocardium_model"], nodes["ed_to_es_transform"]
    es_phase = float(transform.GetAttribute("CardiacMotionAtlas.TargetPhase") or 0.35)
    browser, uncertainty_sequence = nodes["browser"], nodes["uncertainty_sequence"]
    browser.SetSelectedItemNumber(_frame_index(uncertainty_sequence, es_phase))
    uncertainty = browser.GetProxyNode(uncertainty_sequence)
    result = MethodPictures(extra={"es_phase": es_phase})
    labels = browser.GetProxyNode(nodes["label_sequence"])
    with only_shown(app.scene), fresh_views(app, size) as views:
        set_visibility([model], in_3d=True, in_2d=False)
        values = _polydata_arrays(model, "uncertainty_es_nats")[1]
        _render_mesh(views, result, "motion_uncertainty_mesh", model, "uncertainty_es_nats",
                     (float(values.min()), float(max(values.max(), values.min() + 1e-6))), out, "")
        _render_glyphs(views, result, "motion_dvf_glyphs", transform, model, out, "", glyph_spacing_mm)

        array, ijk_to_ras = volume_array(uncertainty)
        low, high = float(array.min()), float(max(array.max(), array.min() + 1e-6))
        display = uncertainty.GetDisplayNode()
        display.SetAndObserveColorNodeID(scalar_colour_table(app.scene).GetID())
        display.AutoWindowLevelOff()
        display.SetWindowLevelMinMax(low, high)
        display.SetInterpolate(False)
        set_visibility([model], in_2d=False)
        composite = views.slice_logic.GetSliceCompositeNode()
        heart = label_bounds(*volume_array(labels))
        centre = bounds_corners(heart).mean(axis=0)
        zoom = _slice_through(views, cine_frame, centre, np.ptp(np.reshape(heart, (3, 2)), axis=1).max())
        result.keep("_motion_cine_alone", views.render_slice(cine_frame, **zoom), None)
        composite.SetForegroundVolumeID(uncertainty.GetID())
        composite.SetForegroundOpacity(0.5)
        result.keep("motion_uncertainty_slice", views.render_slice(cine_frame, **zoom), out)
        composite.SetForegroundVolumeID(None)
        name = "motion_uncertainty_slice"
        result.boxes[name] = _slice_box(views, heart)
        result.ranges[name] = (low, high)
        result.tables[name] = scalar_colour_table(app.scene).GetLookupTable()
        result.extra["uncertainty"] = (array, ijk_to_ras)
        result.extra["xy_to_ras"] = _matrix(views.slice_node.GetXYToRAS())
    return result


def _matrix(matrix: Any) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def pixel_ras(result: MethodPictures, shape: Tuple[int, int]) -> np.ndarray:
    """``(rows, columns, 3)`` RAS (mm) of each pixel centre of the last slice picture (its XY->RAS)."""
    rows, columns = np.mgrid[0:shape[0], 0:shape[1]]
    xy = np.stack([columns.ravel(), shape[0] - 1 - rows.ravel(), np.zeros(rows.size), np.ones(rows.size)])
    return (result.extra["xy_to_ras"] @ xy)[:3].T.reshape(shape[0], shape[1], 3)


# ------------------------------------------------------------------------------------------ NISF++
def render_nisf_outputs(app: Any, nodes: Dict[str, Any], out_dir: Optional[PathLike] = None,
                        size: Sequence[int] = (480, 400)) -> MethodPictures:
    """``nisf_segmentation_slice``: the ED segmentation (outline, ``nodes`` of ``load_nisf_outputs``) over
    the reconstructed ED intensities, in the intensity volume's own axes through the LV centre."""
    out = Path(out_dir) if out_dir is not None else None
    browser = nodes["browser"]
    browser.SetSelectedItemNumber(0)
    intensity = browser.GetProxyNode(nodes["intensity_sequence"])
    labels = browser.GetProxyNode(nodes["label_sequence"])
    segmentation = nodes["segmentation"]
    result = MethodPictures()
    label_array, ijk_to_ras = volume_array(labels)
    heart = label_bounds(label_array, ijk_to_ras)
    k, j, i = np.nonzero(label_array == 1)
    lv_centre = (ijk_to_ras @ np.array([i.mean(), j.mean(), k.mean(), 1.0]))[:3] if len(k) else \
        bounds_corners(heart).mean(axis=0)
    with only_shown(app.scene), fresh_views(app, size) as views:
        set_visibility([segmentation], in_2d=False, in_3d=False)
        zoom = _slice_through(views, intensity, lv_centre, np.ptp(np.reshape(heart, (3, 2)), axis=1).max())
        result.keep("_nisf_intensity_alone", views.render_slice(intensity, **zoom), None)
        set_visibility([segmentation], in_2d=True)
        seg_display = segmentation.GetDisplayNode()
        seg_display.SetVisibility2DFill(False)
        seg_display.SetVisibility2DOutline(True)
        seg_display.SetSliceIntersectionThickness(2)
        name = "nisf_segmentation_slice"
        result.keep(name, views.render_slice(intensity, **zoom), out)
        result.boxes[name] = _slice_box(views, heart)
        result.extra["xy_to_ras"] = _matrix(views.slice_node.GetXYToRAS())
        result.extra["labels"] = (label_array, ijk_to_ras)
        segments = segmentation.GetSegmentation()
        listed = [segments.GetNthSegment(n) for n in range(segments.GetNumberOfSegments())]
        result.extra["segments"] = {segment.GetName(): (int(segment.GetLabelValue()),
                                                        tuple(int(round(255 * c)) for c in segment.GetColor()))
                                    for segment in listed}
    return result


# ------------------------------------------------------------------------------------------ synthesis
def render_synth_outputs(app: Any, nodes: Dict[str, Any], ct_frame: Any, out_dir: Optional[PathLike] = None,
                         size: Sequence[int] = (480, 400), sample: Optional[str] = None,
                         glyph_spacing_mm: float = 6.0) -> MethodPictures:
    """``synth_flow_slice``: one sample's flow (``nodes`` of ``load_synth_outputs``; ``sample``: its
    ``pair_<i>`` name, default the first) as glyphs in the slice view over ``ct_frame`` (the
    conditioning CT volume node), through the heart (the generated sample's labels when loaded); glyphs
    coloured by the transform display's map (grey 1 mm, green 2, yellow 5, red >= 10 mm)."""
    out = Path(out_dir) if out_dir is not None else None
    flows = nodes["flows"]
    name_of_sample = sample or sorted(flows)[0]
    transform = flows[name_of_sample]
    result = MethodPictures(extra={"sample": name_of_sample})
    ct_array, ct_matrix = volume_array(ct_frame)
    if "label_sequence" in nodes:
        nodes["browser"].SetSelectedItemNumber(sorted(flows).index(name_of_sample))
        heart = label_bounds(*volume_array(nodes["browser"].GetProxyNode(nodes["label_sequence"])))
    else:
        shape = np.array(ct_array.shape[::-1]) - 1
        heart = tuple(float(v) for pair in zip(*(np.sort(np.stack([
            (ct_matrix @ [0, 0, 0, 1])[:3], (ct_matrix @ [*shape, 1])[:3]]), axis=0))) for v in pair)
    with only_shown(app.scene), fresh_views(app, size) as views:
        centre = bounds_corners(heart).mean(axis=0)
        zoom = _slice_through(views, ct_frame, centre, np.ptp(np.reshape(heart, (3, 2)), axis=1).max())
        result.keep("_synth_ct_alone", views.render_slice(ct_frame, **zoom), None)
        set_visibility([transform], in_2d=True, in_3d=False)
        glyphs = transform.GetDisplayNode()
        glyphs.SetVisualizationMode(glyphs.VIS_MODE_GLYPH)
        glyphs.SetGlyphSpacingMm(glyph_spacing_mm)
        glyphs.SetGlyphScalePercent(100.0)
        result.keep("synth_flow_slice", views.render_slice(ct_frame, **zoom), out)
        colours = glyphs.GetColorMap()
        low, high = colours.GetRange()
        strongest = min(max(_strongest_displacement_mm(transform, default=high), low), high)
        result.extra["glyph_high_rgb"] = np.array(colours.GetColor(strongest)) * 255  # the strongest glyphs' colour
        set_visibility([transform], in_2d=False)
        result.boxes["synth_flow_slice"] = _slice_box(views, heart)
    return result


__all__ = ["COLORMAP", "MethodPictures", "bounds_corners", "colour_model", "fresh_views", "label_bounds",
           "only_shown", "pixel_ras", "render_atlas_outputs", "render_motion_outputs", "render_nisf_outputs",
           "render_synth_outputs", "scalar_colour_table", "volume_array"]
