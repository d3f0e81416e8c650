"""atlas/ has no import cycle (module-level or function-local imports alike): fit -> model -> shape_prior
must not lead back to fit."""

import ast
from pathlib import Path

import CardiacMotionAtlasLib.atlas as atlas_package

ATLAS_DIR = Path(atlas_package.__file__).parent


def _sibling_imports(path: Path) -> set:
    """Names of the atlas modules that ``path`` imports relatively (``from .x import``, ``from . import x``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                names.add(node.module.split(".")[0])
            else:
                names.update(alias.name for alias in node.names)
    return names


def _cycle(graph: dict):
    """One cycle as a list of module names, or None."""
    state, path = {}, []

    def visit(name):
        state[name] = "open"
        path.append(name)
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == "open":
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        state[name] = "done"
        path.pop()
        return None

    for name in sorted(graph):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"fit": {"model"}, "model": {"shape_prior"}, "shape_prior": {"fit"}}) == [
        "fit", "model", "shape_prior", "fit"]
    assert _cycle({"fit": {"model"}, "model": {"shape_prior"}, "shape_prior": set()}) is None


def test_atlas_modules_import_without_cycles():
    graph = {path.stem: _sibling_imports(path) for path in ATLAS_DIR.glob("*.py") if path.stem != "__init__"}
    assert {"fit", "model", "shape_prior"} <= set(graph)
    assert "model" in graph["fit"] and "shape_prior" in graph["model"]
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
