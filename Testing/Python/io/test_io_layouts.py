"""Study layouts: UK Biobank writer/reader round trip, ACDC and M&Ms folders built from synthetic arrays,
layout detection and study-level errors."""

import json

import nibabel as nib
import numpy as np
import pytest

from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError, CineStudyError, InputFileError
from CardiacMotionAtlasLib.io.dicom import write_dicom_cine
from CardiacMotionAtlasLib.io.layout_acdc import read_acdc_study
from CardiacMotionAtlasLib.io.layout_ukbb import read_ukbb_study, write_ukbb_study
from CardiacMotionAtlasLib.io.layouts import detect_layout, read_study
from CardiacMotionAtlasLib.io.nifti import write_nifti
from io_helpers import GEOMETRY_TOL, assert_names_file, files_in, make_study, oblique


def _assert_same_study(back, study):
    assert back.subject_id == study.subject_id
    assert (back.ed_frame, back.es_frame) == (study.ed_frame, study.es_frame)
    assert back.cycle_length_s == pytest.approx(study.cycle_length_s)
    assert [(s.view, s.slice_index) for s in back.slices] == [(s.view, s.slice_index) for s in study.slices]
    for got, want in zip(back.slices, study.slices):
        np.testing.assert_array_equal(got.image.array, want.image.array)
        assert got.image.array.dtype == want.image.array.dtype
        np.testing.assert_allclose(got.image.ijk_to_ras, want.image.ijk_to_ras, atol=GEOMETRY_TOL)
        np.testing.assert_allclose(got.image.phases, want.image.phases)
        np.testing.assert_allclose(got.image.trigger_times_s, want.image.trigger_times_s)
        assert got.labelled_frames == want.labelled_frames
        if want.labels is None:
            assert got.labels is None
        else:
            np.testing.assert_array_equal(got.labels.array, want.labels.array)
            np.testing.assert_allclose(got.labels.ijk_to_ras, want.image.ijk_to_ras, atol=GEOMETRY_TOL)


@pytest.mark.parametrize("flipped", [False, True])
def test_ukbb_round_trip(tmp_path, flipped):
    study = make_study(flipped=flipped)
    write_ukbb_study(study, tmp_path)
    assert files_in(tmp_path) == sorted([
        "sa.nii.gz", "seg_sa.nii.gz", "seg_sa_ED.nii.gz", "seg_sa_ES.nii.gz",
        "la_2ch.nii.gz", "seg_la_2ch.nii.gz", "seg_la_2ch_ED.nii.gz", "seg_la_2ch_ES.nii.gz",
        "la_4ch.nii.gz", "seg_la_4ch.nii.gz", "seg_la_4ch_ED.nii.gz", "seg_la_4ch_ES.nii.gz", "study.json"])
    _assert_same_study(read_ukbb_study(tmp_path), study)


def test_ukbb_files_have_the_ukbb_shapes(tmp_path):
    study = make_study(n_frames=6, n_sax=4, ny=10, nx=12)
    write_ukbb_study(study, tmp_path)
    assert nib.load(str(tmp_path / "sa.nii.gz")).shape == (12, 10, 4, 6)  # (x, y, z, t)
    assert nib.load(str(tmp_path / "la_4ch.nii.gz")).shape == (11, 12, 1, 6)
    seg = nib.load(str(tmp_path / "seg_sa_ED.nii.gz"))
    assert seg.shape == (12, 10, 4) and seg.get_data_dtype() == np.uint8
    # slice k of the stack has its origin at stack voxel (0, 0, k)
    affine = nib.load(str(tmp_path / "sa.nii.gz")).affine
    for k, s in enumerate(study.sax):
        np.testing.assert_allclose(affine @ [0, 0, k, 1], np.append(s.image.origin, 1), atol=GEOMETRY_TOL)


def test_ukbb_without_sidecar_uses_ukbb_defaults(tmp_path):
    study = make_study(labelled=[0, 3])
    write_ukbb_study(study, tmp_path)
    (tmp_path / "study.json").unlink()
    (tmp_path / "seg_sa.nii.gz").unlink()
    for view in ("2ch", "4ch"):
        (tmp_path / f"seg_la_{view}.nii.gz").unlink()
    # ES is found from an sa_ES.nii.gz image frame, as the UKBB pipeline leaves it
    sa = nib.load(str(tmp_path / "sa.nii.gz"))
    nib.save(nib.Nifti1Image(np.asarray(sa.dataobj)[..., 3], sa.affine), str(tmp_path / "sa_ES.nii.gz"))
    back = read_ukbb_study(tmp_path)
    assert (back.ed_frame, back.es_frame) == (0, 3)
    assert back.subject_id == tmp_path.name
    assert back.sax[0].labelled_frames == [0, 3]
    np.testing.assert_array_equal(back.sax[2].labels.array[3], study.sax[2].labels.array[3])
    np.testing.assert_allclose(back.sax[1].image.phases, np.arange(6) / 6)


