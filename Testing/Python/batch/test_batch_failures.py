"""A subject that fails in a cohort batch is one line in the summary: a library error's message, or for
an unexpected error its type and message plus the path of a log holding the traceback. A half-trained
model is refused for every subject, naming the file and its step count."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from CardiacMotionAtlasLib.batch import get_pipeline
from CardiacMotionAtlasLib.batch.completion import subject_folder
from CardiacMotionAtlasLib.batch.runner import CRASH_LOGS, process_subject
from CardiacMotionAtlasLib.errors import CineStudyError
from CardiacMotionAtlasLib.training import save_checkpoint


def _failing(error: BaseException):
    def function(study, out, options):
        (Path(out) / "half_written.json").write_text("{")
        raise error

    return replace(get_pipeline("indices"), function=function)


def test_unexpected_subject_failure_logs_its_traceback(cohort8, tmp_path):
    out = tmp_path / "out"
    pipeline = _failing(IndexError("index 7 is out of bounds for axis 0 with size 3"))
    payload = process_subject("phantom000", str(cohort8 / "phantom000"), str(out), pipeline,
                              pipeline.parse_options(({}, "cli")), 1)
    assert payload["status"] == "failed" and "\n" not in payload["error"]
    assert payload["error"].startswith("IndexError: index 7 is out of bounds for axis 0 with size 3 (unexpected; "
                                       "traceback in ")
    log = Path(payload["error"].rsplit("traceback in ", 1)[1].rstrip(")"))
    assert log.parent == out / CRASH_LOGS and "Traceback (most recent call last)" in log.read_text()
    assert "in function" in log.read_text() and not subject_folder(out, "phantom000").exists()


def test_library_error_is_its_message_without_a_log(cohort8, tmp_path):
    out = tmp_path / "out"
    pipeline = _failing(CineStudyError(cohort8 / "phantom000", "no SAX segmentation"))
    payload = process_subject("phantom000", str(cohort8 / "phantom000"), str(out), pipeline,
                              pipeline.parse_options(({}, "cli")), 1)
    assert payload["error"] == f"CineStudyError: {cohort8 / 'phantom000'}: no SAX segmentation"
    assert not (out / CRASH_LOGS).exists()


def test_half_trained_atlas_is_refused_for_every_subject(cohort8, tmp_path, monkeypatch):
    model = save_checkpoint(tmp_path / "atlas.partial.pt", model_state={}, config={}, step=250, total_steps=1000,
                            kind="atlas")
    pipeline = get_pipeline("atlas-fit")
    options = pipeline.parse_options(({"model": str(model), "device": "cpu"}, "cli"))
    monkeypatch.delenv("CARDIAC_ATLAS_ALLOW_INCOMPLETE", raising=False)
    payload = process_subject("phantom000", str(cohort8 / "phantom000"), str(tmp_path / "out"), pipeline, options, 1)
    assert payload["status"] == "failed"
    assert payload["error"].startswith(f"CheckpointError: {model}: incomplete model")
    assert "step 250 of 1000" in payload["error"] and "--allow-incomplete" in payload["error"]
