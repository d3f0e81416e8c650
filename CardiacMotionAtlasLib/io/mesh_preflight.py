"""Pre-flight checks of mesh files, run before VTK reads them (see :mod:`.preflight_vtp`,
:mod:`.preflight_ply`, :mod:`.preflight_legacy_vtk`).

Some VTK readers trust sizes stored in the file and abort or crash the process on corrupt ones; a
crash cannot be turned into an error afterwards, so files that announce more than they hold are
refused first with :class:`InputFileError`. A binary STL must hold the triangles it announces.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputFileError
from .preflight_legacy_vtk import check_legacy_vtk
from .preflight_ply import check_ply
from .preflight_vtp import check_vtp


def check_mesh_file(path: Path, suffix: str) -> None:
    """Raise :class:`InputFileError` if the file announces more than it holds (see module docstring)."""
    data = path.read_bytes()
    size = len(data)
    if suffix == ".vtp":
        check_vtp(path, data)
    elif suffix == ".ply":
        check_ply(path, data)
    elif suffix == ".stl":
        if not data[:5].lower().startswith(b"solid") and size >= 84:
            count = int.from_bytes(data[80:84], "little")
            if 84 + 50 * count > size:
                raise InputFileError(path, f"binary STL announces {count} triangles but has only {size} bytes")
        elif size < 84 and not data[:5].lower().startswith(b"solid"):
            raise InputFileError(path, "binary STL shorter than its 84-byte header")
    elif suffix == ".vtk":
        check_legacy_vtk(path, data)


__all__ = ["check_mesh_file"]
