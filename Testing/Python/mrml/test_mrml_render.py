"""Slicer views rendered offscreen by the MRML displayable managers (slicer-core, EGL, no Qt) and checked:
a tiny phantom subject's myocardium mesh coloured by displacement at ED and ES, the ED->ES grid
transform as glyphs, and the ED segmentation with the mesh intersection over the SAX cine slice."""

from __future__ import annotations

import numpy as np
import pytest

from mrml_helpers import require_slicer_core

require_slicer_core()

from CardiacMotionAtlasLib.mrml.render import offscreen_rendering_problem  # noqa: E402

_PROBLEM = offscreen_rendering_problem()
pytestmark = pytest.mark.skipif(_PROBLEM is not None, reason=str(_PROBLEM))


def test_phantom_subject_views_are_rendered_and_show_the_heart(scene, mrml_app, tmp_path):
    from CardiacMotionAtlasLib.mrml.logic import CardiacMotionAtlasLogic
    from CardiacMotionAtlasLib.mrml.render_phantom import check_subject_pictures, render_phantom_subject

    nodes = CardiacMotionAtlasLogic().load_phantom_subject(scene, seed=0, index=0, tiny=True)
    result = render_phantom_subject(mrml_app, nodes, tmp_path)
    numbers = check_subject_pictures(result)
    assert set(result.paths) == {"mesh_ED", "mesh_ES", "transform_ED_ES", "segmentation_slice", "overview"}
    assert all(path.stat().st_size > 1000 for path in result.paths.values())
    # ED and ES differ where the heart moved; ES shows more than one colour of the displacement map
    difference = np.abs(result.pictures["mesh_ED"].astype(int) - result.pictures["mesh_ES"].astype(int)).max(axis=2)
    assert (difference > 30).mean() > 0.01
    assert numbers["ES_hue_error"] < 0.06 and numbers["glyph_pixels"] > 100


def test_a_wrong_colour_map_fails_the_check(scene, mrml_app):
    """The colour check has teeth: pictures compared with another colour table fail."""
    from CardiacMotionAtlasLib.mrml.logic import CardiacMotionAtlasLogic
    from CardiacMotionAtlasLib.mrml.render_phantom import check_subject_pictures, render_phantom_subject

    nodes = CardiacMotionAtlasLogic().load_phantom_subject(scene, seed=0, index=1, tiny=True)
    result = render_phantom_subject(mrml_app, nodes, None, size=(240, 200))
    result.lookup_table = scene.GetNodeByID("vtkMRMLColorTableNodeGreen").GetLookupTable()
    with pytest.raises(AssertionError, match="colour map"):
        check_subject_pictures(result)


def test_a_second_view_of_the_same_scene_draws_the_same_slice_view(scene, mrml_app):
    """A closed view leaves none of its slice nodes behind, so the next view of the same scene draws the
    same slice picture (segmentation and mesh outline included; with the first view's slice singletons
    left in the scene, more than half of its pixels differed)."""
    from CardiacMotionAtlasLib.mrml.logic import CardiacMotionAtlasLogic
    from CardiacMotionAtlasLib.mrml.render import SLICE_VIEW_NODE_CLASSES
    from CardiacMotionAtlasLib.mrml.render_phantom import render_phantom_subject

    nodes = CardiacMotionAtlasLogic().load_phantom_subject(scene, seed=0, index=2, tiny=True)
    before = {name: scene.GetNumberOfNodesByClass(name) for name in SLICE_VIEW_NODE_CLASSES}
    first = render_phantom_subject(mrml_app, nodes, None).pictures["segmentation_slice"]
    assert {name: scene.GetNumberOfNodesByClass(name) for name in SLICE_VIEW_NODE_CLASSES} == before
    second = render_phantom_subject(mrml_app, nodes, None).pictures["segmentation_slice"]
    assert np.array_equal(first, second)
