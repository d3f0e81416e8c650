"""Background runs of the real CLI (``python -m CardiacMotionAtlasLib.cli.main``): progress, blocking
mode, cancel (process tree killed, nothing complete left, scene untouched), failures."""

from __future__ import annotations

import os
import sys
import time

import pytest

from mrml_helpers import require_slicer_core

require_slicer_core()

from CardiacMotionAtlasLib.mrml import CardiacMotionAtlasLogic, run_cli_in_background  # noqa: E402
from CardiacMotionAtlasLib.mrml.background import cli_command  # noqa: E402
from CardiacMotionAtlasLib.phantom.cohort import subject_is_complete  # noqa: E402

PHANTOM_ARGS = ["phantom", "--tiny", "--subjects", "1", "--no-ct"]


def test_command_line_adds_progress_lines_once():
    assert cli_command(["phantom", "--out", "x"], "py")[-5:] == ["phantom", "--out", "x", "--progress", "lines"]
    assert cli_command(["phantom", "--progress", "none"], "py")[-2:] == ["--progress", "none"]
    assert cli_command(["info", "s"], "py")[-2:] == ["info", "s"]  # info has no --progress option
    assert cli_command(["demo"], "py")[:3] == ["py", "-m", "CardiacMotionAtlasLib.cli.main"]


def test_blocking_run_reports_increasing_progress_to_one(tmp_path):
    fractions, done = [], []
    run = run_cli_in_background(PHANTOM_ARGS + ["--out", "cohort"], lambda f, m: fractions.append(f), done.append,
                                wait=True, work_dir=tmp_path, python_executable=sys.executable)
    result = run.result
    assert result.ok, result.error_message
    assert done == [result] and not run.is_running
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert all(b > a for a, b in zip(fractions, fractions[1:]))
    subjects = [p for p in (tmp_path / "cohort").iterdir() if p.is_dir()]
    assert len(subjects) == 1 and subject_is_complete(subjects[0])  # relative --out lands in the work folder
    assert any("wrote 1 subjects" in line for line in result.output)


def test_background_cohort_loads_into_the_scene_when_complete(scene):
    logic = CardiacMotionAtlasLogic()
    fractions = []
    cohort = logic.generate_phantom_cohort(scene, subjects=1, tiny=True, on_progress=lambda f, m: fractions.append(f),
                                           wait=False, dispatch="poll")
    before = scene.GetNumberOfNodes()
    deadline = time.monotonic() + 120
    while not cohort.run.finished:
        assert time.monotonic() < deadline
        cohort.run.dispatch_pending()  # what the module's QTimer does, in the GUI thread
        time.sleep(0.05)
    assert cohort.result.ok, cohort.result.error_message
    assert fractions[-1] == 1.0
    assert len(cohort.loaded) == 1 and scene.GetNumberOfNodes() > before
    assert cohort.loaded[0].browser.GetScene() is scene
    cohort.run.cleanup()
    assert not cohort.run.work_dir.exists()


def test_cancel_kills_the_process_tree_and_changes_nothing(scene):
    logic = CardiacMotionAtlasLogic()
    fractions, finished = [], []
    nodes_before = scene.GetNumberOfNodes()
    cohort = logic.generate_phantom_cohort(scene, subjects=1, tiny=True, on_progress=lambda f, m: fractions.append(f),
                                           on_done=finished.append, wait=False, dispatch="poll")
    run = cohort.run
    deadline = time.monotonic() + 60
    while not fractions:  # the child started its cohort loop (first PROGRESS line)
        assert time.monotonic() < deadline and run.is_running, run.output
        run.dispatch_pending()
        time.sleep(0.01)
    group = os.getpgid(run.pid) if os.name != "nt" else None
    run.cancel()
    result = run.wait(timeout=30)
    assert result is not None and result.cancelled and not result.ok
    assert finished == [cohort] and cohort.loaded == []
    assert fractions == [0.0]
    assert scene.GetNumberOfNodes() == nodes_before
    out = run.work_dir / "cohort"
    assert not out.exists() or not any(subject_is_complete(p) for p in out.iterdir())
    if group is not None:
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)  # no process of the tree is left
    run.cleanup()


def test_failing_command_reports_its_error(tmp_path):
    done = []
    run = run_cli_in_background(["info", "no_such_study"], on_done=done.append, work_dir=tmp_path,
                                python_executable=sys.executable)
    result = run.wait(timeout=60)
    assert result is not None and done == [result]
    assert result.returncode == 2 and not result.cancelled
    assert "no_such_study" in result.error_message and "does not exist" in result.error_message
