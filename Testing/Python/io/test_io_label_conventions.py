"""Label conventions at the io boundary (product, ACDC, M&Ms), the anatomy guard against a swapped
convention, and the ACDC writer (round trip through ``read_acdc_study``)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from CardiacMotionAtlasLib.data.image_sequence import ImageSequence
from CardiacMotionAtlasLib.io.label_conventions import (
    LabelConventionError,
    check_label_anatomy,
    convention_of_label_file,
    from_product,
    label_anatomy,
    to_product,
)
from CardiacMotionAtlasLib.io.layout_acdc import read_acdc_study, read_info_cfg, write_acdc_study
from CardiacMotionAtlasLib.io.layouts import detect_layout, read_study
from CardiacMotionAtlasLib.io.nifti import write_nifti


def test_tables_map_each_convention_to_the_products():
    acdc = np.array([0, 1, 2, 3], np.uint8)  # bg, RV, myocardium, LV
    np.testing.assert_array_equal(to_product(acdc, "acdc"), [0, 3, 2, 1])
    np.testing.assert_array_equal(to_product(acdc, "mnms"), [0, 1, 2, 3])  # M&Ms: 1 LV, 2 MYO, 3 RV
    np.testing.assert_array_equal(to_product(acdc, "product"), [0, 1, 2, 3])
    labels = np.random.default_rng(0).integers(0, 4, (3, 5, 6)).astype(np.uint8)
    for convention in ("product", "acdc", "mnms"):
        np.testing.assert_array_equal(to_product(from_product(labels, convention), convention), labels)
    with pytest.raises(LabelConventionError, match="unknown label convention"):
        to_product(labels, "ukbb")
    with pytest.raises(LabelConventionError, match=r"unknown label values \[4\]"):
        to_product(np.array([4]), "acdc", "x.nii.gz")


def test_a_bare_label_file_needs_its_convention(tmp_path):
    path = tmp_path / "labels.nii.gz"
    with pytest.raises(LabelConventionError) as info:
        convention_of_label_file(path)
    assert str(path) in str(info.value) and "--label-convention" in str(info.value)
    assert convention_of_label_file(path, "acdc") == "acdc"
    (tmp_path / "labels.json").write_text(json.dumps({"label_convention": "mnms"}))
    assert convention_of_label_file(path) == "mnms"
    with pytest.raises(LabelConventionError, match="contradicts labels.json"):
        convention_of_label_file(path, "acdc")
    (tmp_path / "labels.json").write_text(json.dumps({"label_convention": "ACDC?"}))
    with pytest.raises(LabelConventionError) as info:
        convention_of_label_file(path)
    assert "labels.json" in str(info.value)


def test_the_products_label_files_carry_their_convention(tmp_path):
    from CardiacMotionAtlasLib.io.label_conventions import stamped_convention

    labels = ImageSequence(np.ones((1, 2, 3, 4), np.uint8), np.eye(4))
    ours, acdc, foreign = tmp_path / "ours.nii.gz", tmp_path / "acdc.nii.gz", tmp_path / "foreign.nii.gz"
    write_nifti(labels, ours, labels=True)
    write_nifti(labels, acdc, labels=True, label_convention="acdc")
    write_nifti(labels, foreign, labels=True, label_convention=None)
    assert (stamped_convention(ours), stamped_convention(acdc), stamped_convention(foreign)) == ("product", "acdc", None)
    assert convention_of_label_file(ours) == "product" and convention_of_label_file(acdc, "acdc") == "acdc"
    with pytest.raises(LabelConventionError, match="contradicts the header"):
        convention_of_label_file(ours, "acdc")
    with pytest.raises(LabelConventionError, match="--label-convention"):
        convention_of_label_file(foreign)


def _sax_labels(study, frame):
    return np.concatenate([s.labels.array[frame] for s in study.sax], axis=0)


def test_anatomy_guard_refuses_a_swapped_map(tiny_cine):
    labels = _sax_labels(tiny_cine.study, 0)
    stats = label_anatomy(labels)
    assert stats["background_1"] < 0.1 < 0.4 < stats["background_3"]  # LV enclosed by myocardium, RV not
    check_label_anatomy(labels, "ok.nii.gz")
    with pytest.raises(LabelConventionError) as info:
        check_label_anatomy(to_product(labels, "acdc"), "swapped.nii.gz", "acdc")
    assert "swapped.nii.gz" in str(info.value) and "Check --label-convention" in str(info.value)


def test_acdc_writer_round_trip_gives_the_product_labels_back(tiny_cine, tmp_path):
    study = tiny_cine.study
    folder = write_acdc_study(study, tmp_path / "patient007", group="DCM", height_cm=181.0, weight_kg=80.5)
    ed, es = study.ed_frame + 1, study.es_frame + 1
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(["Info.cfg", "patient007_4d.nii.gz", f"patient007_frame{ed:02d}.nii.gz",
                            f"patient007_frame{ed:02d}_gt.nii.gz", f"patient007_frame{es:02d}.nii.gz",
                            f"patient007_frame{es:02d}_gt.nii.gz"])
    info = read_info_cfg(folder / "Info.cfg")
    assert info == {"ED": str(ed), "ES": str(es), "Group": "DCM", "Height": "181.0",
                    "NbFrame": str(study.n_frames), "Weight": "80.5"}
    # the file holds the ACDC convention: its label 3 is the product's LV blood pool
    gt = np.asarray(nib.load(str(folder / f"patient007_frame{ed:02d}_gt.nii.gz")).dataobj)
    product = np.transpose(_sax_labels(study, study.ed_frame), (2, 1, 0))
    assert np.array_equal(gt == 3, product == 1) and np.array_equal(gt == 1, product == 3)
    assert detect_layout(folder) == "acdc"
    back = read_acdc_study(folder)
    assert back.subject_id == "patient007" and back.metadata["label_convention"] == "acdc"
    assert (back.ed_frame, back.es_frame, back.n_frames) == (study.ed_frame, study.es_frame, study.n_frames)
    assert len(back.sax) == len(study.sax)
    for got, want in zip(back.sax, study.sax):
        assert got.labelled_frames == sorted({study.ed_frame, study.es_frame})
        for frame in (study.ed_frame, study.es_frame):
            np.testing.assert_array_equal(got.labels.array[frame], want.labels.array[frame])
        np.testing.assert_allclose(got.image.array, want.image.array, rtol=1e-6)
        np.testing.assert_allclose(got.image.origin, want.image.origin, atol=1e-3)


def test_acdc_writer_needs_es(tiny_cine, tmp_path):
    from dataclasses import replace

    from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError

    with pytest.raises(CardiacMotionAtlasError, match="no ES frame"):
        write_acdc_study(replace(tiny_cine.study, es_frame=None), tmp_path / "p")
    assert not (tmp_path / "p" / "Info.cfg").exists()


def test_ukbb_sidecar_may_name_another_convention(tiny_cine, tmp_path):
    from CardiacMotionAtlasLib.io.layout_ukbb import write_ukbb_study

    folder = write_ukbb_study(tiny_cine.study, tmp_path / "s")
    sidecar = json.loads((folder / "study.json").read_text())
    assert sidecar["label_convention"] == "product"
    seg = nib.load(str(folder / "seg_sa.nii.gz"))
    acdc = from_product(np.asarray(seg.dataobj), "acdc")
    nib.save(nib.Nifti1Image(acdc, seg.affine), str(folder / "seg_sa.nii.gz"))
    sidecar["label_convention"] = "acdc"
    (folder / "study.json").write_text(json.dumps(sidecar))
    back = read_study(folder)
    assert back.metadata["label_convention"] == "acdc"
    for got, want in zip(back.sax, tiny_cine.study.sax):
        np.testing.assert_array_equal(got.labels.array, want.labels.array)


def test_mnms_reader_records_its_convention(tmp_path):
    folder = tmp_path / "A1B2C3"
    folder.mkdir()
    labels = np.zeros((2, 3, 8, 8), np.uint8)
    labels[0, :, 2:6, 2:6] = 1
    labels[1, :, 3:5, 3:5] = 1
    write_nifti(ImageSequence(np.ones(labels.shape, np.float32), np.eye(4)), folder / "A1B2C3_sa.nii.gz")
    write_nifti(ImageSequence(labels, np.eye(4)), folder / "A1B2C3_sa_gt.nii.gz", labels=True)
    study = read_study(folder)
    assert study.metadata["label_convention"] == "mnms"
    assert study.sax[0].labels.array[0, 0, 3, 3] == 1  # M&Ms 1 = LV blood pool = the product's 1
