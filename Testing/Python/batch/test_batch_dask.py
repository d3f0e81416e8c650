"""The batch on a real 2-worker Dask LocalCluster: a cohort of 8 subjects plus a corrupt and a missing
one through the CLI; a worker killed mid-task (retried by Dask, or failed and redone by a rerun) leaves
no partial output and no duplicate; the atlas-fit and nisf pipelines on tiny trained models."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import cloudpickle
import pytest
import torch

from CardiacMotionAtlasLib.batch import (
    BatchError,
    Pipeline,
    completed_subjects,
    manifest_from_folder,
    read_record,
    run_batch,
    write_manifest,
)
from CardiacMotionAtlasLib.batch.completion import STAGING_DIR, SUBJECTS_DIR
from CardiacMotionAtlasLib.batch.manifest import ManifestEntry
from CardiacMotionAtlasLib.batch.pipelines import run_indices
from CardiacMotionAtlasLib.cli import batch_cmd

# the fault-injecting pipelines below travel to the worker processes by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _summary(path: Path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _assert_clean(out: Path, subjects):
    """Every listed subject complete exactly once, no staging leftovers, no folder without its record."""
    folders = sorted(p.name for p in (out / SUBJECTS_DIR).iterdir())
    assert folders == sorted(subjects)
    assert all(read_record(out, s) is not None for s in subjects)
    staging = out / STAGING_DIR
    assert not staging.exists() or not any(staging.iterdir())


@pytest.fixture(scope="module")
def cluster():
    """One 2-worker LocalCluster (worker processes, one thread each) shared by the tests of this module."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local:
        with Client(local) as client:
            yield client


def test_cli_batch_cohort_with_corrupt_and_missing_subjects(cohort_copy, tmp_path, capsys, cluster):
    (cohort_copy / "phantom005" / "sa.nii.gz").write_bytes(b"\x1f\x8b truncated gzip")  # corrupt image
    entries = manifest_from_folder(cohort_copy) + [ManifestEntry("ghost", tmp_path / "no_such_study")]
    manifest = write_manifest(tmp_path / "cohort.csv", entries)
    out = tmp_path / "out"
    parser = argparse.ArgumentParser()
    batch_cmd.add_arguments(parser)
    args = parser.parse_args(["--manifest", str(manifest), "--pipeline", "indices", "--out", str(out),
                              "--scheduler", cluster.scheduler.address, "--progress", "lines"])
    assert batch_cmd.run(args) == 1  # some subjects failed, the others went on
    captured = capsys.readouterr()
    assert "PROGRESS 1.000000 batch indices: 9/9" in captured.out
    assert "7 done, 0 skipped" in captured.out and "2 failed" in captured.out
    assert "phantom005" in captured.err and "sa.nii.gz" in captured.err
    rows = {row["subject"]: row for row in _summary(out / "summary.csv")}
    assert len(rows) == 9
    assert rows["phantom005"]["status"] == "failed" and "sa.nii.gz" in rows["phantom005"]["error"]
    assert rows["ghost"]["status"] == "failed" and "no_such_study" in rows["ghost"]["error"]
    done = [s for s, row in rows.items() if row["status"] == "done"]
    assert len(done) == 7 and all(20 < float(rows[s]["LVEF"]) < 90 for s in done)
    assert all(float(rows[s]["duration_s"]) > 0 for s in done)
    _assert_clean(out, done)

    # repair the corrupt subject and rerun: finished subjects are skipped, the repaired one is done
    (cohort_copy / "phantom005" / "sa.nii.gz").unlink()
    import shutil
    from CardiacMotionAtlasLib.phantom.cohort import CohortConfig, cohort_hearts, write_subject

    config = replace(CohortConfig.tiny(8), ct=None)
    shutil.rmtree(cohort_copy / "phantom005")
    write_subject(cohort_hearts(config)[5], cohort_copy / "phantom005", config)
    records = {s: (out / SUBJECTS_DIR / s / "_complete.json").stat().st_mtime_ns for s in done}
    assert batch_cmd.run(args) == 1  # the ghost still fails
    rows = {row["subject"]: row for row in _summary(out / "summary.csv")}
    assert [rows[s]["status"] for s in done] == ["skipped"] * 7
    assert rows["phantom005"]["status"] == "done" and rows["ghost"]["status"] == "failed"
    assert rows["phantom001"]["LVEF"] != "" and float(rows["phantom001"]["duration_s"]) > 0  # from the record
    assert {s: (out / SUBJECTS_DIR / s / "_complete.json").stat().st_mtime_ns for s in done} == records
    _assert_clean(out, done + ["phantom005"])


