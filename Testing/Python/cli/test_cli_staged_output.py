"""``io.atomic.staged_output_dir``: a command's outputs are published at once, or not at all."""

from __future__ import annotations

import pytest

from CardiacMotionAtlasLib.io.atomic import atomic_write_text, staged_output_dir


def _tree(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_new_folder_appears_complete_in_one_rename(tmp_path):
    final = tmp_path / "out"
    with staged_output_dir(final) as out:
        assert out.parent == tmp_path and out != final and not final.exists()
        atomic_write_text(out / "report.json", "{}")
        (out / "meshes").mkdir()
        atomic_write_text(out / "meshes" / "0.vtk", "mesh")
    assert _tree(final) == ["meshes", "meshes/0.vtk", "report.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_failure_or_interrupt_leaves_nothing(tmp_path):
    final = tmp_path / "out"
    for error in (RuntimeError("vtk overflow (simulated)"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with staged_output_dir(final) as out:
                atomic_write_text(out / "a.txt", "partial")
                raise error
        assert list(tmp_path.iterdir()) == []


def test_existing_folder_keeps_other_files_and_replaces_namesakes_whole(tmp_path):
    final = tmp_path / "out"
    (final / "meshes").mkdir(parents=True)
    atomic_write_text(final / "meshes" / "old_only.vtk", "old")
    atomic_write_text(final / "notes.txt", "the user's")
    atomic_write_text(final / "report.json", "old")
    with staged_output_dir(final) as out:
        (out / "meshes").mkdir()
        atomic_write_text(out / "meshes" / "0.vtk", "new")
        atomic_write_text(out / "report.json", "new")
    assert _tree(final) == ["meshes", "meshes/0.vtk", "notes.txt", "report.json"]
    assert (final / "report.json").read_text() == "new" and (final / "notes.txt").read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]

    with pytest.raises(ValueError):
        with staged_output_dir(final) as out:
            atomic_write_text(out / "report.json", "newer")
            raise ValueError("failed")
    assert (final / "report.json").read_text() == "new"


def test_a_file_in_the_way_is_refused_before_writing(tmp_path):
    final = tmp_path / "out"
    final.write_text("a file")
    with pytest.raises(NotADirectoryError) as info:
        with staged_output_dir(final):
            pass
    assert info.value.filename == str(final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
