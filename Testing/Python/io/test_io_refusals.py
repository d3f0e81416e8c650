"""Issue 19, rows 1, 2 and 7 and the ``info`` paths: DICOM cine folders with truncated or missing frames,
two subjects in one folder, a 3D file where a 4D cine is expected, unknown label values, and paths that
are not study folders. Each is refused with an :class:`InputFileError` naming the actual file(s), or read
correctly when the caller asks to drop incomplete slices (and the drop is reported)."""

import logging
import os

import numpy as np
import pytest

from CardiacMotionAtlasLib.errors import CineStudyError, InputFileError
from CardiacMotionAtlasLib.io.cohort import entry_for
from CardiacMotionAtlasLib.io.cohort_scan import scan_study
from CardiacMotionAtlasLib.io.dicom import read_dicom_cine, read_dicom_series, write_dicom_cine
from CardiacMotionAtlasLib.io.dicom_consistency import format_dropped
from CardiacMotionAtlasLib.io.layout_acdc import write_acdc_study
from CardiacMotionAtlasLib.io.layout_ukbb import read_ukbb_study, write_ukbb_study
from CardiacMotionAtlasLib.io.layouts import detect_layout, read_study
from CardiacMotionAtlasLib.io.nifti import read_nifti, write_nifti
from io_helpers import assert_names_file, make_study

N_FRAMES, N_SAX = 5, 4


def _write_cine_folder(folder, patient="P1", study_uid="1.2.3", for_uid="1.2.3.9"):
    """``N_SAX`` SAX slices of ``N_FRAMES`` frames; returns the files per slice."""
    study = make_study(n_frames=N_FRAMES, n_sax=N_SAX, integer=True, labelled=None, lax_views=())
    return [write_dicom_cine(s, folder, patient_id=patient, study_uid=study_uid, frame_of_reference_uid=for_uid,
                             series_number=s.slice_index + 1) for s in study.slices]


def _truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: keep(len(data))])


# --------------------------------------------------------------------------- row 1: truncated / missing frames