def _kill_worker_once(study: Path, out: Path, options: dict) -> dict:
    """``indices``, but the first attempt at phantom002 writes a partial output and kills its worker."""
    marker = Path(options["marker"])
    if study.name == "phantom002" and not marker.exists():
        (out / "indices.json").write_text("{partial")
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return run_indices(study, out, {})


def _kill_pipeline(marker: Path) -> Pipeline:
    from CardiacMotionAtlasLib.batch.pipelines import OptionSpec

    return Pipeline("indices", _kill_worker_once, (OptionSpec("marker", "str", str(marker)),))


def test_worker_killed_mid_task_is_retried_without_partial_output(cohort8, tmp_path, cluster):
    marker = tmp_path / "killed_pid"
    out = tmp_path / "out"
    entries = manifest_from_folder(cohort8)
    cluster.wait_for_workers(2, timeout=60)
    result = run_batch(entries, _kill_pipeline(marker), out, client=cluster)
    assert marker.exists(), "the worker was not killed"
    assert result.count("done") == 8, [(o.subject, o.error) for o in result.failed]
    record = read_record(out, "phantom002")
    assert record["pid"] != int(marker.read_text())  # finished by another (or a restarted) worker process
    assert json.loads((out / SUBJECTS_DIR / "phantom002" / "indices.json").read_text())["subject"] == "phantom002"
    _assert_clean(out, [e.subject for e in entries])
    again = run_batch(entries, _kill_pipeline(marker), out, n_workers=2, processes=False)
    assert again.count("skipped") == 8


def test_killed_worker_fails_subject_then_rerun_completes(cohort8, tmp_path, cluster):
    marker = tmp_path / "killed_pid"
    out = tmp_path / "out"
    entries = manifest_from_folder(cohort8)
    cluster.wait_for_workers(2, timeout=60)
    scheduler = cluster.cluster.scheduler
    allowed, scheduler.allowed_failures = scheduler.allowed_failures, 0  # no retry: the run records the loss
    try:
        first = run_batch(entries, _kill_pipeline(marker), out, client=cluster)
    finally:
        scheduler.allowed_failures = allowed
    outcome = {o.subject: o for o in first.outcomes}
    assert outcome["phantom002"].status == "failed" and "KilledWorker" in outcome["phantom002"].error
    done = [o.subject for o in first.outcomes if o.status == "done"]
    assert len(done) >= 5  # tasks queued on the killed worker may fail with it; the others finish
    _assert_clean(out, done)  # the killed attempt's partial output is gone
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker
    second = run_batch(entries, _kill_pipeline(marker), out, client=cluster)
    assert second.count("failed") == 0 and second.count("skipped") == len(done)
    assert second.count("done") == 8 - len(done)
    assert completed_subjects(out) == sorted(e.subject for e in entries)
    _assert_clean(out, [e.subject for e in entries])


@pytest.fixture(scope="module")
def tiny_models(cohort8, tmp_path_factory):
    """A 4-step atlas on two subjects and a 3-step NISF++ on one: enough to run the pipelines end to end."""
    from CardiacMotionAtlasLib.atlas.config import AtlasConfig, SamplingConfig
    from CardiacMotionAtlasLib.atlas.inputs import subject_from_label_input
    from CardiacMotionAtlasLib.atlas.train import train_atlas
    from CardiacMotionAtlasLib.io.layouts import read_study
    from CardiacMotionAtlasLib.nisf import NISFConfig, train_nisf

    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("models")
    config = replace(AtlasConfig.tiny(), steps=4, template_warmup_steps=2, sampling=SamplingConfig(samples_per_frame=600))
    subjects = [subject_from_label_input(cohort8 / f"phantom00{i}", config.sampling, seed=i) for i in range(2)]
    train_atlas(subjects, config, device="cpu", checkpoint_path=folder / "atlas.pt")
    nisf_config = NISFConfig.tiny()
    nisf_config.steps = 3
    train_nisf([read_study(cohort8 / "phantom000")], nisf_config, checkpoint_path=folder / "nisf.pt", device="cpu")
    return folder


