"""What the module shows for a phantom subject, rendered offscreen and checked.

:func:`render_phantom_subject` renders the nodes that
:meth:`~CardiacMotionAtlasLib.mrml.logic.CardiacMotionAtlasLogic.load_phantom_subject` put in a standalone
scene: the myocardium mesh sequence coloured by its displacement from ED (one colour range for the whole
cycle) at ED and at ES, the exact ED->ES grid transform as glyphs, and the ED segmentation (fill and
outline) with the mesh intersection over the SAX cine slice through the LV centre.
:func:`check_subject_pictures` checks the pictures: not empty, the heart inside the view, the colours of
the displacement scalars where the mesh is, the segmentation where the heart is.

Run as ``python -m CardiacMotionAtlasLib.mrml.render_phantom OUT_DIR`` to write the PNG files (the
extension's screenshots in ``Resources/Screenshots/`` come from this).
"""

from __future__ import annotations

import argparse
import colorsys
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np
from vtk.util.numpy_support import vtk_to_numpy

from .render import BACKGROUND_3D, OffscreenViews, polydata_bounds, set_visibility, show_as_glyphs, write_png

PathLike = Union[str, os.PathLike]
SCALARS = "displacement_mm"
COLORMAP = "vtkMRMLColorTableNodeRainbow"


@dataclass
class SubjectPictures:
    """The rendered pictures (``name -> (rows, columns, 3) uint8``) and what the checks compare them with."""

    pictures: Dict[str, np.ndarray]
    paths: Dict[str, Path] = field(default_factory=dict)
    vertices: Dict[str, np.ndarray] = field(default_factory=dict)  # mesh frame -> RAS vertices
    scalars: Dict[str, np.ndarray] = field(default_factory=dict)  # mesh frame -> displacement (mm)
    projected: Dict[str, np.ndarray] = field(default_factory=dict)  # mesh frame -> pixels (column, row)
    visible: Dict[str, np.ndarray] = field(default_factory=dict)  # mesh frame -> vertex visible
    scalar_range: tuple = (0.0, 1.0)
    lookup_table: Any = None
    segment_colors: Dict[str, tuple] = field(default_factory=dict)  # segment name -> RGB 0..255
    slice_centre: Optional[np.ndarray] = None  # the LV centre in the slice view (column, row)
    heart_radius_px: float = 0.0


def _frame_index(sequence: Any, phase: float) -> int:
    phases = [float(sequence.GetNthIndexValue(i)) for i in range(sequence.GetNumberOfDataNodes())]
    return int(np.argmin([min(abs(p - phase), 1.0 - abs(p - phase)) for p in phases]))


def _polydata_arrays(node: Any) -> tuple:
    polydata = node.GetPolyData()
    points = vtk_to_numpy(polydata.GetPoints().GetData()).astype(float)
    return points, vtk_to_numpy(polydata.GetPointData().GetArray(SCALARS)).astype(float)


def _cine_slice_through(cine: Any, centre: np.ndarray) -> str:
    """The SAX slice whose plane passes closest to ``centre`` (RAS)."""
    import vtk

    best, best_distance = None, np.inf
    for name in cine.image_sequences:
        if not name.startswith("sax"):
            continue
        volume = cine.proxy(name)
        matrix = vtk.vtkMatrix4x4()
        volume.GetRASToIJKMatrix(matrix)
        k = matrix.MultiplyPoint((*centre, 1.0))[2]
        if abs(k) < best_distance:
            best, best_distance = name, abs(k)
    return best if best is not None else next(iter(cine.image_sequences))


