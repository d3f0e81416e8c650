"""What each method shows a user, rendered offscreen (slicer-core displayable managers, EGL, no Qt) from
its real outputs: tiny models run through the Logic, the output folders loaded by ``load_*_outputs``,
then the pictures checked (not empty, the heart inside the view, the colours where the scalars are) and
each check shown to fail on a wrong picture."""

from __future__ import annotations

import numpy as np
import pytest

from mrml_helpers import require_slicer_core

require_slicer_core()

from CardiacMotionAtlasLib.mrml.render import offscreen_rendering_problem  # noqa: E402

_PROBLEM = offscreen_rendering_problem()
pytestmark = pytest.mark.skipif(_PROBLEM is not None, reason=str(_PROBLEM))


@pytest.fixture(scope="module")
def atlas_nisf_models(tmp_path_factory):
    from CardiacMotionAtlasLib.mrml.selftest import train_tiny_models

    return train_tiny_models(tmp_path_factory.mktemp("render_models"))


@pytest.fixture(scope="module")
def atlas_output(mrml_app, atlas_nisf_models, tmp_path_factory):
    from CardiacMotionAtlasLib.mrml.render_method_scenes import run_tiny_atlas

    mrml_app.scene.Clear(False)
    return run_tiny_atlas(mrml_app.scene, atlas_nisf_models["atlas"], tmp_path_factory.mktemp("atlas") / "run")


@pytest.fixture(scope="module")
def nisf_output(mrml_app, atlas_nisf_models, tmp_path_factory):
    from CardiacMotionAtlasLib.mrml.render_method_scenes import run_tiny_nisf

    mrml_app.scene.Clear(False)
    return run_tiny_nisf(mrml_app.scene, atlas_nisf_models["nisf"], tmp_path_factory.mktemp("nisf") / "run")


@pytest.fixture(scope="module")
def motion_output(mrml_app, tiny_motion_model, tmp_path_factory):
    from CardiacMotionAtlasLib.mrml.render_method_scenes import run_tiny_motion

    mrml_app.scene.Clear(False)
    return run_tiny_motion(mrml_app.scene, tiny_motion_model, tmp_path_factory.mktemp("motion") / "run")


@pytest.fixture(scope="module")
def synth_output(mrml_app, tmp_path_factory):
    from CardiacMotionAtlasLib.mrml.render_method_scenes import run_tiny_synth, train_tiny_synth_model

    mrml_app.scene.Clear(False)
    model = train_tiny_synth_model(tmp_path_factory.mktemp("synth_model"))
    return run_tiny_synth(mrml_app.scene, model, tmp_path_factory.mktemp("synth") / "run")


def _hue(rgb) -> np.ndarray:
    from CardiacMotionAtlasLib.mrml.render_method_checks import hsv

    return hsv(np.asarray(rgb, float))[:, 0]


def _hue_gap(rgb, hue: float) -> float:
    """Median hue distance (0..0.5, the hue circle) of pixels ``rgb`` from ``hue``."""
    distance = np.abs(_hue(rgb) - hue)
    return float(np.median(np.minimum(distance, 1.0 - distance)))


def test_atlas_mesh_is_coloured_by_displacement_at_ed_and_es(scene, mrml_app, atlas_output, tmp_path):
    from CardiacMotionAtlasLib.mrml.method_outputs import load_atlas_fit_outputs
    from CardiacMotionAtlasLib.mrml.render_method_checks import check_mesh_picture, check_method_pictures
    from CardiacMotionAtlasLib.mrml.render_methods import render_atlas_outputs

    nodes = load_atlas_fit_outputs(scene, atlas_output)
    result = render_atlas_outputs(mrml_app, nodes, tmp_path, size=(320, 280))
    numbers = check_method_pictures(result)
    assert set(result.paths) == {"atlas_ED", "atlas_ES"}
    assert all(path.stat().st_size > 1000 for path in result.paths.values())
    assert numbers["atlas_ED.hue_error"] < 0.06 and numbers["atlas_ES.hue_error"] < 0.06
    # ED: zero displacement everywhere, drawn in the table's low end; ES: its most displaced visible
    # vertices in the high end (red), its least displaced ones far from it
    table, (low, high) = result.tables["atlas_ES"], result.ranges["atlas_ES"]
    assert np.max(result.scalars["atlas_ED"]) < 1e-6 and high > 1.0
    for frame in ("ED", "ES"):
        visible = result.visible[f"atlas_{frame}"]
        at = np.round(result.points[f"atlas_{frame}"][visible]).astype(int)
        drawn = result.pictures[f"atlas_{frame}"][at[:, 1], at[:, 0]]
        values = result.scalars[f"atlas_{frame}"][visible]
        low_hue, high_hue = _hue([np.array(table.GetTableValue(i)[:3]) * 255 for i in (0, 255)])
        if frame == "ED":
            assert _hue_gap(drawn, low_hue) < 0.06
        else:
            top = values >= np.quantile(values, 0.9)
            bottom = values <= np.quantile(values, 0.1)
            assert np.quantile(values, 0.9) > low + 0.5 * (high - low)
            assert _hue_gap(drawn[top], high_hue) < _hue_gap(drawn[bottom], high_hue) - 0.05
    # the colour check has teeth: the same pictures compared with another colour table fail
    result.tables["atlas_ES"] = scene.GetNodeByID("vtkMRMLColorTableNodeRainbow").GetLookupTable()
    with pytest.raises(AssertionError, match="colour map"):
        check_mesh_picture(result, "atlas_ES")
    # ... and so does a heart said to be elsewhere than it is drawn
    result.boxes["atlas_ED"] = result.boxes["atlas_ED"] + np.array([150, 0, 150, 0])
    with pytest.raises(AssertionError, match="atlas_ED"):
        check_mesh_picture(result, "atlas_ED")