def test_atlas_fit_and_nisf_pipelines(cohort8, tiny_models, tmp_path):
    entries = [ManifestEntry("phantom003", cohort8 / "phantom003", {"setting": "all", "preset": "tiny"}),
               ManifestEntry("phantom004", cohort8 / "phantom004", {"setting": "ed"})]
    result = run_batch(entries, "atlas-fit", tmp_path / "atlas", processes=False,
                       options={"model": str(tiny_models / "atlas.pt"), "steps": "3", "resolution": "16",
                                "tracking_steps": "4", "phases": "4"})
    assert result.count("done") == 2, [o.error for o in result.failed]
    folder = tmp_path / "atlas" / SUBJECTS_DIR / "phantom004"
    assert (folder / "phantom004_codes.pt").is_file() and len(list((folder / "meshes").glob("*.vtp"))) == 4
    assert (folder / "volume_curve.json").is_file() and len(list((folder / "template").glob("*.vtp"))) == 4
    assert json.loads((folder / "_complete.json").read_text())["options"]["setting"] == "ed"
    assert all(o.results["sdf_error_mm"] > 0 for o in result.outcomes)
    # sizes: the manifest's preset, else the atlas' own (this atlas' sampling matches none: the default's)
    presets = {s: json.loads((tmp_path / "atlas" / SUBJECTS_DIR / s / "volume_curve.json").read_text())["preset"]
               for s in ("phantom003", "phantom004")}
    assert presets == {"phantom003": "tiny", "phantom004": "default"}

    with pytest.raises(BatchError, match="column\\(s\\) \\['preset', 'setting'\\] are not options of pipeline 'nisf'"):
        run_batch(entries, "nisf", tmp_path / "nisf", options={"model": str(tiny_models / "nisf.pt")})
    entries = [ManifestEntry("phantom003", cohort8 / "phantom003")]
    result = run_batch(entries, "nisf", tmp_path / "nisf", processes=False,
                       options={"model": str(tiny_models / "nisf.pt"), "steps": "2", "spacing": "6", "phases": "3"})
    assert result.count("done") == 1, [o.error for o in result.failed]
    folder = tmp_path / "nisf" / SUBJECTS_DIR / "phantom003"
    assert {"labels.nii.gz", "intensity.nii.gz", "slices.json", "subject_fit.pt"} <= {p.name for p in folder.iterdir()}
    assert "fit_loss" in result.outcomes[0].results


def _half_trained_copy(model: Path, folder: Path) -> Path:
    """The tiny atlas re-saved as a training's in-progress file (step 2 of 4, marked incomplete)."""
    from CardiacMotionAtlasLib.training.checkpoint import load_checkpoint, save_checkpoint

    done = load_checkpoint(model, expected_kind="atlas")
    return save_checkpoint(folder / "atlas.partial.pt", model_state=done.model_state, config=done.config, step=2,
                           total_steps=4, extra=done.extra, kind="atlas", complete=False)


def test_allow_incomplete_reaches_remote_workers(cohort8, tiny_models, tmp_path, cluster, monkeypatch):
    """The caller's consent to a half-trained model travels with each task: worker processes started
    before it was given (a remote cluster: neither the caller's context nor its environment) follow it."""
    from CardiacMotionAtlasLib.training.completeness import ALLOW_INCOMPLETE_ENV

    monkeypatch.delenv(ALLOW_INCOMPLETE_ENV, raising=False)
    partial = _half_trained_copy(tiny_models / "atlas.pt", tmp_path)
    entries = [ManifestEntry("phantom005", cohort8 / "phantom005")]
    options = {"model": str(partial), "steps": "2", "resolution": "16", "tracking_steps": "4", "phases": "2",
               "preset": "tiny"}
    refused = run_batch(entries, "atlas-fit", tmp_path / "refused", client=cluster, options=options)
    assert refused.count("failed") == 1 and "incomplete model" in refused.outcomes[0].error
    allowed = run_batch(entries, "atlas-fit", tmp_path / "allowed", client=cluster, options=options,
                        allow_incomplete=True)
    assert allowed.count("done") == 1, [o.error for o in allowed.failed]
    curve = json.loads((tmp_path / "allowed" / SUBJECTS_DIR / "phantom005" / "volume_curve.json").read_text())
    assert curve["preset"] == "tiny"
