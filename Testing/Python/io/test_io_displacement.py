"""Displacement fields: round trips, the LPS component flip seen by SimpleITK/nibabel, uncertainty."""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from CardiacMotionAtlasLib.data import DisplacementField
from CardiacMotionAtlasLib.errors import InputFileError
from CardiacMotionAtlasLib.io.displacement_io import (
    read_displacement_field,
    uncertainty_path_for,
    write_displacement_field,
)
from CardiacMotionAtlasLib.io.itk_images import sitk_to_ijk_to_ras, write_itk_image
from io_helpers import GEOMETRY_TOL, assert_names_file, files_in, image_sequence, oblique


def _field(with_uncertainty=True) -> DisplacementField:
    rng = np.random.default_rng(5)
    return DisplacementField(
        vectors=rng.normal(0, 3, size=(3, 4, 5, 6)),
        ijk_to_ras=oblique(spacing=(2.0, 2.5, 3.0)),
        uncertainty=rng.random((4, 5, 6)) if with_uncertainty else None,
        source_phase=0.0,
        target_phase=0.35,
        name="ed_to_es",
    )


@pytest.mark.parametrize("name", ["dvf.nii.gz", "dvf.nrrd", "dvf.mha"])
def test_round_trip(tmp_path, name):
    field = _field()
    write_displacement_field(field, tmp_path / name)
    back = read_displacement_field(tmp_path / name)
    np.testing.assert_allclose(back.vectors, field.vectors, atol=1e-6)
    np.testing.assert_allclose(back.ijk_to_ras, field.ijk_to_ras, atol=GEOMETRY_TOL)
    np.testing.assert_allclose(back.uncertainty, field.uncertainty, atol=1e-6)
    assert back.source_phase == pytest.approx(0.0) and back.target_phase == pytest.approx(0.35)
    assert uncertainty_path_for(tmp_path / name).exists()
    # sampling the read field at a voxel centre gives the stored RAS displacement
    centre = field.ijk_to_ras @ np.array([2.0, 3.0, 1.0, 1.0])
    np.testing.assert_allclose(back.sample(centre[None, :3])[0], field.vectors[:, 1, 3, 2], atol=1e-5)


@pytest.mark.parametrize("name", ["dvf.nii.gz", "dvf.nrrd"])
def test_simpleitk_sees_lps_components(tmp_path, name):
    field = _field(with_uncertainty=False)
    path = write_displacement_field(field, tmp_path / name)
    itk = sitk.ReadImage(str(path))
    assert itk.GetNumberOfComponentsPerPixel() == 3
    vectors = sitk.GetArrayFromImage(itk)  # (z, y, x, 3), LPS components
    np.testing.assert_allclose(vectors[..., 0], -field.vectors[0], atol=1e-6)
    np.testing.assert_allclose(vectors[..., 1], -field.vectors[1], atol=1e-6)
    np.testing.assert_allclose(vectors[..., 2], field.vectors[2], atol=1e-6)
    np.testing.assert_allclose(sitk_to_ijk_to_ras(itk), field.ijk_to_ras, atol=GEOMETRY_TOL)
    assert files_in(tmp_path) == [name]  # no uncertainty file when there is none


def test_nifti_field_is_a_vector_intent_image(tmp_path):
    path = write_displacement_field(_field(False), tmp_path / "dvf.nii.gz")
    nifti = nib.load(str(path))
    assert nifti.shape == (6, 5, 4, 1, 3)
    assert nifti.header.get_intent()[0] == "vector"


def test_field_direction_convention_with_a_translation(tmp_path):
    """A uniform field of +5 mm along R moves every source point 5 mm to the right, whichever file."""
    vectors = np.zeros((3, 3, 3, 3))
    vectors[0] = 5.0
    field = DisplacementField(vectors, oblique(), source_phase=0.0, target_phase=0.4)
    back = read_displacement_field(write_displacement_field(field, tmp_path / "t.nrrd"))
    point = oblique()[:3, 3]
    np.testing.assert_allclose(point + back.sample(point[None])[0], point + [5.0, 0, 0], atol=1e-6)


def test_scalar_image_is_not_a_field(tmp_path):
    path = write_itk_image(image_sequence((1, 3, 4, 5)), tmp_path / "scalar.nrrd")
    with pytest.raises(InputFileError) as info:
        read_displacement_field(path)
    assert_names_file(info.value, path)
    assert "3 components" in str(info.value)


def test_uncertainty_on_another_grid_is_refused(tmp_path):
    path = write_displacement_field(_field(False), tmp_path / "dvf.nrrd")
    other = write_itk_image(image_sequence((1, 2, 2, 2)), uncertainty_path_for(path))
    with pytest.raises(InputFileError) as info:
        read_displacement_field(path)
    assert_names_file(info.value, other)
