"""Checks of the method pictures of :mod:`~CardiacMotionAtlasLib.mrml.render_methods`: not empty, the
heart inside the view (its RAS bounds projected into the picture, where the pixels differ from the
background), and the colours where the scalars are (mesh vertices and volume voxels drawn in the colour
the display's table gives their value). Each check raises ``AssertionError`` naming the picture and what
failed, and returns the measured numbers.
"""

from __future__ import annotations

import colorsys
from typing import Dict, Optional, Tuple

import numpy as np

from .render import BACKGROUND_3D
from .render_methods import MethodPictures, pixel_ras


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def differs(pixels: np.ndarray, reference: Optional[np.ndarray] = None, threshold: float = 12.0) -> np.ndarray:
    """Pixels that differ from ``reference`` (a picture) or, without one, from the 3D view's background."""
    base = np.round(np.array(BACKGROUND_3D) * 255) if reference is None else reference.astype(float)
    return np.abs(pixels.astype(float) - base).max(axis=2) > threshold


def hsv(rgb: np.ndarray) -> np.ndarray:
    """``(N, 3)`` hue, saturation, value (0..1) of ``(N, 3)`` RGB 0..255."""
    return np.array([colorsys.rgb_to_hsv(*(c / 255.0)) for c in np.asarray(rgb, float).reshape(-1, 3)])


def table_colours(table, scalar_range: Tuple[float, float], values: np.ndarray) -> np.ndarray:
    """RGB (0..255) that a vtkLookupTable spread over ``scalar_range`` gives ``values``."""
    count = table.GetNumberOfTableValues()
    low, high = scalar_range
    index = np.clip(np.floor((np.asarray(values, float) - low) / max(high - low, 1e-12) * count), 0, count - 1)
    return np.array([table.GetTableValue(int(i))[:3] for i in index]).reshape(-1, 3) * 255


def _hue_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    distance = np.abs(a - b)
    return np.minimum(distance, 1.0 - distance)


def _inside(box: np.ndarray, shape: Tuple[int, int], margin: float = 2.0) -> bool:
    return bool(box[0] >= -margin and box[1] >= -margin and box[2] <= shape[1] - 1 + margin
                and box[3] <= shape[0] - 1 + margin)


def _fraction_in_box(mask: np.ndarray, box: np.ndarray, margin: float) -> float:
    rows, columns = np.nonzero(mask)
    if not len(rows):
        return 0.0
    within = ((columns >= box[0] - margin) & (columns <= box[2] + margin) & (rows >= box[1] - margin)
              & (rows <= box[3] + margin))
    return float(within.mean())


def check_mesh_picture(result: MethodPictures, name: str, hue_tolerance: float = 0.06) -> Dict[str, float]:
    """A mesh coloured by point scalars in the 3D view: 2-80 % of the view drawn, the mesh's projected
    RAS bounds inside the view and holding the drawn pixels, its visible vertices on drawn pixels in the
    colour the table gives their scalar (median hue error < ``hue_tolerance``)."""
    pixels, box = result.pictures[name], result.boxes[name]
    drawn = differs(pixels)
    numbers = {"fraction": float(drawn.mean())}
    _check(0.02 < numbers["fraction"] < 0.8,
           f"{name}: {numbers['fraction']:.1%} of the view is drawn (expected 2-80 %)")
    _check(_inside(box, pixels.shape[:2]), f"{name}: the heart's projected bounds {np.round(box)} leave the view")
    numbers["in_box"] = _fraction_in_box(drawn, box, 3.0)
    _check(numbers["in_box"] > 0.97, f"{name}: {1 - numbers['in_box']:.0%} of the drawn pixels lie outside the heart's "
                                     f"projected bounds")
    visible = result.visible[name]
    _check(visible.sum() >= 30, f"{name}: only {visible.sum()} mesh vertices are visible")
    at = np.round(result.points[name][visible]).astype(int)
    colours = pixels[at[:, 1], at[:, 0]]
    on_mesh = drawn[at[:, 1], at[:, 0]]
    _check(on_mesh.mean() > 0.75, f"{name}: {1 - on_mesh.mean():.0%} of the visible vertices fall on the background")
    expected = table_colours(result.tables[name], result.ranges[name], result.scalars[name][visible])
    seen, wanted = hsv(colours), hsv(expected)
    saturated = (seen[:, 1] > 0.25) & (wanted[:, 1] > 0.25)
    numbers["saturated"] = float(saturated.mean())
    numbers["hue_error"] = float(np.median(_hue_distance(seen[saturated, 0], wanted[saturated, 0]))) \
        if saturated.any() else 1.0
    _check(numbers["saturated"] > 0.5 and numbers["hue_error"] < hue_tolerance,
           f"{name}: drawn colours do not follow the colour map of its scalars (median hue error "
           f"{numbers['hue_error']:.3f}, {numbers['saturated']:.0%} of the vertices coloured)")
    return numbers


