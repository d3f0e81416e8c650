"""A user's cohort: subject ids from study folders, duplicates, manifests, splits, and the header-only
pre-flight that reports every input problem at once."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from CardiacMotionAtlasLib.data.image_sequence import ImageSequence
from CardiacMotionAtlasLib.io.cohort import (
    CohortError,
    apply_split,
    find_studies,
    read_cohort_manifest,
    subject_id_for,
)
from CardiacMotionAtlasLib.io.cohort_scan import format_scan, raise_problems, scan_cohort, scan_study
from CardiacMotionAtlasLib.io.layout_acdc import write_acdc_study
from CardiacMotionAtlasLib.io.layout_ukbb import write_ukbb_study
from CardiacMotionAtlasLib.io.nifti import write_nifti


@pytest.fixture(scope="module")
def cohort(tiny_cine, tmp_path_factory):
    """Two ACDC patients and one UK Biobank-style study (all from one tiny phantom study)."""
    root = tmp_path_factory.mktemp("cohort")
    for name in ("patient001", "patient002"):
        write_acdc_study(tiny_cine.study, root / name)
    write_ukbb_study(tiny_cine.study, root / "1000001")
    (root / "notes").mkdir()  # not a study: skipped
    return root


def test_ids_come_from_the_study_folder(tmp_path):
    for name in ("1000001", "1000002"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "labels.nii.gz").write_bytes(b"x")
    assert subject_id_for(tmp_path / "1000001" / "labels.nii.gz") == "1000001"
    assert subject_id_for(tmp_path / "1000001") == "1000001"
    assert subject_id_for(tmp_path / "phantom003" / "ground_truth" / "labels_iso.nii.gz") == "phantom003"
    assert subject_id_for(tmp_path / "subject_17.nii.gz") == "subject_17"
    entries = find_studies([tmp_path / "1000001" / "labels.nii.gz", tmp_path / "1000002" / "labels.nii.gz"],
                           "product", bare_files_are_labels=True)
    assert [e.subject_id for e in entries] == ["1000001", "1000002"]
    assert {e.layout for e in entries} == {"labels"} and {e.label_convention for e in entries} == {"product"}


def test_duplicate_ids_are_refused_listing_the_paths(tmp_path):
    for parent in ("siteA", "siteB"):
        (tmp_path / parent / "1000001").mkdir(parents=True)
        (tmp_path / parent / "1000001" / "seg.nii.gz").write_bytes(b"x")
    paths = [tmp_path / p / "1000001" / "seg.nii.gz" for p in ("siteA", "siteB")]
    with pytest.raises(CohortError) as info:
        find_studies(paths, "product", bare_files_are_labels=True)
    message = str(info.value)
    assert "duplicate subject ids" in message and all(str(p) in message for p in paths)


def test_cohort_root_layouts_and_conventions(cohort):
    entries = find_studies([cohort])
    assert [(e.subject_id, e.layout, e.label_convention) for e in entries] == [
        ("1000001", "ukbb", "product"), ("patient001", "acdc", "acdc"), ("patient002", "acdc", "acdc")]
    with pytest.raises(CohortError, match="contradicts"):
        find_studies([cohort / "patient001"], label_convention="product")


def test_manifest_csv_and_json(cohort, tmp_path):
    csv_path = cohort / "manifest.csv"
    csv_path.write_text("subject,path,split\nA,patient001,train\nB,patient002,test\nC,1000001,\n")
    entries = read_cohort_manifest(csv_path)
    assert [(e.subject_id, e.split) for e in entries] == [("A", "train"), ("B", "test"), ("C", "train")]
    assert entries[0].path == cohort / "patient001"
    json_path = tmp_path / "m.json"
    json_path.write_text(json.dumps([{"subject_id": "X", "study": str(cohort / "patient002"), "split": "test"}]))
    assert [(e.subject_id, e.split, e.layout) for e in read_cohort_manifest(json_path)] == [("X", "test", "acdc")]
    csv_path.write_text("subject,path,split\nA,patient001,validation\n")
    with pytest.raises(CohortError) as info:
        read_cohort_manifest(csv_path)
    assert str(csv_path) in str(info.value) and "row 1" in str(info.value)
    csv_path.write_text("subject,path\nA,nowhere\n")
    with pytest.raises(CohortError, match="nowhere"):
        read_cohort_manifest(csv_path)
    csv_path.write_text("subject,path\nA,patient001\nA,patient002\n")
    with pytest.raises(CohortError, match="duplicate"):
        read_cohort_manifest(csv_path)


def test_splits(cohort):
    entries = find_studies([cohort])
    held = apply_split(entries, test_ids=["patient002"])
    assert [e.subject_id for e in held if e.split == "test"] == ["patient002"]
    with pytest.raises(CohortError, match="not in the cohort"):
        apply_split(entries, test_ids=["patient999"])
    fraction = apply_split(entries, train_fraction=0.5)
    assert [e.split for e in fraction] == ["train", "train", "test"]
    with pytest.raises(CohortError, match="no training subject"):
        apply_split(entries, test_ids=[e.subject_id for e in entries])


def test_preflight_reads_headers_not_images(cohort, monkeypatch):
    from CardiacMotionAtlasLib.io import layout_acdc, layout_ukbb, layouts, nifti

    def no_voxels(*args, **kwargs):
        raise AssertionError("the pre-flight must not read whole images")

    for module in (nifti, layout_acdc, layout_ukbb, layouts):
        monkeypatch.setattr(module, "read_nifti", no_voxels)
    monkeypatch.setattr(layouts, "read_study", no_voxels)
    scans = scan_cohort(find_studies([cohort]), needs=("ed_es_labels",))
    assert not [p for s in scans for p in s.problems]
    acdc = scans[1]
    assert (acdc.n_frames, acdc.ed_frame, acdc.es_frame, acdc.labelled_frames) == (8, 0, 3, [0, 3])
    table = format_scan(scans, "test")
    assert "patient001" in table and "acdc" in table and "0,3" in table


def test_preflight_reports_every_problem_at_once(cohort, tmp_path, tiny_cine):
    root = tmp_path / "bad"
    shutil.copytree(cohort / "patient001", root / "patient001")
    shutil.copytree(cohort / "patient002", root / "patient002")
    shutil.copytree(cohort / "1000001", root / "1000001")
    (root / "patient001" / "Info.cfg").write_text("ED: 1\nES: 4\nNbFrame: 30\n")  # inconsistent frames
    (root / "patient002" / "patient002_frame04_gt.nii.gz").unlink()  # missing labels at ES
    (root / "1000001" / "sa.nii.gz").write_bytes(b"not a nifti")  # unreadable
    scans = scan_cohort(find_studies([root]), needs=("ed_es_labels",))
    problems = {s.entry.subject_id: " ".join(s.problems) for s in scans}
    assert "NbFrame" in problems["patient001"] and "inconsistent frames" in problems["patient001"]
    assert "missing labels at ES" in problems["patient002"]
    assert str(root / "1000001" / "sa.nii.gz") in problems["1000001"]
    with pytest.raises(CohortError) as info:
        raise_problems(scans)
    assert "3 input problem(s)" in str(info.value)


def test_preflight_refuses_an_acdc_map_declared_as_the_products(tiny_cine, tmp_path):
    from CardiacMotionAtlasLib.io.cohort import entry_for
    from CardiacMotionAtlasLib.io.label_conventions import from_product

    labels = np.concatenate([s.labels.array for s in tiny_cine.study.sax], axis=1)
    path = tmp_path / "1000009" / "labels.nii.gz"
    write_nifti(ImageSequence(from_product(labels, "acdc"), np.eye(4)), path, labels=True,
                label_convention=None)  # a foreign file: no stamp of the product's writer
    wrong = scan_study(entry_for(path, "product", bare_files_are_labels=True), ("labels",))
    assert wrong.problems and "LV blood pool borders the background" in wrong.problems[0]
    right = scan_study(entry_for(path, "acdc", bare_files_are_labels=True), ("labels",))
    assert not right.problems and right.entry.subject_id == "1000009"


def test_dicom_cohort_root_and_a_study_with_series_folders(tiny_cine, tmp_path):
    from CardiacMotionAtlasLib.io.dicom import write_dicom_cine

    sax = tiny_cine.study.sax[:2]
    for patient in ("P1", "P2"):
        for s in sax:
            write_dicom_cine(s, tmp_path / "root" / patient / f"series{s.slice_index}", patient_id=patient,
                             study_uid=f"1.2.3.{patient[-1]}", series_number=s.slice_index + 1)
    entries = find_studies([tmp_path / "root"])
    assert [(e.subject_id, e.layout) for e in entries] == [("P1", "dicom"), ("P2", "dicom")]
    assert [e.subject_id for e in find_studies([tmp_path / "root" / "P1"])] == ["P1"]  # series sub-folders
