"""A small JSON registry of known model checkpoints: name, method, file, sha256 and where it came from.

The README's main job registers the phantom-trained models it builds (``results/demo/models.json``), so a
new user can run every method at once (CLI, Python console or the Slicer module); a group registers its own
cohort-trained models the same way. Paths in the registry are stored relative to the registry file when
they lie beside it, so a results folder can be moved as a whole. Resolving a name verifies the checksum:
a checkpoint that changed since it was registered is refused.

File format (``format`` 1)::

    {"format": 1, "models": {"<name>": {"method": "atlas", "path": "atlas/atlas.pt", "sha256": "...",
                                        "source": "...", "registered": "2026-11-25T06:00:00Z"}}}
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Union

from .errors import CardiacMotionAtlasError
from .io.atomic import atomic_write_text

PathLike = Union[str, os.PathLike]
METHODS = ("atlas", "nisf", "motion", "synth")
FORMAT = 1


class RegistryError(CardiacMotionAtlasError):
    """A registry file or entry cannot be used (the message names the file and the problem)."""


@dataclass
class RegisteredModel:
    name: str
    method: str
    path: Path
    sha256: str
    source: str = ""
    registered: str = ""


def file_sha256(path: PathLike, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read(registry: Path) -> Dict:
    if not registry.exists():
        return {"format": FORMAT, "models": {}}
    try:
        data = json.loads(registry.read_text())
    except ValueError as error:
        raise RegistryError(f"{registry}: not a JSON model registry ({error})") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("models"), dict):
        raise RegistryError(f"{registry}: not a model registry of format {FORMAT}")
    return data


def _refuse_incomplete(checkpoint: Path, name: str) -> None:
    """A half-trained checkpoint (the training loop's in-progress file) is never registered for use;
    files that are no checkpoint of this library are left to the method's loader to judge."""
    from .errors import CheckpointError
    from .training.checkpoint import load_checkpoint

    try:
        loaded = load_checkpoint(checkpoint, allow_incomplete=True)
    except CheckpointError:
        return
    if not loaded.complete:
        raise RegistryError(f"{checkpoint}: incomplete model ({loaded.progress_text()}), not registered as {name!r}; "
                            "finish its training (--resume) first")


def register_checkpoint(registry: PathLike, name: str, method: str, checkpoint: PathLike, source: str = "") -> RegisteredModel:
    """Add or replace ``name`` in ``registry`` (created if missing; written atomically)."""
    registry, checkpoint = Path(registry), Path(checkpoint)
    if method not in METHODS:
        raise RegistryError(f"{registry}: unknown method {method!r} for {name!r} (known: {', '.join(METHODS)})")
    if not checkpoint.is_file():
        raise RegistryError(f"{checkpoint}: no checkpoint file to register as {name!r}")
    _refuse_incomplete(checkpoint, name)
    data = _read(registry)
    try:
        stored = os.path.relpath(checkpoint.resolve(), registry.resolve().parent)
        if stored.startswith(".."):
            stored = str(checkpoint.resolve())
    except ValueError:  # another drive (Windows)
        stored = str(checkpoint.resolve())
    entry = RegisteredModel(name, method, Path(stored), file_sha256(checkpoint), source,
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    record = asdict(entry)
    record.pop("name")
    record["path"] = stored
    data["models"][name] = record
    registry.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(registry, json.dumps(data, indent=1) + "\n")
    return entry


def list_models(registry: PathLike) -> Dict[str, RegisteredModel]:
    """``name -> RegisteredModel`` (paths made absolute)."""
    registry = Path(registry)
    if not registry.is_file():
        raise RegistryError(f"{registry}: no such model registry")
    out = {}
    for name, record in _read(registry)["models"].items():
        try:
            path = Path(record["path"])
            out[name] = RegisteredModel(name, str(record["method"]), path if path.is_absolute() else
                                        (registry.resolve().parent / path), str(record["sha256"]),
                                        str(record.get("source", "")), str(record.get("registered", "")))
        except (KeyError, TypeError) as error:
            raise RegistryError(f"{registry}: entry {name!r} is incomplete ({error})") from error
    return out


def resolve_checkpoint(registry: PathLike, name: str, method: str = "") -> Path:
    """The checkpoint file registered as ``name`` after checking that it exists, is of ``method`` (when
    given) and still has its registered sha256."""
    models = list_models(registry)
    if name not in models:
        raise RegistryError(f"{registry}: no model named {name!r} (known: {', '.join(sorted(models)) or 'none'})")
    model = models[name]
    if method and model.method != method:
        raise RegistryError(f"{registry}: {name!r} is a {model.method} model, not {method}")
    if not model.path.is_file():
        raise RegistryError(f"{model.path}: checkpoint of {name!r} is missing")
    if file_sha256(model.path) != model.sha256:
        raise RegistryError(f"{model.path}: checksum differs from the registry's for {name!r} (file changed)")
    return model.path


__all__ = ["METHODS", "RegisteredModel", "RegistryError", "file_sha256", "list_models", "register_checkpoint",
           "resolve_checkpoint"]
