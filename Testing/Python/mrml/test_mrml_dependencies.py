"""The library's Python requirements come from one list (pyproject.toml) and are checked with their
versions; installing goes torch first (the PyTorch extension's installer), then pip, and only what is
missing; a background run with a package missing is refused with the install offer before it starts."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from mrml_helpers import require_slicer_core

require_slicer_core()

from CardiacMotionAtlasLib.mrml import CardiacMotionAtlasLogic  # noqa: E402
from CardiacMotionAtlasLib.mrml import dependencies  # noqa: E402
from CardiacMotionAtlasLib.mrml.dependencies import (  # noqa: E402
    DependencyReport,
    MissingDependencyError,
    dependency_report,
    install_dependencies,
    library_requirements,
    requirement_problem,
)

ROOT = Path(__file__).resolve().parents[3]


def test_requirements_are_the_pyprojects(monkeypatch):
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    requirements, source = library_requirements()
    assert [str(r) for r in requirements] == [str(Requirement(r)) for r in listed]
    assert source == str(ROOT / "pyproject.toml")
    monkeypatch.setitem(sys.modules, "tomllib", None)  # an older Python: the pattern reader agrees
    assert dependencies._dependencies_from_pyproject(ROOT / "pyproject.toml") == listed


def test_versions_and_extras_are_checked():
    assert dependency_report().ok  # the test environment has everything
    assert requirement_problem(Requirement("numpy>=1.0")) is None
    assert requirement_problem(Requirement("numpy>=999")).endswith("installed")
    assert requirement_problem(Requirement("no-such-package-cma>=1")) == "not installed"
    assert requirement_problem(Requirement("no-such-package-cma; python_version < '3'")) is None
    assert requirement_problem(Requirement("dask[distributed]>=2024.4")) is None


def _report(*missing: str) -> DependencyReport:
    return DependencyReport("torch>=2.1", {r: "not installed" for r in missing})


def test_torch_is_installed_first_then_the_rest_with_pip():
    calls = []
    reports = iter([_report("torchdiffeq>=0.2.3"), _report()])
    final = install_dependencies(lambda version: calls.append(("torch", version)),
                                 lambda requirements: calls.append(("pip", requirements)),
                                 report=_report("torch>=2.1", "torchdiffeq>=0.2.3"), recheck=lambda: next(reports))
    assert final.ok
    assert calls == [("torch", ">=2.1"), ("pip", ["torchdiffeq>=0.2.3"])]


def test_declined_torch_install_keeps_the_offer_and_skips_pip():
    calls = []
    with pytest.raises(MissingDependencyError, match="torch>=2.1 \\(not installed\\)"):
        install_dependencies(lambda version: calls.append("torch"), lambda requirements: calls.append("pip"),
                             report=_report("torch>=2.1", "torchdiffeq>=0.2.3"),
                             recheck=lambda: _report("torch>=2.1", "torchdiffeq>=0.2.3"))
    assert calls == ["torch"]  # pip would pull a torch build of its own for torchdiffeq


def test_runs_are_refused_with_the_offer_before_starting(scene, tmp_path):
    missing = _report("torch>=2.1")
    logic = CardiacMotionAtlasLogic(python_executable=sys.executable, dependency_check=lambda: missing)
    with pytest.raises(MissingDependencyError) as refused:
        logic.generate_phantom_cohort(scene, subjects=1, work_dir=tmp_path / "cohort")
    assert "PyTorch extension" in str(refused.value) and refused.value.report is missing
    assert not (tmp_path / "cohort").exists()
    with pytest.raises(MissingDependencyError):
        logic.run_cli_in_background(["phantom", "--tiny"], work_dir=tmp_path / "cli")
    assert not (tmp_path / "cli").exists()
