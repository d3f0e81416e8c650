"""The headless batch entry (``python -m CardiacMotionAtlasLib.mrml.batch``) with a bad model registry:
exit 2 and one line naming the file and the problem, never a traceback, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from CardiacMotionAtlasLib.errors import LOG_DIR_ENV
from CardiacMotionAtlasLib.registry import register_checkpoint

ROOT = Path(__file__).resolve().parents[3]


def _batch(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, LOG_DIR_ENV: str(tmp_path / "logs"), "PYTHONPATH": str(ROOT)}
    (tmp_path / "cohort").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "CardiacMotionAtlasLib.mrml.batch", "--input", str(tmp_path / "cohort"),
                           "--output", str(tmp_path / "out"), "--progress", "none", *extra],
                          env=env, capture_output=True, text=True, timeout=300)


def _one_line_refusal(run: subprocess.CompletedProcess, *expected: str) -> str:
    assert run.returncode == 2, (run.stdout, run.stderr)
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert "Traceback" not in run.stderr and len(lines) == 1, run.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def registries(tmp_path_factory):
    folder = tmp_path_factory.mktemp("registries")
    checkpoint = folder / "atlas.pt"
    checkpoint.write_bytes(b"weights v1")
    changed = folder / "changed.json"
    register_checkpoint(changed, "phantom-atlas", "atlas", checkpoint)
    checkpoint.write_bytes(b"weights v2, replaced after registration")
    garbage = folder / "garbage.json"
    garbage.write_text("{ this is not json")
    return {"checksum": (changed, f"{checkpoint}: checksum differs"), "garbage": (garbage, "not a JSON model registry")}


@pytest.mark.parametrize("case", ["checksum", "garbage"])
def test_bad_registry_is_one_line_exit_2(tmp_path, registries, case):
    registry, problem = registries[case]
    line = _one_line_refusal(_batch(tmp_path, "--models", str(registry)), "RegistryError", problem)
    if case == "garbage":
        assert str(registry) in line
    assert not (tmp_path / "out").exists() and not (tmp_path / "logs").exists()


def test_missing_input_folder_is_one_line_exit_2(tmp_path):
    env = {**os.environ, LOG_DIR_ENV: str(tmp_path / "logs"), "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "CardiacMotionAtlasLib.mrml.batch", "--input", str(tmp_path / "nope"),
                          "--output", str(tmp_path / "out"), "--progress", "none"],
                         env=env, capture_output=True, text=True, timeout=300)
    _one_line_refusal(run, str(tmp_path / "nope"), "does not exist")
    assert not (tmp_path / "out").exists() and not (tmp_path / "logs").exists()


def test_unexpected_error_in_the_batch_entry_is_one_line_and_a_log(tmp_path, monkeypatch, capsys):
    from CardiacMotionAtlasLib.mrml import batch

    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(batch, "process_folder", broken)
    (tmp_path / "cohort").mkdir()
    assert batch.main(["--input", str(tmp_path / "cohort"), "--output", str(tmp_path / "out"), "--progress", "none"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "ZeroDivisionError: division by zero" in lines[0]
    log = Path(lines[0].rsplit("full traceback in ", 1)[1])
    assert log.parent == tmp_path / "logs" and "in broken" in log.read_text()