def check_glyph_picture(result: MethodPictures, name: str, alone: str) -> Dict[str, float]:
    """Glyphs of a transform: pixels drawn beyond picture ``alone`` (the same view without glyphs), inside
    the heart's projected bounds (all of them, or with ``extra["glyph_high_rgb"]`` those drawn in that
    colour: the colour map's high end, for a field covering the whole view)."""
    pixels = result.pictures[name]
    glyphs = differs(pixels, result.pictures[alone], 30.0)
    numbers = {"glyph_pixels": float(glyphs.sum())}
    _check(glyphs.sum() > 100, f"{name}: no glyphs drawn ({glyphs.sum()} pixels differ from the view without them)")
    _check(_inside(result.boxes[name], pixels.shape[:2], 20.0), f"{name}: the heart's projected bounds leave the view")
    high = result.extra.get("glyph_high_rgb")
    if high is not None:  # a field over the whole image: its strongest glyphs (the map's high end) on the heart
        seen, wanted = hsv(pixels[glyphs]), hsv(high)[0]
        glyphs = glyphs.copy()
        glyphs[glyphs] = (seen[:, 1] > 0.5) & (_hue_distance(seen[:, 0], wanted[0]) < 0.05)
        numbers["strong_glyph_pixels"] = float(glyphs.sum())
        _check(glyphs.sum() > 20, f"{name}: no glyph in the colour map's high end ({np.round(high)})")
    numbers["in_box"] = _fraction_in_box(glyphs, result.boxes[name], 10.0)
    _check(numbers["in_box"] > 0.9, f"{name}: {1 - numbers['in_box']:.0%} of the "
                                    f"{'strongest ' if high is not None else ''}glyph pixels lie away from the heart")
    return numbers


def check_overlay_picture(result: MethodPictures, name: str, alone: str, hue_tolerance: float = 0.06
                          ) -> Dict[str, float]:
    """A scalar volume drawn as a coloured foreground in the slice view: where a pixel's RAS falls inside
    the volume it is drawn in the hue the table gives the voxel's value (nearest voxel), the overlay
    changes the picture, and the heart's projected bounds are centred in the view."""
    pixels = result.pictures[name]
    array, ijk_to_ras = result.extra["uncertainty"]
    shape = pixels.shape[:2]
    ras = pixel_ras(result, shape).reshape(-1, 3)
    ijk = (np.linalg.inv(ijk_to_ras) @ np.c_[ras, np.ones(len(ras))].T)[:3].T
    index = np.round(ijk).astype(int)
    inside = np.all((index >= 0) & (index < np.array(array.shape[::-1])), axis=1)
    numbers = {"overlay_pixels": float(inside.sum())}
    _check(inside.sum() > 500, f"{name}: the volume covers {inside.sum()} pixels of the view")
    changed = differs(pixels, result.pictures[alone], 8.0).reshape(-1)
    numbers["changed"] = float(changed[inside].mean())
    _check(numbers["changed"] > 0.5,
           f"{name}: the overlay changes only {numbers['changed']:.0%} of the pixels it covers")
    values = array[index[inside, 2], index[inside, 1], index[inside, 0]]
    wanted = hsv(table_colours(result.tables[name], result.ranges[name], values))
    seen = hsv(pixels.reshape(-1, 3)[inside])
    usable = (seen[:, 1] > 0.15) & (wanted[:, 1] > 0.25)
    numbers["hue_error"] = float(np.median(_hue_distance(seen[usable, 0], wanted[usable, 0]))) if usable.any() else 1.0
    _check(usable.mean() > 0.5 and numbers["hue_error"] < hue_tolerance,
           f"{name}: the overlay's colours do not follow the colour map of its voxels (median hue error "
           f"{numbers['hue_error']:.3f} on {usable.mean():.0%} of its pixels)")
    box = result.boxes[name]
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    _check(0.2 * shape[1] < centre[0] < 0.8 * shape[1] and 0.2 * shape[0] < centre[1] < 0.8 * shape[0],
           f"{name}: the heart's centre projects to {np.round(centre)}, not inside the view's middle")
    return numbers


