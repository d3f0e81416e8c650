"""DICOM: cine round trips through write_dicom_cine/read_dicom_cine, views, ordering, 3D series, pydicom's
shipped test files, and broken inputs."""

import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file

from CardiacMotionAtlasLib.data import CineSlice, ImageSequence
from CardiacMotionAtlasLib.errors import CineStudyError, InputFileError
from CardiacMotionAtlasLib.geometry.affine import RAS_FROM_LPS
from CardiacMotionAtlasLib.io.dicom import (
    read_dicom_cine,
    read_dicom_series,
    view_from_description,
    write_dicom_cine,
    write_dicom_series,
)
from CardiacMotionAtlasLib.io.itk_images import sitk_to_ijk_to_ras
from io_helpers import GEOMETRY_TOL, assert_names_file, image_sequence, make_study, oblique

APEX = np.array([-1.0, 1.0, -1.0]) / np.sqrt(3)


def _write_study(study, folder, describe=True):
    for number, s in enumerate(study.slices, 1):
        write_dicom_cine(s, folder, study_uid="1.2.3.4", frame_of_reference_uid="1.2.3.5", series_number=number,
                         patient_id=study.subject_id,
                         series_description=None if describe else "cine retro")


def test_cine_round_trip_keeps_pixels_geometry_phases_and_views(tmp_path):
    study = make_study(n_frames=5, n_sax=3, integer=True, labelled=None)
    _write_study(study, tmp_path)
    back = read_dicom_cine(tmp_path)
    assert back.subject_id == study.subject_id
    assert back.n_frames == 5
    assert sorted(s.view for s in back.slices) == sorted(s.view for s in study.slices)
    assert back.cycle_length_s == pytest.approx(0.96)
    for original in study.slices:
        matches = [s for s in back.slices if s.view == original.view
                   and np.allclose(s.image.origin, original.image.origin, atol=GEOMETRY_TOL)]
        assert len(matches) == 1
        got = matches[0].image
        np.testing.assert_allclose(got.ijk_to_ras, original.image.ijk_to_ras, atol=GEOMETRY_TOL)
        np.testing.assert_array_equal(got.array, original.image.array)
        np.testing.assert_allclose(got.phases, original.image.phases, atol=1e-3)
        np.testing.assert_allclose(got.trigger_times_s, original.image.trigger_times_s, atol=1e-6)


def test_sax_slices_are_ordered_base_to_apex_and_indexed(tmp_path):
    study = make_study(n_frames=3, n_sax=4, integer=True, labelled=None, lax_views=())
    _write_study(study, tmp_path)
    sax = read_dicom_cine(tmp_path).sax
    positions = [float(s.image.origin @ APEX) for s in sax]
    assert positions == sorted(positions)
    assert [s.slice_index for s in sax] == [0, 1, 2, 3]


def test_views_from_orientation_without_description(tmp_path):
    study = make_study(n_frames=3, n_sax=3, integer=True, labelled=None, lax_views=("4CH",))
    _write_study(study, tmp_path, describe=False)
    back = read_dicom_cine(tmp_path)
    assert [s.view for s in back.slices].count("SAX") == 3
    assert [s.view for s in back.slices if s.view != "SAX"] == ["4CH"]
    assert all(s.image.metadata["view_from"] == "orientation" for s in back.slices)


@pytest.mark.parametrize("text, view", [("SAX cine", "SAX"), ("sa_stack", "SAX"), ("Short axis", "SAX"),
                                        ("CINE_2CH", "2CH"), ("3ch retro", "3CH"), ("4-ch", "4CH"),
                                        ("cine 4ch", "4CH"), ("LAX", "4CH"), ("localizer", None)])
def test_view_from_description(text, view):
    assert view_from_description(text) == view


def test_trigger_time_sorting_ignores_file_order(tmp_path):
    cine = make_study(n_frames=4, n_sax=1, integer=True, labelled=None, lax_views=()).slices[0]
    paths = write_dicom_cine(cine, tmp_path)
    # shuffle InstanceNumber so only TriggerTime gives the right order
    for path, number in zip(paths, [3, 1, 4, 2]):
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = number
        ds.save_as(path)
    back = read_dicom_cine(tmp_path).slices[0]
    np.testing.assert_array_equal(back.image.array, cine.image.array)


def test_mismatched_frame_counts(tmp_path):
    study = make_study(n_frames=5, n_sax=2, integer=True, labelled=None, lax_views=())
    _write_study(study, tmp_path)
    short = study.slices[0].image
    lax = CineSlice(ImageSequence(short.array[:3], oblique(), cycle_length_s=0.9), view="4CH")
    paths = write_dicom_cine(lax, tmp_path, prefix="lax", patient_id=study.subject_id, study_uid="1.2.3.4",
                             frame_of_reference_uid="1.2.3.5")
    with pytest.raises(CineStudyError) as info:
        read_dicom_cine(tmp_path)
    assert str(info.value).startswith(str(paths[0]))
    assert "3 time frames, expected 5" in str(info.value)


