"""NRRD / SimpleITK images: LPS<->RAS conversion, 3D and 4D round trips, Slicer sequence layout, errors."""

import os

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from CardiacMotionAtlasLib.data import ImageSequence
from CardiacMotionAtlasLib.errors import InputFileError
from CardiacMotionAtlasLib.geometry.affine import make_ijk_to_ras, rotation_matrix
from CardiacMotionAtlasLib.io.itk_images import (
    ijk_to_ras_to_sitk,
    read_itk_image,
    sitk_to_ijk_to_ras,
    write_itk_image,
)
from io_helpers import GEOMETRY_TOL, assert_names_file, files_in, image_sequence, oblique


@settings(max_examples=30, deadline=None)
@given(
    origin=st.lists(st.floats(-500, 500), min_size=3, max_size=3),
    spacing=st.lists(st.floats(0.1, 20), min_size=3, max_size=3),
    axis=st.lists(st.floats(-1, 1), min_size=3, max_size=3).filter(lambda v: np.linalg.norm(v) > 0.1),
    angle=st.floats(-np.pi, np.pi),
)
def test_sitk_geometry_conversion_is_exact_and_flips_x_y(origin, spacing, axis, angle):
    matrix = make_ijk_to_ras(origin, rotation_matrix(axis, angle), spacing)
    image = ijk_to_ras_to_sitk(sitk.Image(2, 2, 2, sitk.sitkUInt8), matrix)
    np.testing.assert_allclose(sitk_to_ijk_to_ras(image), matrix, atol=1e-9)
    # ITK stores LPS: x and y of the origin and of every axis are negated.
    np.testing.assert_allclose(image.GetOrigin(), [-origin[0], -origin[1], origin[2]], atol=1e-9)
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction[:2], -matrix[:2, :3] / np.asarray(spacing), atol=1e-9)


@pytest.mark.parametrize("name", ["img.nrrd", "img.seq.nrrd", "img.nhdr", "img.mha"])
@pytest.mark.parametrize("n_frames", [1, 4])
def test_round_trip(tmp_path, name, n_frames):
    image = image_sequence((n_frames, 3, 5, 6), phases=np.linspace(0, 0.9, n_frames),
                           trigger_times_s=np.arange(n_frames) * 0.04, cycle_length_s=0.8, name="cine")
    write_itk_image(image, tmp_path / name)
    back = read_itk_image(tmp_path / name)
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(back.ijk_to_ras, image.ijk_to_ras, atol=GEOMETRY_TOL)
    np.testing.assert_allclose(back.phases, image.phases)
    np.testing.assert_allclose(back.trigger_times_s, image.trigger_times_s)
    assert back.cycle_length_s == pytest.approx(0.8)
    assert back.name == "cine"
    assert not [f for f in files_in(tmp_path) if f.startswith(".")]  # no temporary files or folders


def test_file_read_by_simpleitk_has_lps_geometry_and_time_slowest(tmp_path):
    image = image_sequence((4, 3, 5, 6))
    path = write_itk_image(image, tmp_path / "cine.seq.nrrd")
    itk = sitk.ReadImage(str(path))
    assert itk.GetSize() == (6, 5, 3, 4)  # I J K T: the list axis is the slowest (Slicer .seq.nrrd)
    lps_origin = np.asarray(itk.GetOrigin())[:3]
    np.testing.assert_allclose(lps_origin, image.origin * [-1, -1, 1], atol=1e-9)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(itk), image.array)
    assert itk.GetMetaData("axis 3 index type") == "numeric"
    assert len(itk.GetMetaData("axis 3 index values").split()) == 4
    header = path.read_bytes()[:2000].decode("latin-1")
    assert "sizes: 6 5 3 4" in header


def test_labels_are_uint8_and_tagged_as_labelmap(tmp_path):
    labels = ImageSequence(np.random.default_rng(0).integers(0, 4, (1, 3, 4, 5)), oblique())
    path = write_itk_image(labels, tmp_path / "seg.nrrd", labels=True)
    itk = sitk.ReadImage(str(path))
    assert itk.GetPixelID() == sitk.sitkUInt8
    assert itk.GetMetaData("DataNodeClassName") == "vtkMRMLLabelMapVolumeNode"
    np.testing.assert_array_equal(read_itk_image(path, labels=True).array, labels.array)


def test_old_slicer_sequence_with_list_axis_first_is_read_as_frames(tmp_path):
    frames = np.random.default_rng(2).normal(size=(3, 4, 5, 6)).astype(np.float32)  # (t, z, y, x)
    vector = sitk.GetImageFromArray(np.moveaxis(frames, 0, -1), isVector=True)
    ijk_to_ras_to_sitk(vector, oblique())
    path = tmp_path / "old.seq.nrrd"
    sitk.WriteImage(vector, str(path))
    text = path.read_bytes()
    assert b"kinds: vector domain domain domain" in text
    path.write_bytes(text.replace(b"kinds: vector domain", b"kinds: list domain", 1))
    back = read_itk_image(path)
    np.testing.assert_array_equal(back.array, frames)
    np.testing.assert_allclose(back.ijk_to_ras, oblique(), atol=GEOMETRY_TOL)


def test_vector_image_is_refused(tmp_path):
    path = tmp_path / "vec.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((3, 4, 5, 3), np.float32), isVector=True), str(path))
    with pytest.raises(InputFileError) as info:
        read_itk_image(path)
    assert_names_file(info.value, path)
    assert "3-component" in str(info.value)


def test_non_orthonormal_space_directions_are_refused(tmp_path):
    path = write_itk_image(image_sequence((1, 2, 3, 4)), tmp_path / "img.nrrd", compress=False)
    text = path.read_bytes()
    start = text.index(b"space directions:")
    end = text.index(b"\n", start)
    path.write_bytes(text[:start] + b"space directions: (1,0,0) (1,1,0) (0,0,1)" + text[end:])
    with pytest.raises(InputFileError) as info:
        read_itk_image(path)
    assert_names_file(info.value, path)
    assert "orthonormal" in str(info.value)


def test_nan_and_truncation_are_refused(tmp_path):
    image = image_sequence((1, 3, 4, 5))
    image.array[0, 1, 1, 1] = np.inf
    path = write_itk_image(image, tmp_path / "inf.nrrd")
    with pytest.raises(InputFileError) as info:
        read_itk_image(path)
    assert "NaN or infinite" in str(info.value)
    good = write_itk_image(image_sequence((2, 6, 7, 8)), tmp_path / "good.nrrd", compress=False)
    cut = tmp_path / "cut.nrrd"
    cut.write_bytes(good.read_bytes()[: os.path.getsize(good) - 100])
    with pytest.raises(InputFileError) as info:
        read_itk_image(cut)
    assert_names_file(info.value, cut)


def test_many_frames_need_a_4d_format(tmp_path):
    from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError

    with pytest.raises(CardiacMotionAtlasError):
        write_itk_image(image_sequence((3, 2, 3, 4)), tmp_path / "img.png")
    assert files_in(tmp_path) == []