def check_outline_picture(result: MethodPictures, name: str, alone: str, min_pixels: int = 30) -> Dict[str, float]:
    """A segmentation's outline over an intensity volume in the slice view: the intensities are drawn;
    every segment whose label occurs in the plane (>= ``min_pixels`` pixels) has outline pixels in its
    colour, lying on its label (within one voxel) and inside the heart's projected bounds."""
    pixels = result.pictures[name].astype(float)
    shape = pixels.shape[:2]
    _check(result.pictures[alone].astype(float).std() > 5, f"{name}: the intensity volume is not drawn")
    labels, ijk_to_ras = result.extra["labels"]
    ras = pixel_ras(result, shape).reshape(-1, 3)
    index = np.round((np.linalg.inv(ijk_to_ras) @ np.c_[ras, np.ones(len(ras))].T)[:3].T).astype(int)
    limit = np.array(labels.shape[::-1]) - 1
    clipped = np.clip(index, 0, limit)
    in_plane = labels[clipped[:, 2], clipped[:, 1], clipped[:, 0]].reshape(shape)
    changed = differs(result.pictures[name], result.pictures[alone], 30.0)
    numbers: Dict[str, float] = {"outline_pixels": float(changed.sum())}
    _check(changed.sum() > 20, f"{name}: no segmentation drawn over the intensities")
    _check(_fraction_in_box(changed, result.boxes[name], 4.0) > 0.95,
           f"{name}: the outline is drawn away from the heart's projected bounds")
    checked = 0
    for segment, (value, rgb) in result.extra["segments"].items():
        if (in_plane == value).sum() < min_pixels:
            continue
        checked += 1
        outline = changed & (np.abs(pixels - np.array(rgb, float)).max(axis=2) < 40)
        numbers[f"{segment}_pixels"] = float(outline.sum())
        _check(outline.sum() > 10, f"{name}: no outline of segment {segment!r} (colour {rgb}) although its label "
                                   f"covers {(in_plane == value).sum()} pixels of the plane")
        rows, columns = np.nonzero(outline)
        near = np.zeros(len(rows), bool)
        at = index.reshape(shape[0], shape[1], 3)[rows, columns]
        for offset in np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3):
            voxel = np.clip(at + offset, 0, limit)
            near |= labels[voxel[:, 2], voxel[:, 1], voxel[:, 0]] == value
        numbers[f"{segment}_on_label"] = float(near.mean())
        _check(near.mean() > 0.8, f"{name}: {1 - near.mean():.0%} of segment {segment!r}'s outline is not on its "
                                  f"label (within one voxel)")
    _check(checked > 0, f"{name}: no segment's label lies in the slice plane")
    numbers["segments_checked"] = float(checked)
    return numbers


def check_method_pictures(result: MethodPictures) -> Dict[str, float]:
    """Every check that applies to the pictures in ``result`` (by name); returns ``picture.number``."""
    checks = {"atlas_ED": lambda: check_mesh_picture(result, "atlas_ED"),
              "atlas_ES": lambda: check_mesh_picture(result, "atlas_ES"),
              "motion_uncertainty_mesh": lambda: check_mesh_picture(result, "motion_uncertainty_mesh"),
              "motion_dvf_glyphs": lambda: check_glyph_picture(result, "motion_dvf_glyphs",
                                                               "_motion_dvf_glyphs_region"),
              "motion_uncertainty_slice": lambda: check_overlay_picture(result, "motion_uncertainty_slice",
                                                                        "_motion_cine_alone"),
              "nisf_segmentation_slice": lambda: check_outline_picture(result, "nisf_segmentation_slice",
                                                                       "_nisf_intensity_alone"),
              "synth_flow_slice": lambda: check_glyph_picture(result, "synth_flow_slice", "_synth_ct_alone")}
    numbers: Dict[str, float] = {}
    for name, check in checks.items():
        if name in result.pictures:
            numbers.update({f"{name}.{key}": value for key, value in check().items()})
    return numbers


__all__ = ["check_glyph_picture", "check_mesh_picture", "check_method_pictures", "check_outline_picture",
           "check_overlay_picture", "differs", "hsv", "table_colours"]