def test_ukbb_es_segmentation_without_known_es_frame(tmp_path):
    write_ukbb_study(make_study(), tmp_path)
    (tmp_path / "study.json").unlink()
    (tmp_path / "seg_sa.nii.gz").unlink()
    with pytest.raises(CineStudyError) as info:
        read_ukbb_study(tmp_path)
    assert_names_file(info.value, tmp_path / "seg_sa_ES.nii.gz")


def test_ukbb_missing_sax(tmp_path):
    write_ukbb_study(make_study(), tmp_path)
    (tmp_path / "sa.nii.gz").unlink()
    with pytest.raises(CineStudyError) as info:
        read_study(tmp_path)
    assert_names_file(info.value, tmp_path / "sa.nii.gz")
    assert "missing" in str(info.value)


def test_ukbb_lax_frame_count_mismatch(tmp_path):
    study = make_study(n_frames=6)
    write_ukbb_study(study, tmp_path)
    lax = study.view("4CH")[0].image
    short = type(lax)(lax.array[:3], lax.ijk_to_ras)
    write_nifti(short, tmp_path / "la_4ch.nii.gz")
    with pytest.raises(CineStudyError) as info:
        read_ukbb_study(tmp_path)
    assert str(info.value) == f"{tmp_path / 'la_4ch.nii.gz'}: 3 time frames, expected 6"


def test_ukbb_segmentation_on_another_grid(tmp_path):
    write_ukbb_study(make_study(), tmp_path)
    seg = nib.load(str(tmp_path / "seg_sa.nii.gz"))
    shifted = seg.affine.copy()
    shifted[:3, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asarray(seg.dataobj), shifted), str(tmp_path / "seg_sa.nii.gz"))
    with pytest.raises(CineStudyError) as info:
        read_ukbb_study(tmp_path)
    assert_names_file(info.value, tmp_path / "seg_sa.nii.gz")
    assert "geometry" in str(info.value)


def test_ukbb_invalid_sidecar(tmp_path):
    write_ukbb_study(make_study(), tmp_path)
    (tmp_path / "study.json").write_text(json.dumps({"es_frame": 99}))
    with pytest.raises(CineStudyError) as info:
        read_ukbb_study(tmp_path)
    assert_names_file(info.value, tmp_path / "study.json")
    (tmp_path / "study.json").write_text("{not json")
    with pytest.raises(CineStudyError) as info:
        read_ukbb_study(tmp_path)
    assert_names_file(info.value, tmp_path / "study.json")


def test_ukbb_writer_refuses_unstackable_sax(tmp_path):
    study = make_study()
    moved = study.sax[2].image
    moved.ijk_to_ras = moved.ijk_to_ras.copy()
    moved.ijk_to_ras[:3, 3] += [3.0, 0.0, 0.0]  # breaks the equal spacing along the normal
    with pytest.raises(CardiacMotionAtlasError):
        write_ukbb_study(study, tmp_path / "out")
    assert not (tmp_path / "out" / "sa.nii.gz").exists()


# --------------------------------------------------------------------------- ACDC / M&Ms


def _acdc_folder(folder, n_frames=6, ed=1, es=4, nz=3):
    """An ACDC patient folder from synthetic arrays (1-based ED/ES; ACDC labels 1 RV, 2 myo, 3 LV)."""
    rng = np.random.default_rng(9)
    folder.mkdir(parents=True, exist_ok=True)
    affine = oblique(spacing=(1.5, 1.5, 10.0))
    cine = rng.normal(100, 10, size=(8, 9, nz, n_frames)).astype(np.float32)
    nib.save(nib.Nifti1Image(cine, affine), str(folder / "patient042_4d.nii.gz"))
    gts = {}
    for frame in (ed, es):
        gt = rng.integers(0, 4, size=(8, 9, nz)).astype(np.uint8)
        gts[frame] = gt
        nib.save(nib.Nifti1Image(cine[..., frame - 1], affine), str(folder / f"patient042_frame{frame:02d}.nii.gz"))
        nib.save(nib.Nifti1Image(gt, affine), str(folder / f"patient042_frame{frame:02d}_gt.nii.gz"))
    info = f"ED: {ed}\nES: {es}\nGroup: NOR\nHeight: 180.0\nNbFrame: {n_frames}\nWeight: 70.0\n"
    (folder / "Info.cfg").write_text(info)
    return cine, gts, affine


def test_acdc_study(tmp_path):
    cine, gts, affine = _acdc_folder(tmp_path / "patient042")
    assert detect_layout(tmp_path / "patient042") == "acdc"
    study = read_study(tmp_path / "patient042")
    assert study.subject_id == "patient042"
    assert (study.ed_frame, study.es_frame) == (0, 3)
    assert len(study.sax) == 3 and study.n_frames == 6
    for k, s in enumerate(study.sax):
        np.testing.assert_allclose(s.image.origin, (affine @ [0, 0, k, 1])[:3], atol=GEOMETRY_TOL)
        np.testing.assert_allclose(s.image.ijk_to_ras[:3, :2], affine[:3, :2], atol=GEOMETRY_TOL)
        np.testing.assert_array_equal(s.image.array[:, 0], np.transpose(cine[:, :, k, :], (2, 1, 0)))
        assert s.labelled_frames == [0, 3]
        acdc = gts[1][:, :, k].T
        project = s.labels.array[0, 0]
        assert np.all(project[acdc == 1] == 3)  # RV
        assert np.all(project[acdc == 2] == 2)  # myocardium
        assert np.all(project[acdc == 3] == 1)  # LV blood pool
        assert np.all(project[acdc == 0] == 0)


