"""Per-frame volumes, volume curves, ED/ES detection and the atomic PNG plot."""

import os

import numpy as np
import pytest
from vtkmodules.vtkFiltersSources import vtkSphereSource

from CardiacMotionAtlasLib.analysis.volume_curves import (
    VolumeCurve,
    detect_ed_es,
    plot_volume_curves,
    volume_curve_from_labels,
    volume_curve_from_mesh,
)
from CardiacMotionAtlasLib.analysis.volumes import label_volumes_ml, mesh_volumes_ml
from CardiacMotionAtlasLib.data import ImageSequence, MeshSequence
from CardiacMotionAtlasLib.geometry.affine import make_ijk_to_ras
from CardiacMotionAtlasLib.metrics._vtk_mesh import from_polydata

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def ball_sequence(radii, spacing=(1.0, 1.0, 1.0), half_extent=34.0):
    spacing = np.asarray(spacing, float)
    shape_xyz = (2 * half_extent / spacing).astype(int) + 1
    matrix = make_ijk_to_ras(-half_extent * np.ones(3), np.eye(3), spacing)
    grid = ImageSequence(np.zeros((1,) + tuple(shape_xyz[::-1]), np.uint8), matrix)
    r = np.linalg.norm(grid.voxel_centres_ras(), axis=-1)
    return ImageSequence(np.stack([(r <= radius).astype(np.uint8) for radius in radii]), matrix)


def sphere_mesh_sequence(radii):
    source = vtkSphereSource()
    source.SetThetaResolution(48)
    source.SetPhiResolution(48)
    source.Update()
    vertices, faces = from_polydata(source.GetOutput())  # diameter 1
    return MeshSequence(2.0 * vertices[None] * np.asarray(radii)[:, None, None], faces, name="LV")


def test_label_volume_with_anisotropic_voxels():
    labels = ball_sequence([25.0], spacing=(0.8, 1.0, 1.5))
    expected = 4 / 3 * np.pi * 25.0**3 / 1000
    assert label_volumes_ml(labels, 1)[0] == pytest.approx(expected, rel=0.02)
    assert label_volumes_ml(labels, 2)[0] == 0.0


def test_curve_from_labels_and_ed_es():
    radii = [24.0, 22.0, 20.0, 21.0, 23.0]
    labels = ball_sequence(radii)
    curve = volume_curve_from_labels(labels, label=1, name="LV")
    np.testing.assert_allclose(curve.phases, np.arange(5) / 5)
    np.testing.assert_allclose(curve.volumes_ml, 4 / 3 * np.pi * np.asarray(radii) ** 3 / 1000, rtol=0.02)
    assert (curve.ed_index, curve.es_index) == (0, 2)
    assert detect_ed_es([3.0, 5.0, 1.0, 2.0]) == (1, 2)
    with pytest.raises(ValueError):
        detect_ed_es([])
    with pytest.raises(ValueError):
        detect_ed_es([1.0, np.nan])


def test_curve_from_mesh_changes_per_frame():
    radii = np.array([25.0, 20.0, 22.0])
    curve = volume_curve_from_mesh(sphere_mesh_sequence(radii))
    expected = 4 / 3 * np.pi * radii**3 / 1000
    np.testing.assert_allclose(curve.volumes_ml, expected, rtol=0.006)
    np.testing.assert_allclose(curve.volumes_ml / curve.volumes_ml[0], (radii / 25.0) ** 3, rtol=1e-9)
    assert curve.name == "LV" and (curve.ed_index, curve.es_index) == (0, 1)
    assert mesh_volumes_ml(sphere_mesh_sequence([10.0]))[0] == pytest.approx(4 / 3 * np.pi * 10.0**3 / 1000, rel=0.006)


def test_volume_curve_validation():
    with pytest.raises(ValueError):
        VolumeCurve([0.0, 0.5], [1.0])


def test_plot_writes_png_atomically(tmp_path):
    lv = VolumeCurve(np.arange(10) / 10, 120 - 50 * np.sin(np.pi * np.arange(10) / 10), "LV")
    rv = VolumeCurve(np.arange(10) / 10, 130 - 55 * np.sin(np.pi * np.arange(10) / 10), "RV")
    path = plot_volume_curves({"LV": lv, "RV": rv}, tmp_path / "out" / "curves.png", title="test")
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000
    assert os.listdir(path.parent) == ["curves.png"]  # no temporary file left behind
    single = plot_volume_curves(lv, tmp_path / "single.png")
    assert single.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(ValueError):
        plot_volume_curves([], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_failed_plot_leaves_nothing(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as handle:
            handle.write(PNG_MAGIC[:4])  # partial output
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    curve = VolumeCurve([0.0, 0.5], [100.0, 60.0], "LV")
    with pytest.raises(OSError):
        plot_volume_curves(curve, tmp_path / "curves.png")
    assert os.listdir(tmp_path) == []