def test_series_round_trip(tmp_path):
    volume = image_sequence((1, 5, 6, 7), integer=True)
    write_dicom_series(volume, tmp_path)
    back = read_dicom_series(tmp_path)
    np.testing.assert_allclose(back.ijk_to_ras, volume.ijk_to_ras, atol=GEOMETRY_TOL)
    np.testing.assert_array_equal(back.array, volume.array)


def test_series_with_float_values_uses_rescale(tmp_path):
    volume = image_sequence((1, 2, 6, 7))
    write_dicom_series(volume, tmp_path)
    back = read_dicom_series(tmp_path)
    span = float(volume.array.max() - volume.array.min())
    np.testing.assert_allclose(back.array, volume.array, atol=span / 65535 + 1e-4)


def test_cine_folder_is_not_a_volume(tmp_path):
    write_dicom_cine(make_study(n_frames=3, n_sax=1, integer=True, labelled=None, lax_views=()).slices[0], tmp_path)
    with pytest.raises(InputFileError) as info:
        read_dicom_series(tmp_path)
    assert "read_dicom_cine" in str(info.value)


MR_VARIANTS = ["MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "MR_small_expb.dcm",
               "MR_small_RLE.dcm", "MR_small_padded.dcm"]


@pytest.mark.filterwarnings("ignore:The pixel data is")  # MR_small_padded: pydicom notes the padding
@pytest.mark.parametrize("name", MR_VARIANTS)
def test_pydicom_shipped_mr_matches_what_pydicom_reports(name):
    path = get_testdata_file(name)
    ds = pydicom.dcmread(path)
    image = read_dicom_series(path)
    lps_position = np.array([float(v) for v in ds.ImagePositionPatient])
    orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    np.testing.assert_allclose(image.origin, lps_position * [-1, -1, 1], atol=1e-6)
    np.testing.assert_allclose(image.direction[:, 0], orientation[:3] * [-1, -1, 1], atol=1e-6)
    np.testing.assert_allclose(image.direction[:, 1], orientation[3:] * [-1, -1, 1], atol=1e-6)
    np.testing.assert_allclose(image.spacing[:2], [col_spacing, row_spacing], atol=1e-6)
    assert image.array.shape == (1, 1, int(ds.Rows), int(ds.Columns))
    np.testing.assert_array_equal(image.array[0, 0], ds.pixel_array.astype(np.float32))


def test_pydicom_shipped_mr_agrees_with_simpleitk():
    path = get_testdata_file("MR_small.dcm")
    ours = read_dicom_series(path)
    theirs = sitk_to_ijk_to_ras(sitk.ReadImage(path))
    np.testing.assert_allclose(ours.ijk_to_ras[:, [0, 1, 3]], theirs[:, [0, 1, 3]], atol=1e-4)


def test_pydicom_shipped_ct_applies_rescale():
    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    image = read_dicom_series(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(image.array[0, 0], expected)
    lps_position = np.array([float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(image.origin, RAS_FROM_LPS[:3, :3] @ lps_position, atol=1e-6)


@pytest.mark.parametrize("name, words", [("MR_truncated.dcm", "cannot read"), ("rtdose.dcm", "multi-frame"),
                                         ("MR_small_jpeg_ls_lossless.dcm", "cannot read")])
def test_pydicom_shipped_unreadable_files(tmp_path, name, words):
    path = tmp_path / name
    shutil.copy(get_testdata_file(name), path)
    with pytest.raises(InputFileError) as info:
        read_dicom_series(tmp_path)
    assert_names_file(info.value, path)
    assert words in str(info.value)


def test_non_orthonormal_orientation(tmp_path):
    paths = write_dicom_series(image_sequence((1, 1, 4, 5), integer=True), tmp_path)
    ds = pydicom.dcmread(paths[0])
    ds.ImageOrientationPatient = [1, 0, 0, 0.5, 0.5, 0]
    ds.save_as(paths[0])
    with pytest.raises(InputFileError) as info:
        read_dicom_cine(tmp_path)
    assert_names_file(info.value, paths[0])
    assert "orthonormal" in str(info.value)


def test_truncated_and_non_dicom_files(tmp_path):
    paths = write_dicom_series(image_sequence((1, 2, 4, 5), integer=True), tmp_path)
    (tmp_path / "notes.txt").write_text("not dicom; ignored")
    assert read_dicom_series(tmp_path).array.shape == (1, 2, 4, 5)
    paths[1].write_bytes(paths[1].read_bytes()[:-20])
    with pytest.raises(InputFileError) as info:
        read_dicom_series(tmp_path)
    assert_names_file(info.value, paths[1])


def test_empty_folder(tmp_path):
    with pytest.raises(InputFileError) as info:
        read_dicom_cine(tmp_path)
    assert_names_file(info.value, tmp_path)
    assert "no DICOM" in str(info.value)
