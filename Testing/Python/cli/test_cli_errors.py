"""No traceback ever reaches a user: every command maps a library error to exit 2 with its message, and
anything unexpected to one line plus a log file (atomically written) holding the full traceback."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from CardiacMotionAtlasLib.cli import main as cli_main
from CardiacMotionAtlasLib.errors import LOG_DIR_ENV, CineStudyError

ROOT = Path(__file__).resolve().parents[3]


def _stderr_lines(captured: str):
    return [line for line in captured.splitlines() if line.strip()]


def test_info_on_a_device_file_is_refused_naming_it(capsys):
    code = cli_main.main(["info", "/dev/null"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and len(_stderr_lines(err)) == 1
    assert "/dev/null" in err and "cardiac-atlas info: error:" in err


def test_info_as_a_real_process_prints_one_line(tmp_path):
    env = {**os.environ, LOG_DIR_ENV: str(tmp_path / "logs"), "PYTHONPATH": str(ROOT)}
    missing = tmp_path / "no_such_study"
    for target in ("/dev/null", str(missing)):
        run = subprocess.run([sys.executable, "-m", "CardiacMotionAtlasLib.cli.main", "info", target], env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 2, run.stderr
        assert "Traceback" not in run.stderr and len(_stderr_lines(run.stderr)) == 1, run.stderr
        assert target in run.stderr
    assert not (tmp_path / "logs").exists()  # refusals are not crashes: no log


def _fake_commands(monkeypatch, error: BaseException):
    """Every registered command, its argument parser emptied and its run raising ``error``."""

    def run(args: argparse.Namespace) -> int:
        raise error

    fake = {name: ((lambda parser: None), run, help_text) for name, (_, _, help_text) in cli_main.COMMANDS.items()}
    monkeypatch.setattr(cli_main, "COMMANDS", fake)
    return sorted(fake)


def test_every_command_maps_a_library_error_to_exit_2_with_its_message(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    names = _fake_commands(monkeypatch, CineStudyError(tmp_path / "study", "no SAX segmentation"))
    assert {"atlas", "batch", "info", "motion", "nisf", "synth"} <= set(names)
    for name in names:
        assert cli_main.main([name]) == 2
        err = capsys.readouterr().err
        assert _stderr_lines(err) == [f"cardiac-atlas {name}: error: CineStudyError: {tmp_path / 'study'}: "
                                      "no SAX segmentation"]
    assert not (tmp_path / "logs").exists()


def test_an_unexpected_error_is_one_line_and_a_log_with_the_traceback(monkeypatch, capsys, tmp_path):
    logs = tmp_path / "logs"
    monkeypatch.setenv(LOG_DIR_ENV, str(logs))
    names = _fake_commands(monkeypatch, ValueError("setting an array element with a sequence"))
    for name in names:
        assert cli_main.main([name]) == 2
        lines = _stderr_lines(capsys.readouterr().err)
        assert len(lines) == 1 and "Traceback" not in lines[0]
        assert lines[0].startswith(f"cardiac-atlas {name}: unexpected error")
        assert "ValueError: setting an array element with a sequence" in lines[0]
        log = Path(lines[0].rsplit("full traceback in ", 1)[1])
        assert log.parent == logs and log.is_file()
        text = log.read_text()
        assert "Traceback (most recent call last)" in text and "raise error" in text and "ValueError" in text
    assert not [p for p in logs.iterdir() if p.name.startswith(".")]  # atomic: no temporary file left


def test_keyboard_interrupt_exits_130_without_traceback(monkeypatch, capsys):
    _fake_commands(monkeypatch, KeyboardInterrupt())
    assert cli_main.main(["info"]) == 130
    assert _stderr_lines(capsys.readouterr().err) == ["cardiac-atlas info: interrupted"]


def test_unwritable_log_folder_still_gives_one_line(monkeypatch, capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(LOG_DIR_ENV, str(blocker / "logs"))
    _fake_commands(monkeypatch, RuntimeError("boom"))
    assert cli_main.main(["info"]) == 2
    lines = _stderr_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "RuntimeError: boom" in lines[0] and "no log could be written" in lines[0]


def test_model_commands_take_allow_incomplete():
    parser = cli_main.build_parser()
    for argv in (["atlas", "fit", "--atlas", "a.pt", "--phantom-index", "1", "--out", "o"],
                 ["atlas", "mesh", "--atlas", "a.pt", "--out", "o"]):
        assert parser.parse_args(argv + ["--allow-incomplete"]).allow_incomplete is True
        assert parser.parse_args(argv).allow_incomplete is False
    with pytest.raises(SystemExit):
        parser.parse_args(["info", "x", "--allow-incomplete"])
