"""NIfTI reader/writer: round trips, cross-checks with nibabel and SimpleITK, nibabel's own test data,
and bad inputs."""

import gzip
import os

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from nibabel.testing import data_path

from CardiacMotionAtlasLib.data import ImageSequence
from CardiacMotionAtlasLib.errors import InputFileError
from CardiacMotionAtlasLib.io.itk_images import sitk_to_ijk_to_ras
from CardiacMotionAtlasLib.io.nifti import read_nifti, write_nifti
from io_helpers import GEOMETRY_TOL, assert_names_file, image_sequence, oblique


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
@pytest.mark.parametrize("n_frames", [1, 5])
def test_round_trip_keeps_values_geometry_and_timing(tmp_path, suffix, n_frames):
    image = image_sequence((n_frames, 4, 6, 7), trigger_times_s=np.arange(n_frames) * 0.035)
    path = write_nifti(image, tmp_path / f"img{suffix}")
    back = read_nifti(path)
    assert back.array.shape == image.array.shape
    assert back.array.dtype == image.array.dtype
    np.testing.assert_array_equal(back.array, image.array)
    np.testing.assert_allclose(back.ijk_to_ras, image.ijk_to_ras, atol=GEOMETRY_TOL)
    if n_frames > 1:
        np.testing.assert_allclose(back.trigger_times_s, image.trigger_times_s, atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == [f"img{suffix}"]  # no temporary file left


def test_written_file_is_what_nibabel_and_simpleitk_see(tmp_path):
    image = image_sequence((3, 4, 6, 7))
    path = write_nifti(image, tmp_path / "img.nii.gz")
    nifti = nib.load(str(path))
    assert nifti.shape == (7, 6, 4, 3)  # (x, y, z, t)
    np.testing.assert_allclose(nifti.affine, image.ijk_to_ras, atol=GEOMETRY_TOL)
    assert int(nifti.header["sform_code"]) == 1 and int(nifti.header["qform_code"]) == 1
    np.testing.assert_allclose(nifti.header.get_qform(), image.ijk_to_ras, atol=GEOMETRY_TOL)
    np.testing.assert_array_equal(np.asarray(nifti.dataobj)[2, 3, 1, 0], image.array[0, 1, 3, 2])
    # SimpleITK (LPS) must agree on the same voxel grid once converted to RAS.
    itk = sitk.ReadImage(str(path))
    np.testing.assert_allclose(sitk_to_ijk_to_ras(itk), image.ijk_to_ras, atol=1e-3)


def test_labels_are_written_as_uint8(tmp_path):
    labels = ImageSequence(np.random.default_rng(0).integers(0, 4, (2, 3, 4, 5)).astype(np.int64), oblique())
    path = write_nifti(labels, tmp_path / "seg.nii.gz", labels=True)
    assert nib.load(str(path)).get_data_dtype() == np.uint8
    back = read_nifti(path, labels=True, allowed_labels=(0, 1, 2, 3), require_labels=True)
    assert back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, labels.array)


@pytest.mark.parametrize("name", ["example4d.nii.gz", "functional.nii", "anatomical.nii", "example_nifti2.nii.gz",
                                  "standard.nii.gz"])
def test_nibabel_shipped_files_match_what_nibabel_reports(name):
    path = os.path.join(data_path, name)
    reference = nib.load(path)
    image = read_nifti(path)
    np.testing.assert_allclose(image.ijk_to_ras, reference.affine, atol=1e-6)
    data = np.asarray(reference.dataobj)
    expected = data if data.ndim == 4 else data[..., None]
    assert image.array.shape == expected.shape[::-1]
    np.testing.assert_array_equal(image.array, np.transpose(expected, (3, 2, 1, 0)))
    if data.ndim == 4:
        step = float(reference.header.get_zooms()[3])
        unit = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}.get(reference.header.get_xyzt_units()[1], 1.0)
        np.testing.assert_allclose(image.trigger_times_s, np.arange(data.shape[3]) * step * unit)


def _save(path, data, affine, **header):
    nifti = nib.Nifti1Image(data, affine)
    for key, value in header.items():
        nifti.header[key] = value
    nib.save(nifti, str(path))
    return path


def test_missing_file(tmp_path):
    path = tmp_path / "absent.nii.gz"
    with pytest.raises(InputFileError) as info:
        read_nifti(path)
    assert_names_file(info.value, path)
    assert "does not exist" in str(info.value)


def test_nan_voxels_are_refused(tmp_path):
    data = np.ones((4, 5, 3), dtype=np.float32)
    data[1, 2, 0] = np.nan
    path = _save(tmp_path / "nan.nii.gz", data, np.eye(4))
    with pytest.raises(InputFileError) as info:
        read_nifti(path)
    assert_names_file(info.value, path)
    assert "NaN" in str(info.value)


def test_vector_image_is_the_wrong_dimensionality(tmp_path):
    path = _save(tmp_path / "vec.nii.gz", np.zeros((4, 5, 3, 1, 3), dtype=np.float32), np.eye(4))
    with pytest.raises(InputFileError) as info:
        read_nifti(path)
    assert_names_file(info.value, path)
    assert "5-D" in str(info.value)


def test_sheared_affine_is_refused(tmp_path):
    affine = np.eye(4)
    affine[0, 1] = 0.5  # i and j axes no longer orthogonal
    path = _save(tmp_path / "shear.nii.gz", np.zeros((4, 5, 3), dtype=np.float32), affine)
    with pytest.raises(InputFileError) as info:
        read_nifti(path)
    assert_names_file(info.value, path)
    assert "orthonormal" in str(info.value)


def test_truncated_gzip_is_refused(tmp_path):
    good = write_nifti(image_sequence((3, 8, 9, 10)), tmp_path / "good.nii.gz")
    data = good.read_bytes()
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputFileError) as info:
        read_nifti(path)
    assert_names_file(info.value, path)


def test_header_promising_more_voxels_than_the_file_holds(tmp_path):
    path = _save(tmp_path / "big.nii", np.zeros((4, 5, 3), dtype=np.float32), np.eye(4))
    raw = bytearray(path.read_bytes())
    header = nib.Nifti1Header.from_fileobj(open(path, "rb"))
    header["dim"][1:4] = [30000, 30000, 30000]
    raw[: header.sizeof_hdr] = header.binaryblock
    path.write_bytes(bytes(raw))
    with pytest.raises(InputFileError) as info:
        read_nifti(path)
    assert_names_file(info.value, path)


def test_empty_label_map_where_labels_are_required(tmp_path):
    path = _save(tmp_path / "seg.nii.gz", np.zeros((4, 5, 3), dtype=np.uint8), np.eye(4))
    assert read_nifti(path, labels=True).array.max() == 0  # allowed when not required
    with pytest.raises(InputFileError) as info:
        read_nifti(path, labels=True, require_labels=True)
    assert_names_file(info.value, path)
    assert "empty" in str(info.value)


def test_unexpected_label_values(tmp_path):
    path = _save(tmp_path / "seg.nii.gz", np.full((4, 5, 3), 7, dtype=np.uint8), np.eye(4))
    with pytest.raises(InputFileError) as info:
        read_nifti(path, labels=True, allowed_labels=(0, 1, 2, 3))
    assert "[7]" in str(info.value)


def test_not_gzip_although_named_nii_gz(tmp_path):
    path = tmp_path / "plain.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header at all" * 20)[:40])
    with pytest.raises(InputFileError) as info:
        read_nifti(path)
    assert_names_file(info.value, path)
