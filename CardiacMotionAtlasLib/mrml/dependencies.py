"""The library's Python requirements, from one list, checked with their versions (no Qt, no installs here).

The list is the package's own: ``[project] dependencies`` of ``pyproject.toml`` (installed next to the
package by the Slicer extension, or at the root of a source checkout), else the installed distribution's
metadata. :func:`dependency_report` checks every requirement against what is installed
(``packaging.requirements``: name, version specifier, extras, markers) and splits out ``torch``, which
inside Slicer comes from the PyTorch extension's installer (it chooses the CPU or CUDA build), never from
a plain ``pip install``. :func:`install_dependencies` installs what is missing through installer functions
that the caller passes (the Slicer module passes ``PyTorchUtils``' ``installTorch`` and
``slicer.util.pip_install``), so nothing here imports Slicer's GUI and tests can stub the installers.

Packages that Slicer builds itself (VTK, SimpleITK) have no pip metadata there: they count as installed
when they import.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .common import MRMLBridgeError

DISTRIBUTION = "CardiacMotionAtlasLib"
TORCH = "torch"
HOST_PROVIDED = {"vtk": "vtk", "simpleitk": "SimpleITK"}
"""Canonical requirement name -> import name of packages that Slicer ships without pip metadata."""


class MissingDependencyError(MRMLBridgeError, RuntimeError):
    """Python packages the library needs are missing or too old; the message is the install offer."""

    def __init__(self, report: "DependencyReport") -> None:
        super().__init__(report.offer())
        self.report = report


@dataclass
class DependencyReport:
    """What is missing: ``problems`` maps each unsatisfied requirement string to why (``not installed``,
    ``1.2 installed``); ``torch_requirement`` is the library's torch requirement."""

    torch_requirement: str
    problems: Dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def torch_missing(self) -> bool:
        return self.torch_requirement in self.problems

    @property
    def pip_requirements(self) -> List[str]:
        """The unsatisfied requirements pip installs (torch excluded)."""
        return [r for r in self.problems if r != self.torch_requirement]

    @property
    def torch_version_requirement(self) -> str:
        """The version part of the torch requirement (``>=2.1``), as PyTorchUtils' installer takes it."""
        return str(Requirement(self.torch_requirement).specifier)

    def offer(self) -> str:
        """A message saying what is missing and how to install it (shown instead of a traceback)."""
        if self.ok:
            return "All Python packages CardiacMotionAtlas needs are installed."
        lines = ["CardiacMotionAtlas needs Python packages that are missing or too old:"]
        for requirement, problem in self.problems.items():
            note = " - from the PyTorch extension (it picks the CPU or CUDA build)" if requirement == \
                self.torch_requirement else ""
            lines.append(f"  {requirement} ({problem}){note}")
        lines.append("Install them with the module's 'Install dependencies' button, or in Slicer's Python console "
                     "with slicer.util.getModuleLogic('CardiacMotionAtlas').installDependencies() "
                     "(outside Slicer: pip install " + " ".join(repr(r) for r in self.problems) + ").")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ the one list
def _pyproject_candidates() -> List[Path]:
    package = Path(__file__).resolve().parents[1]  # .../CardiacMotionAtlasLib
    return [package / "pyproject.toml", package.parent / "pyproject.toml"]


def _dependencies_from_pyproject(path: Path) -> Optional[List[str]]:
    """``[project] dependencies`` of a pyproject.toml whose project is this library, else None."""
    text = path.read_text(encoding="utf-8")
    try:
        import tomllib  # Python >= 3.11

        project = tomllib.loads(text).get("project", {})
        if project.get("name") != DISTRIBUTION:
            return None
        return [str(d) for d in project.get("dependencies", [])]
    except ImportError:  # an older Python: the dependencies array of the [project] table, by pattern
        table = re.search(r"^\[project\]\s*$(.*?)(?=^\[)", text + "\n[", re.M | re.S)
        if table is None or not re.search(rf'^name\s*=\s*"{DISTRIBUTION}"', table.group(1), re.M):
            return None
        array = re.search(r"^dependencies\s*=\s*\[(.*?)\]\s*$", table.group(1), re.M | re.S)
        return re.findall(r'"([^"]+)"', array.group(1)) if array else []