def test_volume_curve_plot_is_drawn_along_the_table(scene, atlas_output, tmp_path):
    """slicer-core has no plot view: the Logic's chart node is drawn with VTK's charts, offscreen."""
    from CardiacMotionAtlasLib.mrml.method_outputs import load_atlas_fit_outputs
    from CardiacMotionAtlasLib.mrml.render_chart import check_chart_picture, data_to_pixels, render_plot_chart
    from CardiacMotionAtlasLib.mrml.tables import volume_curves_from_table_node

    plot = load_atlas_fit_outputs(scene, atlas_output)["volume_curves"]
    picture = render_plot_chart(plot.chart, tmp_path / "curve.png", size=(400, 300))
    numbers = check_chart_picture(picture)
    assert picture.path.stat().st_size > 1000
    curve = volume_curves_from_table_node(plot.table)[0]
    (name, (rgb, x, y)), = picture.series.items()
    np.testing.assert_allclose(y, curve.volumes_ml[np.argsort(curve.phases)])
    assert numbers[f"{name}_median_error_px"] < 3.0
    # the lowest drawn point of the curve (largest row) is at ES, the phase of least volume
    drawn = np.abs(picture.pixels.astype(float) - np.array(rgb, float)).max(axis=2) < 40
    c0, r0, c1, r1 = picture.plot_area
    drawn[:, :int(c0) + 1] = False
    rows, columns = np.nonzero(drawn[:int(r1) + 1])
    es_column = data_to_pixels(picture, [curve.phases[np.argmin(curve.volumes_ml)]], [curve.volumes_ml.min()])[0, 0]
    assert abs(columns[np.argmax(rows)] - es_column) < 8
    # teeth: the curve upside down is not what is drawn
    picture.series[name] = (rgb, x, y.max() + y.min() - y)
    with pytest.raises(AssertionError, match="not drawn along its data"):
        check_chart_picture(picture)


def test_motion_glyphs_uncertainty_mesh_and_overlay(scene, mrml_app, motion_output, tmp_path):
    from CardiacMotionAtlasLib.mrml.method_outputs import load_motion_outputs
    from CardiacMotionAtlasLib.mrml.render_chart import check_chart_picture, render_plot_chart
    from CardiacMotionAtlasLib.mrml.render_method_checks import check_method_pictures, check_overlay_picture
    from CardiacMotionAtlasLib.mrml.render_method_scenes import motion_cine_frame
    from CardiacMotionAtlasLib.mrml.render_methods import render_motion_outputs

    nodes = load_motion_outputs(scene, motion_output)
    cine = motion_cine_frame(scene, nodes, motion_output, None)
    result = render_motion_outputs(mrml_app, nodes, cine, tmp_path, size=(320, 280))
    numbers = check_method_pictures(result)
    assert set(result.paths) == {"motion_dvf_glyphs", "motion_uncertainty_mesh", "motion_uncertainty_slice"}
    assert numbers["motion_dvf_glyphs.glyph_pixels"] > 100
    assert numbers["motion_uncertainty_slice.hue_error"] < 0.06
    assert numbers["motion_uncertainty_mesh.hue_error"] < 0.06
    # the overlay sits on the cine: the cine alone is drawn where the overlay is
    assert result.pictures["_motion_cine_alone"].astype(float).std() > 5
    chart = render_plot_chart(nodes["volume_curves"].chart, None, size=(400, 300))
    assert set(chart.series) == {"LV", "RV"} and check_chart_picture(chart)["LV_median_error_px"] < 3.0
    # teeth: the overlay compared with a volume of one value (the range's top: red everywhere) fails
    array, matrix = result.extra["uncertainty"]
    result.extra["uncertainty"] = (np.full_like(array, array.max()), matrix)
    with pytest.raises(AssertionError, match="colour map"):
        check_overlay_picture(result, "motion_uncertainty_slice", "_motion_cine_alone")


