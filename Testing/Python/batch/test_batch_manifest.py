"""Manifests, pipeline options and completion records (no Dask): every bad input names the file and the
problem; a subject is complete only with its record and every listed file at its recorded size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from CardiacMotionAtlasLib.batch import BatchError, ManifestError, get_pipeline, read_manifest, read_record
from CardiacMotionAtlasLib.batch.completion import COMPLETE_RECORD, claim_output_folder, subject_folder
from CardiacMotionAtlasLib.batch.runner import process_subject
from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_manifest_reads_relative_paths_and_options(tmp_path):
    (tmp_path / "s1").mkdir()
    manifest = _write(tmp_path / "m.csv", "subject,study,setting\nA,s1,ed\nB,/abs/elsewhere,\n")
    entries = read_manifest(manifest)
    assert [e.subject for e in entries] == ["A", "B"]
    assert entries[0].study == (tmp_path / "s1").resolve()
    assert entries[0].options == {"setting": "ed"} and entries[1].options == {}  # empty cell = default
    assert entries[1].line == 3


@pytest.mark.parametrize("text, problem", [
    ("id,study\nA,x\n", "missing column 'subject'"),
    ("subject,path\nA,x\n", "missing column 'study'"),
    ("subject,study\nA,x\nA,y\n", "duplicate subject 'A'"),
    ("subject,study\n../evil,x\n", "not a safe folder name"),
    ("subject,study\nA,\n", "empty 'study'"),
    ("subject,study\n", "no subjects"),
    ("", "empty manifest"),
    ("subject,study\nA,x,extra\n", "line 2: 3 cells for 2 columns"),
])
def test_manifest_errors_name_file_and_problem(tmp_path, text, problem):
    manifest = _write(tmp_path / "bad.csv", text)
    with pytest.raises(ManifestError) as info:
        read_manifest(manifest)
    assert str(manifest) in str(info.value) and problem in str(info.value)
    assert isinstance(info.value, CardiacMotionAtlasError)


def test_manifest_missing_file_and_strict_paths(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest file"):
        read_manifest(tmp_path / "absent.csv")
    manifest = _write(tmp_path / "m.csv", "subject,study\nA,nowhere\n")
    assert len(read_manifest(manifest)) == 1  # a missing study is a per-subject failure by default
    with pytest.raises(ManifestError, match=r"m\.csv: line 2: study of 'A' does not exist"):
        read_manifest(manifest, check_paths=True)


def test_pipeline_options_are_typed_and_checked():
    atlas = get_pipeline("atlas-fit")
    values = atlas.parse_options(({"model": "/m.pt", "steps": "7"}, "cli"), ({"setting": "ed"}, "row 2"))
    assert values["steps"] == 7 and values["setting"] == "ed" and values["phases"] == 25
    with pytest.raises(BatchError, match="row 3: option 'setting' must be one of"):
        atlas.parse_options(({"model": "/m.pt"}, "cli"), ({"setting": "sometimes"}, "row 3"))
    with pytest.raises(BatchError, match="unknown option 'colour'"):
        atlas.parse_options(({"model": "/m.pt", "colour": "red"}, "cli"))
    with pytest.raises(BatchError, match="needs option"):
        atlas.parse_options(({}, "cli"))
    with pytest.raises(BatchError, match="unknown pipeline 'segment'"):
        get_pipeline("segment")


def test_output_folder_belongs_to_one_pipeline(tmp_path):
    claim_output_folder(tmp_path / "out", "indices")
    claim_output_folder(tmp_path / "out", "indices")
    with pytest.raises(BatchError, match="holds outputs of pipeline 'indices'"):
        claim_output_folder(tmp_path / "out", "nisf")


def test_completion_record_is_written_last_and_checked(cohort8, tmp_path):
    pipeline = get_pipeline("indices")
    out = tmp_path / "out"
    options = pipeline.parse_options(({}, "cli"))
    payload = process_subject("phantom000", str(cohort8 / "phantom000"), str(out), pipeline, options, 1)
    assert payload["status"] == "done" and 20 < payload["results"]["LVEF"] < 90
    folder = subject_folder(out, "phantom000")
    record = json.loads((folder / COMPLETE_RECORD).read_text())
    assert record["files"] == {"indices.json": (folder / "indices.json").stat().st_size}
    assert not any((out / ".staging").iterdir())  # the attempt's staging folder became the subject folder
    # a second attempt is a no-op
    again = process_subject("phantom000", str(cohort8 / "phantom000"), str(out), pipeline, options, 1)
    assert again["status"] == "skipped" and again["results"] == payload["results"]
    # an output that changed size (truncated) makes the subject incomplete, and a new attempt replaces it
    (folder / "indices.json").write_text("{")
    assert read_record(out, "phantom000") is None
    redo = process_subject("phantom000", str(cohort8 / "phantom000"), str(out), pipeline, options, 1)
    assert redo["status"] == "done" and read_record(out, "phantom000") is not None
    assert json.loads((folder / "indices.json").read_text())["subject"] == "phantom000"


def test_failed_subject_leaves_nothing(cohort_copy, tmp_path):
    (cohort_copy / "phantom001" / "seg_sa.nii.gz").write_bytes(b"not a nifti at all")
    pipeline = get_pipeline("indices")
    out = tmp_path / "out"
    payload = process_subject("phantom001", str(cohort_copy / "phantom001"), str(out), pipeline,
                              pipeline.parse_options(({}, "cli")), 1)
    assert payload["status"] == "failed" and "seg_sa.nii.gz" in payload["error"]
    assert not subject_folder(out, "phantom001").exists()
    assert not any((out / ".staging").iterdir())