def library_requirements() -> Tuple[List[Requirement], str]:
    """The library's requirements and where they were read (a pyproject.toml path or the distribution)."""
    for path in _pyproject_candidates():
        if path.is_file():
            found = _dependencies_from_pyproject(path)
            if found is not None:
                return [Requirement(r) for r in found], str(path)
    try:
        listed = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise MRMLBridgeError(f"cannot find the requirements of {DISTRIBUTION}: no pyproject.toml at "
                              f"{', '.join(map(str, _pyproject_candidates()))} and no installed distribution")
    requirements = [Requirement(r) for r in listed]
    return [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})], \
        f"the installed {DISTRIBUTION} distribution"


# ------------------------------------------------------------------------------------------ checks
def installed_version(name: str) -> Optional[str]:
    """The installed version of distribution ``name``; packages Slicer builds itself (no metadata) give
    their module's ``__version__`` (or ``"0"`` when unknown) if they import; None when not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
    module_name = HOST_PROVIDED.get(canonicalize_name(name))
    if module_name is None or importlib.util.find_spec(module_name) is None:
        return None
    module = importlib.import_module(module_name)
    return str(getattr(module, "__version__", "0") or "0")


def requirement_problem(requirement: Requirement, _depth: int = 0) -> Optional[str]:
    """Why ``requirement`` is not satisfied here (``not installed``, ``1.2 installed``, an extra's
    package missing), or None when it is (or its marker excludes this platform)."""
    if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
        return None
    version = installed_version(requirement.name)
    if version is None:
        return "not installed"
    if requirement.specifier and not requirement.specifier.contains(version, prereleases=True):
        if not (canonicalize_name(requirement.name) in HOST_PROVIDED and version == "0"):
            return f"{version} installed"
    if _depth == 0:
        for extra in sorted(requirement.extras):
            for needed in _extra_requirements(requirement.name, extra):
                problem = requirement_problem(needed, _depth + 1)
                if problem is not None:
                    return f"[{extra}] needs {needed} ({problem})"
    return None


def _extra_requirements(name: str, extra: str) -> List[Requirement]:
    found = []
    for text in importlib.metadata.requires(name) or []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker is not None and requirement.marker.evaluate({"extra": extra}) \
                and not requirement.marker.evaluate({"extra": ""}):
            requirement.marker = None
            found.append(requirement)
    return found


def dependency_report(requirements: Optional[Sequence[Requirement]] = None) -> DependencyReport:
    """Check the library's requirements (default: :func:`library_requirements`) against what is installed."""
    if requirements is None:
        requirements, _ = library_requirements()
    torch = next((r for r in requirements if canonicalize_name(r.name) == TORCH), Requirement(TORCH))
    report = DependencyReport(str(torch))
    for requirement in requirements:
        problem = requirement_problem(requirement)
        if problem is not None:
            report.problems[str(requirement)] = problem
    return report


def install_dependencies(install_torch: Callable[[str], object], pip_install: Callable[[List[str]], object],
                         report: Optional[DependencyReport] = None,
                         recheck: Callable[[], DependencyReport] = dependency_report) -> DependencyReport:
    """Install what ``report`` (default: a fresh :func:`dependency_report`) lists: torch first through
    ``install_torch(version_requirement)`` (e.g. ``">=2.1"``; inside Slicer the PyTorch extension's
    installer, which asks the user and picks the CPU or CUDA build), then the other requirements with
    ``pip_install(requirement_strings)`` - only once torch is present, since some of them depend on it and
    pip would otherwise pull a torch build of its own. Returns the report after installing; raises
    :class:`MissingDependencyError` (the offer) when something is still missing."""
    report = report or recheck()
    if report.ok:
        return report
    if report.torch_missing:
        install_torch(report.torch_version_requirement)
        report = recheck()
    if report.torch_missing:
        raise MissingDependencyError(report)
    if report.pip_requirements:
        pip_install(report.pip_requirements)
        report = recheck()
    if not report.ok:
        raise MissingDependencyError(report)
    return report


def require_dependencies(check: Callable[[], DependencyReport] = dependency_report) -> None:
    """Raise :class:`MissingDependencyError` (whose message is the install offer) when a requirement is
    missing: called before a background run starts, so a missing torch never ends in a traceback of the
    child process."""
    report = check()
    if not report.ok:
        raise MissingDependencyError(report)


__all__ = ["DependencyReport", "MissingDependencyError", "dependency_report", "install_dependencies",
           "installed_version", "library_requirements", "require_dependencies", "requirement_problem"]
