"""Name the code a pickle would import, without running it: the ``GLOBAL``/``STACK_GLOBAL`` opcodes of a
checkpoint file (``torch.save`` zip: its ``*/data.pkl``; a bare pickle: the file), read with
:mod:`pickletools`. Used to say *why* a ``weights_only`` load refused a file (``posix.system``)."""

from __future__ import annotations

import os
import pickletools
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Union

PathLike = Union[str, os.PathLike]

PLAIN_GLOBAL_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.set", "_codecs.encode")
"""Globals a ``torch.save`` file of tensors and plain containers holds; anything else is code or an object."""

_STRING_OPCODES = {"UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING",
                   "SHORT_BINSTRING"}


def _streams(path: Path) -> List[bytes]:
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                return [archive.read(name) for name in archive.namelist() if name.endswith(".pkl")]
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError):
            return []
    return [path.read_bytes()]


def _globals_of(data: bytes) -> List[str]:
    found: List[str] = []
    recent: List[Optional[str]] = []  # values pushed, strings or None (enough for STACK_GLOBAL's two args)
    memo: Dict[int, Optional[str]] = {}
    try:
        for opcode, arg, _ in pickletools.genops(data):
            name = opcode.name
            if name == "GLOBAL" and isinstance(arg, str):
                found.append(arg.replace(" ", "."))
            elif name == "STACK_GLOBAL" and len(recent) >= 2 and None not in recent[-2:]:
                found.append(f"{recent[-2]}.{recent[-1]}")
            if name in _STRING_OPCODES:
                recent.append(str(arg))
            elif name == "MEMOIZE":
                memo[len(memo)] = recent[-1] if recent else None
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = recent[-1] if recent else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                recent.append(memo.get(int(arg)))
            else:
                recent.append(None)
            del recent[:-4]
    except Exception:  # noqa: BLE001 - truncated or corrupt stream: what was read so far
        pass
    return found


def pickle_globals(path: PathLike) -> List[str]:
    """``module.name`` of every global the checkpoint's pickle(s) would import (nothing is executed)."""
    found: List[str] = []
    for data in _streams(Path(path)):
        found.extend(_globals_of(data))
    return found


def foreign_globals(path: PathLike) -> List[str]:
    """The globals of :func:`pickle_globals` that plain tensors and containers never need."""
    return [name for name in pickle_globals(path) if not name.startswith(PLAIN_GLOBAL_PREFIXES)]


__all__ = ["PLAIN_GLOBAL_PREFIXES", "foreign_globals", "pickle_globals"]