def test_nisf_labels_outline_the_reconstructed_intensities(scene, mrml_app, nisf_output, tmp_path):
    from CardiacMotionAtlasLib.mrml.method_outputs import load_nisf_outputs
    from CardiacMotionAtlasLib.mrml.render_method_checks import check_method_pictures, check_outline_picture
    from CardiacMotionAtlasLib.mrml.render_methods import render_nisf_outputs

    nodes = load_nisf_outputs(scene, nisf_output)
    result = render_nisf_outputs(mrml_app, nodes, tmp_path, size=(320, 280))
    numbers = check_method_pictures(result)
    assert set(result.paths) == {"nisf_segmentation_slice"}
    assert numbers["nisf_segmentation_slice.segments_checked"] >= 1
    assert all(value > 0.8 for key, value in numbers.items() if key.endswith("_on_label"))
    # teeth: labels moved by 4 voxels are not where the outline is drawn
    labels, matrix = result.extra["labels"]
    result.extra["labels"] = (np.roll(labels, 4, axis=2), matrix)
    with pytest.raises(AssertionError, match="not on its label|no outline"):
        check_outline_picture(result, "nisf_segmentation_slice", "_nisf_intensity_alone")


def test_ct_synthesis_flow_glyphs_over_the_ct_frame(scene, mrml_app, synth_output, tmp_path):
    from CardiacMotionAtlasLib.mrml.method_outputs import load_synth_outputs
    from CardiacMotionAtlasLib.mrml.render_method_checks import check_glyph_picture, check_method_pictures
    from CardiacMotionAtlasLib.mrml.render_method_scenes import synth_ct_frame
    from CardiacMotionAtlasLib.mrml.render_methods import render_synth_outputs

    nodes = load_synth_outputs(scene, synth_output)
    frame = synth_ct_frame(scene, synth_output)
    result = render_synth_outputs(mrml_app, nodes, frame, tmp_path, size=(320, 280))
    numbers = check_method_pictures(result)
    assert set(result.paths) == {"synth_flow_slice"} and numbers["synth_flow_slice.glyph_pixels"] > 100
    assert numbers["synth_flow_slice.strong_glyph_pixels"] > 20  # the largest flows (red) ...
    assert result.pictures["_synth_ct_alone"].astype(float).std() > 5
    # ... lie on the heart: with the heart's box moved off them the check fails
    result.boxes["synth_flow_slice"] = result.boxes["synth_flow_slice"] * 0.3
    with pytest.raises(AssertionError, match="away from the heart"):
        check_glyph_picture(result, "synth_flow_slice", "_synth_ct_alone")


def test_output_folders_are_found_by_their_files(atlas_output, nisf_output, motion_output, synth_output, tmp_path):
    """make_screenshots reads a main-job tree: each method's folder is recognised by its files, and the
    motion subject's study (not its output folder of the same name) is the cine to draw under it."""
    import json
    import shutil

    from CardiacMotionAtlasLib.mrml.render_method_scenes import find_method_outputs, find_study

    root = tmp_path / "demo"
    copies = {"atlas": root / "atlas" / "s1", "nisf": root / "nisf" / "s1", "synth": root / "synth" / "pairs",
              "motion": root / "motion" / "study"}
    for method, source in (("atlas", atlas_output), ("nisf", nisf_output), ("synth", synth_output),
                           ("motion", motion_output)):
        shutil.copytree(source, copies[method])
    (root / "cohort" / "study").mkdir(parents=True)
    assert find_study(root, "study") is None  # no study yet: the output folder named 'study' is not one
    shutil.copyfile(motion_output.parent / "input" / "study" / "sa.nii.gz", root / "cohort" / "study" / "sa.nii.gz")
    assert find_method_outputs(root) == copies
    subject = json.loads((copies["motion"] / "indices.json").read_text())["subject_id"]
    assert subject == "study" and find_study(root, subject) == root / "cohort" / "study"
    assert find_method_outputs(root / "atlas") == {"atlas": copies["atlas"]}