def test_acdc_errors(tmp_path):
    folder = tmp_path / "patient042"
    _acdc_folder(folder)
    (folder / "Info.cfg").write_text("ED: 1\nES: 4\nNbFrame: 30\n")
    with pytest.raises(CineStudyError) as info:
        read_acdc_study(folder)
    assert str(info.value) == f"{folder / 'patient042_4d.nii.gz'}: 6 time frames, expected 30"
    (folder / "Info.cfg").write_text("ED: 1\nES: 9\n")
    with pytest.raises(CineStudyError) as info:
        read_acdc_study(folder)
    assert_names_file(info.value, folder / "Info.cfg")
    (folder / "Info.cfg").write_text("ED: 1\nES: 4\n")
    gt = nib.load(str(folder / "patient042_frame04_gt.nii.gz"))
    nib.save(gt, str(folder / "patient042_frame07_gt.nii.gz"))
    with pytest.raises(CineStudyError) as info:
        read_acdc_study(folder)
    assert_names_file(info.value, folder / "patient042_frame07_gt.nii.gz")
    for path in folder.glob("*_4d.nii.gz"):
        path.unlink()
    with pytest.raises(CineStudyError) as info:
        read_study(folder)
    assert "missing" in str(info.value)


def test_mnms_study(tmp_path):
    rng = np.random.default_rng(4)
    folder = tmp_path / "A0S9V9"
    folder.mkdir()
    affine = oblique()
    cine = rng.normal(size=(8, 9, 2, 5)).astype(np.float32)
    nib.save(nib.Nifti1Image(cine, affine), str(folder / "A0S9V9_sa.nii.gz"))
    gt = np.zeros((8, 9, 2, 5), dtype=np.uint8)
    gt[2:6, 2:6, :, 0] = 1  # big LV at frame 0 (ED)
    gt[3:5, 3:5, :, 3] = 1  # small LV at frame 3 (ES)
    gt[0, 0, 0, 3] = 3
    nib.save(nib.Nifti1Image(gt, affine), str(folder / "A0S9V9_sa_gt.nii.gz"))
    assert detect_layout(folder) == "mnms"
    study = read_study(folder)
    assert (study.ed_frame, study.es_frame) == (0, 3)
    assert study.sax[0].labelled_frames == [0, 3]
    assert study.sax[0].labels.array[3, 0, 0, 0] == 3  # labels kept as they are (same convention)


def test_read_study_detects_dicom_and_single_stack(tmp_path):
    study = make_study(n_frames=3, n_sax=2, integer=True, labelled=None, lax_views=())
    for s in study.slices:
        write_dicom_cine(s, tmp_path / "dicom", series_number=s.slice_index + 1)
    assert detect_layout(tmp_path / "dicom") == "dicom"
    assert len(read_study(tmp_path / "dicom").sax) == 2
    write_ukbb_study(study, tmp_path / "ukbb")
    stack = read_study(tmp_path / "ukbb" / "sa.nii.gz")
    assert detect_layout(tmp_path / "ukbb" / "sa.nii.gz") == "stack"
    for got, want in zip(stack.sax, study.sax):
        np.testing.assert_allclose(got.image.origin, want.image.origin, atol=GEOMETRY_TOL)


def test_read_study_unknown_layout(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(CineStudyError) as info:
        read_study(tmp_path)
    assert_names_file(info.value, tmp_path)
    with pytest.raises(CineStudyError) as info:
        read_study(tmp_path / "absent")
    assert "does not exist" in str(info.value)


def test_ukbb_empty_or_foreign_label_maps_are_refused(tmp_path):
    write_ukbb_study(make_study(), tmp_path)
    (tmp_path / "seg_sa.nii.gz").unlink()
    seg_path = tmp_path / "seg_sa_ED.nii.gz"
    seg = nib.load(str(seg_path))
    nib.save(nib.Nifti1Image(np.zeros(seg.shape, np.uint8), seg.affine), str(seg_path))
    with pytest.raises(InputFileError) as info:
        read_ukbb_study(tmp_path)
    assert_names_file(info.value, seg_path)
    assert "empty" in str(info.value)
    nib.save(nib.Nifti1Image(np.full(seg.shape, 4, np.uint8), seg.affine), str(seg_path))
    with pytest.raises(InputFileError) as info:
        read_ukbb_study(tmp_path)
    assert "[4]" in str(info.value)