@pytest.mark.parametrize("keep", [lambda n: 400, lambda n: n // 2, lambda n: n - 10],
                         ids=["meta-only", "half", "pixel-data-cut"])
def test_slice_with_all_frames_truncated_is_refused_naming_those_files(tmp_path, keep):
    files = _write_cine_folder(tmp_path)
    for path in files[1]:
        _truncate(path, keep)
    with pytest.raises(InputFileError) as info:
        read_dicom_cine(tmp_path)
    message = str(info.value)
    assert_names_file(info.value, files[1][0])
    assert all(p.name in message for p in files[1])  # every truncated frame is named ...
    assert not any(p.name in message for s in (0, 2, 3) for p in files[s])  # ... and no intact sibling


def test_drop_incomplete_leaves_the_slice_out_and_reports_it(tmp_path, caplog):
    files = _write_cine_folder(tmp_path)
    for path in files[2]:
        _truncate(path, lambda n: n // 2)
    with caplog.at_level(logging.WARNING):
        study = read_study(tmp_path, drop_incomplete=True)
    assert len(study.sax) == N_SAX - 1 and study.n_frames == N_FRAMES
    dropped = study.metadata["dropped"]
    assert sorted(f for d in dropped for f in d["files"]) == sorted(str(p) for p in files[2])
    assert all("unreadable" in d["reason"] for d in dropped)
    assert files[2][0].name in caplog.text
    lines = format_dropped(dropped)
    assert len(lines) == len(dropped) and files[2][0].name in "".join(lines)


def test_slice_missing_frames_is_an_error_naming_its_files_unless_dropped(tmp_path):
    files = _write_cine_folder(tmp_path)
    for path in files[3][1:3]:
        path.unlink()
    with pytest.raises(CineStudyError) as info:
        read_dicom_cine(tmp_path)
    assert_names_file(info.value, files[3][0])
    assert f"3 time frames, expected {N_FRAMES}" in str(info.value)
    assert files[3][3].name in str(info.value) and "drop_incomplete" in str(info.value)
    study = read_dicom_cine(tmp_path, drop_incomplete=True)
    assert len(study.sax) == N_SAX - 1
    (dropped,) = study.metadata["dropped"]
    assert sorted(dropped["files"]) == sorted(str(p) for p in files[3] if p.exists())
    assert "incomplete slice: 3 of 5" in dropped["reason"]


def test_complete_study_reports_nothing_dropped(tmp_path):
    _write_cine_folder(tmp_path)
    study = read_dicom_cine(tmp_path, drop_incomplete=True)
    assert len(study.sax) == N_SAX and study.metadata["dropped"] == []


def test_five_truncated_frames_across_slices_are_all_named(tmp_path):
    """Row 7: 5 truncated frames spread over slices: the message names them, not a sibling."""
    files = _write_cine_folder(tmp_path)
    cut = [files[0][1], files[1][4], files[2][0], files[3][2], files[3][3]]
    for path in cut:
        _truncate(path, lambda n: n - 100)
    with pytest.raises(InputFileError) as info:
        read_dicom_cine(tmp_path)
    message = str(info.value)
    assert sorted(p.name for p in cut) == sorted(p.name for s in files for p in s if p.name in message)


# --------------------------------------------------------------------------- row 2: one subject per folder


@pytest.mark.parametrize("tag, second", [
    ("PatientID", dict(patient="P2")),
    ("StudyInstanceUID", dict(study_uid="1.2.4")),
    ("FrameOfReferenceUID", dict(for_uid="1.2.3.10")),
])
def test_two_subjects_in_one_folder_are_refused_naming_a_file_of_each(tmp_path, tag, second):
    first = _write_cine_folder(tmp_path / "mixed")
    study = make_study(n_frames=N_FRAMES, n_sax=1, integer=True, labelled=None, lax_views=(), seed=9)
    kwargs = dict(patient_id="P1", study_uid="1.2.3", frame_of_reference_uid="1.2.3.9")
    kwargs.update({"patient_id": second.get("patient", "P1"), "study_uid": second.get("study_uid", "1.2.3"),
                   "frame_of_reference_uid": second.get("for_uid", "1.2.3.9")})
    other = write_dicom_cine(study.slices[0], tmp_path / "mixed", prefix="other", series_number=9, **kwargs)
    with pytest.raises(InputFileError) as info:
        read_dicom_cine(tmp_path / "mixed")
    message = str(info.value)
    assert message.startswith(str(tmp_path / "mixed")) and tag in message
    assert any(str(p) in message for p in other) and any(str(p) in message for s in first for p in s)
    with pytest.raises(InputFileError):
        read_dicom_series(tmp_path / "mixed")


def test_default_writer_uids_keep_one_subject_consistent(tmp_path):
    study = make_study(n_frames=N_FRAMES, n_sax=2, integer=True, labelled=None, lax_views=())
    for s in study.slices:  # separate calls, no UIDs given
        write_dicom_cine(s, tmp_path, patient_id="P7", series_number=s.slice_index + 1)
    assert len(read_dicom_cine(tmp_path).sax) == 2


# --------------------------------------------------------------------------- row 7: the message names the file


def test_3d_sa_where_a_4d_cine_is_expected_names_sa_not_the_sidecar(tmp_path):
    folder = write_ukbb_study(make_study(n_frames=6, n_sax=3, labelled=(0, 3), lax_views=()), tmp_path / "uk")
    sa = read_nifti(folder / "sa.nii.gz")
    sa.array, sa.phases, sa.trigger_times_s = sa.array[:1], sa.phases[:1], None
    write_nifti(sa, folder / "sa.nii.gz")
    with pytest.raises(CineStudyError) as info:
        read_study(folder)
    assert_names_file(info.value, folder / "sa.nii.gz")
    assert "4D cine" in str(info.value)
    (problem,) = scan_study(entry_for(folder)).problems
    assert problem.startswith(str(folder / "sa.nii.gz")) and "4D cine" in problem


@pytest.mark.parametrize("layout", ["ukbb", "acdc"])
def test_unknown_label_value_names_the_label_file_and_the_value(tmp_path, layout):
    study = make_study(n_frames=6, n_sax=3, labelled=(0, 3), lax_views=())
    if layout == "ukbb":
        folder = write_ukbb_study(study, tmp_path / "uk")
        label_path, convention = folder / "seg_sa.nii.gz", "product"
    else:
        folder = write_acdc_study(study, tmp_path / "patient001", patient="patient001")
        label_path, convention = sorted(folder.glob("*_gt.nii.gz"))[0], "acdc"
    labels = read_nifti(label_path)
    labels.array[0, 0, 0, 0] = 7
    write_nifti(labels, label_path, labels=True, label_convention=convention)
    with pytest.raises(InputFileError) as info:
        read_study(folder)
    assert_names_file(info.value, label_path)
    assert "[7]" in str(info.value)
    problems = scan_study(entry_for(folder)).problems
    assert len(problems) == 1 and problems[0].startswith(str(label_path)) and "[7]" in problems[0]
    assert f"the {convention} convention" in problems[0]


# --------------------------------------------------------------------------- info: not a folder, not a study


def test_device_and_regular_file_paths_are_refused_by_the_io_layer(tmp_path):
    for path in (os.devnull, tmp_path / "notes.txt"):
        if str(path).endswith(".txt"):
            path.write_text("not a study")
        with pytest.raises(CineStudyError) as info:
            detect_layout(path)
        assert str(info.value).startswith(str(path))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(CineStudyError) as info:
        read_study(fifo)
    assert str(info.value).startswith(str(fifo))
    with pytest.raises(CineStudyError) as info:
        read_ukbb_study(tmp_path / "notes.txt")
    assert_names_file(info.value, tmp_path / "notes.txt")
    assert "not a folder" in str(info.value)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_label_reads_default_to_the_known_convention_values(tmp_path, suffix):
    """``labels=True`` without ``allowed_labels`` (as most callers read) refuses values outside 0..3."""
    from CardiacMotionAtlasLib.io.itk_images import read_itk_image, write_itk_image
    from io_helpers import image_sequence

    image = image_sequence((1, 2, 4, 5), integer=True)
    image.array = (np.arange(image.array.size).reshape(image.array.shape) % 4).astype(np.uint8)
    image.array[0, 1, 2, 3] = 7
    write, read = (write_nifti, read_nifti) if suffix == ".nii.gz" else (write_itk_image, read_itk_image)
    path = write(image, tmp_path / f"seg{suffix}", labels=True)
    with pytest.raises(InputFileError) as info:
        read(path, labels=True)
    assert_names_file(info.value, path)
    assert "[7]" in str(info.value)
    assert read(path, labels=True, allowed_labels=None).array.max() == 7
