"""Readers and writers (the only place where LPS files meet the library's RAS frame).

Images: :mod:`.nifti` (nibabel), :mod:`.itk_images` (NRRD and other SimpleITK formats), :mod:`.dicom`
(cine and volume DICOM). Displacement fields: :mod:`.displacement_io`. Meshes: :mod:`.meshes`,
:mod:`.vtk_convert` (and the pre-flight checks :mod:`.mesh_preflight`). Study layouts: :mod:`.layouts`
(UK Biobank, ACDC, M&Ms, DICOM), their label conventions :mod:`.label_conventions`. Atomic output: :mod:`.atomic`.
Checks every reader runs before it trusts a header: :mod:`.geometry_checks` (plausible voxel size, field of
view, origin), :mod:`.detached_headers` (MetaImage/NRRD data files: in the header's folder, regular files),
:mod:`.size_budget` (declared voxel bytes vs the real, decompressed data and a memory budget, before any
allocation), :mod:`.dicom_consistency` (one subject per folder, complete slices or a reported drop). Every reader raises :class:`~CardiacMotionAtlasLib.errors.InputFileError` (or
:class:`~CardiacMotionAtlasLib.errors.CineStudyError`) naming the file; every writer is atomic.
"""

from .atomic import atomic_path, atomic_write_bytes, atomic_write_text
from .dicom import read_dicom_cine, read_dicom_series, view_from_description, write_dicom_cine, write_dicom_series
from .displacement_io import read_displacement_field, uncertainty_path_for, write_displacement_field
from .itk_images import (
    ijk_to_ras_to_sitk,
    read_itk_image,
    read_nrrd,
    sitk_to_ijk_to_ras,
    write_itk_image,
    write_nrrd,
)
from .label_conventions import CONVENTIONS, LabelConventionError, convention_of_label_file, to_product
from .layout_acdc import read_acdc_study, read_mnms_study, write_acdc_study
from .layout_ukbb import read_ukbb_study, write_ukbb_study
from .layouts import detect_layout, read_stack_study, read_study
from .meshes import read_mesh, read_mesh_sequence, read_polydata, write_mesh, write_mesh_sequence, write_polydata
from .nifti import read_nifti, write_nifti
from .vtk_convert import mesh_to_polydata, polydata_to_arrays

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "read_nifti",
    "write_nifti",
    "read_itk_image",
    "write_itk_image",
    "read_nrrd",
    "write_nrrd",
    "sitk_to_ijk_to_ras",
    "ijk_to_ras_to_sitk",
    "read_displacement_field",
    "write_displacement_field",
    "uncertainty_path_for",
    "read_dicom_cine",
    "read_dicom_series",
    "write_dicom_cine",
    "write_dicom_series",
    "view_from_description",
    "mesh_to_polydata",
    "polydata_to_arrays",
    "read_polydata",
    "write_polydata",
    "read_mesh",
    "write_mesh",
    "read_mesh_sequence",
    "write_mesh_sequence",
    "read_ukbb_study",
    "write_ukbb_study",
    "read_acdc_study",
    "write_acdc_study",
    "CONVENTIONS",
    "LabelConventionError",
    "convention_of_label_file",
    "to_product",
    "read_mnms_study",
    "read_study",
    "read_stack_study",
    "detect_layout",
]