def render_phantom_subject(app: Any, nodes: Any, out_dir: Optional[PathLike] = None,
                           size: Sequence[int] = (480, 400), glyph_spacing_mm: float = 10.0) -> SubjectPictures:
    """Render ``mesh_ED``, ``mesh_ES``, ``transform_ED_ES`` (3D, glyphs every ``glyph_spacing_mm``) and
    ``segmentation_slice`` (slice view around the heart) of a phantom subject loaded into the standalone
    scene ``app`` (``nodes``: its ``PhantomSubjectNodes``); PNG files in ``out_dir`` when given."""
    scene, browser, mesh = app.scene, nodes.browser, nodes.mesh_sequence
    proxy = nodes.mesh_proxy
    es_phase = float(nodes.displacement_transform.GetAttribute("CardiacMotionAtlas.TargetPhase") or 0.35)
    frames = {"ED": _frame_index(mesh, 0.0), "ES": _frame_index(mesh, es_phase)}
    highest = max(float(np.max(vtk_to_numpy(mesh.GetNthDataNode(i).GetPolyData().GetPointData().GetArray(SCALARS))))
                  for i in range(mesh.GetNumberOfDataNodes()))
    display = proxy.GetDisplayNode()
    display.SetAndObserveColorNodeID(COLORMAP)
    display.SetScalarRangeFlag(display.UseManualScalarRange)
    display.SetScalarRange(0.0, highest)
    display.SetScalarVisibility(True)
    lookup = scene.GetNodeByID(COLORMAP).GetLookupTable()
    result = SubjectPictures({}, scalar_range=(0.0, highest), lookup_table=lookup)
    hidden = [nodes.segmentation, nodes.displacement_transform]
    set_visibility([nodes.segmentation], in_3d=False)
    out = Path(out_dir) if out_dir is not None else None
    with OffscreenViews(scene, app.application_logic, (int(size[0]), int(size[1]))) as views:
        set_visibility([proxy], in_3d=True, in_2d=True)
        for frame, index in frames.items():
            browser.SetSelectedItemNumber(index)
            bounds = polydata_bounds([proxy], margin_mm=10.0)
            name = f"mesh_{frame}"
            result.pictures[name] = views.render_3d(out / f"{name}.png" if out else None, focus_bounds=bounds,
                                                    azimuth=-30.0, elevation=15.0)
            result.vertices[frame], result.scalars[frame] = _polydata_arrays(proxy)
            result.projected[frame], result.visible[frame] = views.project_3d(result.vertices[frame])

        browser.SetSelectedItemNumber(frames["ED"])
        transform = nodes.displacement_transform
        show_as_glyphs(transform, proxy, glyph_spacing_mm)
        colour = display.GetColor()
        display.SetScalarVisibility(False)  # the ED mesh in grey under the glyphs
        display.SetColor(0.75, 0.75, 0.75)
        display.SetOpacity(0.3)
        result.pictures["transform_ED_ES"] = views.render_3d(out / "transform_ED_ES.png" if out else None,
                                                             focus_bounds=polydata_bounds([proxy], 10.0),
                                                             azimuth=-30.0, elevation=15.0)
        display.SetOpacity(1.0)
        display.SetColor(*colour)
        display.SetScalarVisibility(True)
        set_visibility([transform], in_3d=False)

        centre = result.vertices["ED"].mean(axis=0)
        cine_name = _cine_slice_through(nodes.cine, centre)
        segmentation_display = nodes.segmentation.GetDisplayNode()
        segmentation_display.SetVisibility2DFill(True)
        segmentation_display.SetOpacity2DFill(0.3)
        segmentation_display.SetVisibility2DOutline(True)
        display.SetSliceIntersectionThickness(2)
        set_visibility([nodes.segmentation], in_2d=True)
        set_visibility([proxy], in_2d=False)
        background = nodes.cine.proxy(cine_name)
        extent = np.ptp(result.vertices["ED"], axis=0).max()
        zoom = {"focus_ras": centre, "field_of_view_mm": 1.8 * extent}
        result.pictures["_slice_without_mesh"] = views.render_slice(background, **zoom)
        set_visibility([proxy], in_2d=True)
        result.pictures["segmentation_slice"] = views.render_slice(
            background, out / "segmentation_slice.png" if out else None, **zoom)
        projected = views.project_slice(np.vstack([centre, result.vertices["ED"]]))
        result.slice_centre = projected[0, :2]
        result.heart_radius_px = float(np.max(np.linalg.norm(projected[1:, :2] - projected[0, :2], axis=1)))
        segmentation = nodes.segmentation.GetSegmentation()
        for i in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(i)
            result.segment_colors[segment.GetName()] = tuple(int(round(255 * c)) for c in segment.GetColor())
    set_visibility(hidden, in_3d=True)
    if out is not None:
        result.paths = {name: out / f"{name}.png" for name in result.pictures if not name.startswith("_")}
        overview = np.hstack([result.pictures["mesh_ES"], result.pictures["segmentation_slice"]])
        result.paths["overview"] = write_png(overview, out / "overview.png")
    return result


# ------------------------------------------------------------------------------------------ checks
def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _foreground(pixels: np.ndarray) -> np.ndarray:
    background = np.round(np.array(BACKGROUND_3D) * 255)
    return np.abs(pixels.astype(float) - background).max(axis=2) > 12


def _hue(rgb: np.ndarray) -> np.ndarray:
    return np.array([colorsys.rgb_to_hsv(*(c / 255.0))[0] for c in np.asarray(rgb, float).reshape(-1, 3)])


def expected_colours(result: SubjectPictures, values: np.ndarray) -> np.ndarray:
    """RGB (0..255) that the colour table gives ``values`` over the display's scalar range."""
    table = result.lookup_table
    count = table.GetNumberOfTableValues()
    low, high = result.scalar_range
    index = np.clip(np.round((np.asarray(values, float) - low) / max(high - low, 1e-12) * (count - 1)), 0, count - 1)
    return np.array([table.GetTableValue(int(i))[:3] for i in index]) * 255


