"""Dataclass configs: conversion to plain dicts of builtins (for checkpoints and JSON spec files) and
back, with clear errors.

Convention for every trainer config in the library:

- a ``@dataclass`` whose defaults are for real use;
- a ``tiny()`` classmethod returning a configuration small enough for unit tests (seconds on a CPU);
- nested configs are dataclasses too; sequences are tuples (stored as lists, restored as tuples).

A checkpoint stores ``config_to_dict(config)``; a trainer rebuilds it with ``config_from_dict(cls, d)``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import typing
from pathlib import PurePath
from typing import Any, Dict, Mapping, Optional, Type, TypeVar, Union

import numpy as np

from ..errors import CardiacMotionAtlasError, InputFileError
from ..io.atomic import atomic_write_text

T = TypeVar("T")
PathLike = Union[str, os.PathLike]


class ConfigError(CardiacMotionAtlasError, ValueError):
    """A config (dict, JSON file or dataclass) has unknown keys, wrong types or unsupported values."""


def _plain(value: Any, where: str) -> Any:
    """``value`` as builtins only: dict (str keys), list, str, int, float, bool, None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)}
    if value is None:
        return None
    if isinstance(value, enum.Enum):  # before int/str: IntEnum and StrEnum are subclasses of those
        return _plain(value.value, where)
    if isinstance(value, bool):
        return bool(value)
    for builtin in (int, float, str):  # exact builtins: subclasses would not load with weights_only=True
        if isinstance(value, builtin):
            return builtin(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.generic):
        return _plain(value.item(), where)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where}: key {key!r} is not a string")
            out[key] = _plain(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{index}]") for index, item in enumerate(value)]
    raise ConfigError(
        f"{where}: {type(value).__name__} is not a plain config value "
        "(use str, int, float, bool, None, lists, tuples, dicts, enums, paths or nested dataclasses)"
    )


def config_to_dict(config: Any) -> Dict[str, Any]:
    """A dataclass config (or a mapping) as a dict of builtins, safe for JSON and for checkpoints loaded
    with ``weights_only=True``. Tuples become lists, enums their values, paths strings."""
    if isinstance(config, type) or not (dataclasses.is_dataclass(config) or isinstance(config, Mapping)):
        raise ConfigError(f"config must be a dataclass instance or a mapping, got {type(config).__name__}")
    name = type(config).__name__ if dataclasses.is_dataclass(config) else "config"
    return _plain(config, name)


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) is Union:
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _convert(value: Any, annotation: Any, where: str, source: Optional[str]) -> Any:
    """Rebuild nested dataclasses and tuples; check scalar types that JSON can get wrong."""
    if value is None:
        return None
    annotation = _strip_optional(annotation)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            _fail(source, f"{where}: expected a mapping for {annotation.__name__}, got {type(value).__name__}")
        return _from_dict(annotation, value, where, source)
    origin = typing.get_origin(annotation)
    if (annotation is tuple or origin is tuple) and isinstance(value, (list, tuple)):
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(item, args[0], f"{where}[{i}]", source) for i, item in enumerate(value))
        if args and len(args) == len(value):
            return tuple(_convert(item, arg, f"{where}[{i}]", source) for i, (item, arg) in enumerate(zip(value, args)))
        return tuple(value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            _fail(source, f"{where}: {value!r} is not a {annotation.__name__}")
    if isinstance(annotation, type) and issubclass(annotation, PurePath) and isinstance(value, str):
        return annotation(value)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(source, f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if annotation is int and (isinstance(value, bool) or not isinstance(value, int)):
        _fail(source, f"{where}: expected an integer, got {type(value).__name__} {value!r}")
    if annotation is bool and not isinstance(value, bool):
        _fail(source, f"{where}: expected true/false, got {type(value).__name__} {value!r}")
    if annotation is str and not isinstance(value, str):
        _fail(source, f"{where}: expected a string, got {type(value).__name__} {value!r}")
    return value


def _fail(source: Optional[str], problem: str) -> typing.NoReturn:
    raise ConfigError(f"{source}: {problem}" if source else problem)


def _from_dict(cls: Type[T], data: Mapping[str, Any], where: str, source: Optional[str]) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        _fail(source, f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (known: {', '.join(sorted(fields))})")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable forward references: skip conversions rather than guess
        hints = {}
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(value, hints.get(name, Any), f"{where}.{name}", source)
    missing = [
        name for name, f in fields.items()
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        _fail(source, f"{where}: missing required key(s) {', '.join(map(repr, missing))}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:  # a __post_init__ that validates values
        _fail(source, f"{where}: {error}")


def config_from_dict(cls: Type[T], data: Mapping[str, Any], *, source: Optional[PathLike] = None) -> T:
    """Rebuild a dataclass config from :func:`config_to_dict` output (or a JSON spec).

    Unknown keys and wrong scalar types raise :class:`ConfigError` (prefixed with ``source``, the file
    the dict came from, when given); missing keys take the dataclass defaults.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"{cls!r} is not a dataclass type")
    src = None if source is None else os.fspath(source)
    if not isinstance(data, Mapping):
        _fail(src, f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
    return _from_dict(cls, data, cls.__name__, src)


def tiny_config(cls: Type[T]) -> T:
    """``cls.tiny()``: the test-sized configuration every trainer config provides."""
    tiny = getattr(cls, "tiny", None)
    if not callable(tiny):
        raise TypeError(f"{cls.__name__} has no tiny() classmethod (every trainer config must provide one)")
    config = tiny()
    if not isinstance(config, cls):
        raise TypeError(f"{cls.__name__}.tiny() returned {type(config).__name__}, expected {cls.__name__}")
    return config


def save_config_json(config: Any, path: PathLike) -> None:
    """Write ``config_to_dict(config)`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(config_to_dict(config), indent=2, sort_keys=True) + "\n")


def load_config_json(cls: Type[T], path: PathLike) -> T:
    """Read a JSON spec file into ``cls``; errors name the file."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise InputFileError(path, "no such config file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputFileError(path, f"not a readable JSON config ({error})") from error
    return config_from_dict(cls, data, source=path)


__all__ = [
    "ConfigError",
    "config_from_dict",
    "config_to_dict",
    "load_config_json",
    "save_config_json",
    "tiny_config",
]
