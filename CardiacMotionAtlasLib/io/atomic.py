"""Atomic output: write to a temporary file in the destination folder, then ``os.replace``; a command's
whole output folder is staged the same way (:func:`staged_output_dir`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, os.PathLike]


def _suffixes(path: Path) -> str:
    """Keep compound extensions such as ``.nii.gz`` so format-sniffing writers still work."""
    return "".join(path.suffixes[-2:]) if path.name.endswith((".nii.gz", ".vtk.gz")) else path.suffix


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on any error (or
    interruption) delete it. A reader never sees a partial ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp" + _suffixes(path), dir=path.parent
    )
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes 0600 files: give the output the usual umask-based mode
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _publish(staging: Path, final: Path) -> None:
    """Move ``staging``'s content to ``final``: one rename when ``final`` is absent or empty, else each
    top-level entry replaces its namesake (an old sub-folder is renamed aside first, then removed)."""
    if final.is_dir() and not any(final.iterdir()):
        final.rmdir()
    if not final.exists():
        os.rename(staging, final)
        return
    if not final.is_dir():
        raise NotADirectoryError(20, "output path exists and is not a folder", str(final))
    for entry in sorted(staging.iterdir()):
        target = final / entry.name
        if target.is_dir() and not target.is_symlink():
            aside = Path(tempfile.mkdtemp(prefix=f".{entry.name}.old.", dir=final))
            os.rename(target, aside / entry.name)
            os.rename(entry, target)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(entry, target)
    staging.rmdir()


@contextlib.contextmanager
def staged_output_dir(final_dir: PathLike) -> Iterator[Path]:
    """Yield a new, empty staging folder beside ``final_dir`` (same file system); write every output
    there. On success it is published at once (:func:`_publish`: a single rename when ``final_dir`` does
    not exist or is empty); on any error or interruption it is removed and ``final_dir`` is untouched, so
    a failed command leaves no partial output behind.

        with staged_output_dir(args.out) as out:
            write_mesh_sequence(mesh, out / "meshes"); atomic_write_text(out / "report.json", text)
    """
    final = Path(final_dir)
    if final.exists() and not final.is_dir():
        raise NotADirectoryError(20, "output path exists and is not a folder", str(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging.", dir=final.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
        _publish(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "staged_output_dir"]