def check_subject_pictures(result: SubjectPictures) -> Dict[str, float]:
    """Check the pictures of :func:`render_phantom_subject` (``AssertionError`` naming the failed check);
    returns the measured numbers."""
    numbers: Dict[str, float] = {}
    for frame in ("ED", "ES"):
        pixels = result.pictures[f"mesh_{frame}"]
        mask = _foreground(pixels)
        fraction = float(mask.mean())
        _check(0.02 < fraction < 0.8, f"mesh_{frame}: {fraction:.1%} of the view is drawn (expected 2-80 %)")
        rows, columns = np.nonzero(mask)
        _check(rows.min() > 1 and columns.min() > 1 and rows.max() < mask.shape[0] - 2
               and columns.max() < mask.shape[1] - 2, f"mesh_{frame}: the heart touches the border of the view")
        visible = result.visible[frame]
        _check(visible.sum() >= 50, f"mesh_{frame}: only {visible.sum()} mesh vertices are visible")
        at = np.round(result.projected[frame][visible]).astype(int)
        drawn = pixels[at[:, 1], at[:, 0]]
        on_mesh = _foreground(drawn[None])[0]
        _check(on_mesh.mean() > 0.75, f"mesh_{frame}: {1 - on_mesh.mean():.0%} of the visible vertices fall on "
                                      f"the background")
        colour = expected_colours(result, result.scalars[frame][visible])
        saturated = np.array([colorsys.rgb_to_hsv(*(c / 255.0))[1] for c in drawn]) > 0.25
        hue_error = np.abs(_hue(drawn) - _hue(colour))
        hue_error = np.minimum(hue_error, 1.0 - hue_error)[saturated]
        numbers[f"{frame}_hue_error"] = float(np.median(hue_error))
        _check(saturated.mean() > 0.5 and numbers[f"{frame}_hue_error"] < 0.06,
               f"mesh_{frame}: drawn colours do not follow the displacement colour map "
               f"(median hue error {numbers[f'{frame}_hue_error']:.3f})")
        numbers[f"{frame}_fraction"] = fraction
    es_visible = result.scalars["ES"][result.visible["ES"]]
    _check(np.ptp(es_visible) > 0.3 * result.scalar_range[1], "mesh_ES: the visible displacement hardly varies")
    _check(np.max(result.scalars["ED"]) < 1e-6, "mesh_ED: displacement from ED is not zero at ED")

    glyphs = _foreground(result.pictures["transform_ED_ES"]) & ~_foreground(result.pictures["mesh_ED"])
    hue = _hue(result.pictures["transform_ED_ES"][glyphs]) if glyphs.any() else np.zeros(0)
    numbers["glyph_pixels"] = float(glyphs.sum())
    _check(glyphs.sum() > 100, "transform_ED_ES: no glyphs of the ED->ES displacement around the heart")
    _check(hue.size and np.ptp(hue) > 0.1, "transform_ED_ES: glyphs are not coloured by displacement magnitude")

    picture = result.pictures["segmentation_slice"].astype(float)
    _check(picture.std() > 10, "segmentation_slice: the cine slice is not drawn")
    centre, radius = result.slice_centre, max(result.heart_radius_px, 10.0)
    height, width = picture.shape[:2]
    _check(0 <= centre[0] < width and 0 <= centre[1] < height, "segmentation_slice: the LV centre is outside the view")
    rows, columns = np.mgrid[0:height, 0:width]
    intersection = np.abs(picture - result.pictures["_slice_without_mesh"].astype(float)).max(axis=2) > 30
    numbers["mesh_intersection_pixels"] = float(intersection.sum())
    _check(intersection.sum() > 20, "segmentation_slice: the mesh does not intersect the slice view")
    distance = np.hypot(columns[intersection] - centre[0], rows[intersection] - centre[1])
    _check(np.median(distance) < 1.2 * radius, "segmentation_slice: the mesh intersection is away from the heart")
    for name, rgb in result.segment_colors.items():
        close = np.abs(picture - np.array(rgb, float)).max(axis=2) < 30
        numbers[f"segment_{name}_pixels"] = float(close.sum())
        _check(close.sum() > 20, f"segmentation_slice: no outline of segment {name!r} (colour {rgb})")
        distance = np.hypot(columns[close] - centre[0], rows[close] - centre[1])
        _check(np.median(distance) < 1.5 * radius,
               f"segmentation_slice: segment {name!r} is drawn away from the heart ({np.median(distance):.0f} px "
               f"from the LV centre, heart radius {radius:.0f} px)")
    return numbers


def main(argv: Optional[List[str]] = None) -> int:
    """Write the pictures of phantom subject (seed, index) into a folder (the extension's screenshots)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--realistic", action="store_true", help="the realistic protocol instead of tiny images")
    parser.add_argument("--size", type=int, nargs=2, default=(480, 400), metavar=("WIDTH", "HEIGHT"))
    args = parser.parse_args(argv)
    from .logic import CardiacMotionAtlasLogic
    from .scene import create_standalone_scene

    app = create_standalone_scene()
    try:
        nodes = CardiacMotionAtlasLogic().load_phantom_subject(app.scene, seed=args.seed, index=args.index,
                                                               tiny=not args.realistic)
        result = render_phantom_subject(app, nodes, args.out, args.size)
        numbers = check_subject_pictures(result)
    finally:
        app.close()
    for name, path in result.paths.items():
        print(f"{name}: {path}")
    print(", ".join(f"{k} {v:.3g}" for k, v in numbers.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["SubjectPictures", "check_subject_pictures", "expected_colours", "render_phantom_subject"]
