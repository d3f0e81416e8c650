"""No partial output: a writer killed midway (SIGKILL) or failing midway (exception) leaves the old file
intact (or no file), and the exception case leaves no temporary file behind."""

import multiprocessing
import os
import signal
import time

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from CardiacMotionAtlasLib.data import ImageSequence
from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError
from CardiacMotionAtlasLib.io import layout_ukbb, meshes
from CardiacMotionAtlasLib.io.dicom import write_dicom_cine
from CardiacMotionAtlasLib.io.itk_images import read_itk_image, write_itk_image
from CardiacMotionAtlasLib.io.layout_ukbb import read_ukbb_study, write_ukbb_study
from CardiacMotionAtlasLib.io.meshes import read_mesh, write_mesh
from CardiacMotionAtlasLib.io.nifti import read_nifti, write_nifti
from io_helpers import files_in, image_sequence, make_study, oblique
from test_io_meshes import _sphere_sequence


def _write_big(path, array):
    write_nifti(ImageSequence(array, oblique()), path)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("had_old_file", [True, False])
def test_writer_killed_midway_leaves_no_partial_destination(tmp_path, had_old_file):
    destination = tmp_path / "cine.nii.gz"
    old = image_sequence((2, 3, 4, 5))
    if had_old_file:
        write_nifti(old, destination)
        old_bytes = destination.read_bytes()
    big = np.random.default_rng(0).random((24, 40, 128, 128), dtype=np.float32)  # ~63 MB, ~1 s to gzip
    process = multiprocessing.get_context("fork").Process(target=_write_big, args=(destination, big))
    process.start()
    temporary = None
    deadline = time.time() + 60
    while time.time() < deadline and process.is_alive():
        candidates = [p for p in tmp_path.iterdir() if p.name.startswith(".cine.nii.gz.")]
        if candidates and candidates[0].stat().st_size > 0:
            temporary = candidates[0]
            break
        time.sleep(0.002)
    os.kill(process.pid, signal.SIGKILL)
    process.join(30)
    assert temporary is not None, "the writer never started writing its temporary file"
    assert process.exitcode == -signal.SIGKILL, "the writer finished before it could be killed"
    if had_old_file:
        assert destination.read_bytes() == old_bytes
        np.testing.assert_array_equal(read_nifti(destination).array, old.array)
    else:
        assert not destination.exists()
    # the killed writer's temporary file is hidden (dot-prefixed) and never has the destination's name
    assert temporary.name.startswith(".") and temporary.name != destination.name


def _partial_then_fail(error):
    def fail(*args, **kwargs):
        target = next(str(a) for a in list(args) + list(kwargs.values()) if isinstance(a, (str, os.PathLike)))
        with open(target, "wb") as handle:
            handle.write(b"partial data" * 100)
        raise error

    return fail


def test_nifti_write_failing_midway(tmp_path, monkeypatch):
    destination = write_nifti(image_sequence((2, 3, 4, 5)), tmp_path / "img.nii.gz")
    before = destination.read_bytes()
    monkeypatch.setattr(nib, "save", _partial_then_fail(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_nifti(image_sequence((2, 3, 4, 5), seed=7), destination)
    assert destination.read_bytes() == before
    assert files_in(tmp_path) == ["img.nii.gz"]


@pytest.mark.parametrize("name", ["img.nrrd", "img.nhdr"])
def test_sitk_write_failing_midway(tmp_path, monkeypatch, name):
    destination = write_itk_image(image_sequence((2, 3, 4, 5)), tmp_path / name)
    before_files = files_in(tmp_path)
    before = read_itk_image(destination).array
    monkeypatch.setattr(sitk, "WriteImage", _partial_then_fail(RuntimeError("ITK ERROR: cannot write")))
    with pytest.raises(CardiacMotionAtlasError, match="cannot write"):
        write_itk_image(image_sequence((2, 3, 4, 5), seed=7), destination)
    monkeypatch.undo()
    assert files_in(tmp_path) == before_files  # no temporary file or folder left
    np.testing.assert_array_equal(read_itk_image(destination).array, before)


def test_mesh_write_failing_midway(tmp_path, monkeypatch):
    mesh = _sphere_sequence(1)
    destination = write_mesh(mesh, tmp_path / "lv.vtp")
    before = destination.read_bytes()

    class FailingWriter:
        def SetFileName(self, name):
            self.name = name

        def SetInputData(self, data):
            pass

        def Write(self):
            with open(self.name, "wb") as handle:
                handle.write(b"<?xml version='1.0'?><VTKFile")
            return 0

    monkeypatch.setattr(meshes, "_writer", lambda suffix, binary: FailingWriter())
    with pytest.raises(CardiacMotionAtlasError):
        write_mesh(mesh, destination)
    monkeypatch.undo()
    assert destination.read_bytes() == before
    assert files_in(tmp_path) == ["lv.vtp"]
    assert read_mesh(destination).n_vertices == mesh.n_vertices


def test_dicom_write_failing_midway(tmp_path, monkeypatch):
    cine = make_study(n_frames=4, n_sax=1, integer=True, labelled=None, lax_views=()).slices[0]
    calls = {"n": 0}
    original = pydicom.dataset.Dataset.save_as

    def save_as(self, filename, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            _partial_then_fail(OSError("disk full"))(filename)
        return original(self, filename, *args, **kwargs)

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", save_as)
    with pytest.raises(OSError):
        write_dicom_cine(cine, tmp_path, prefix="sax")
    monkeypatch.undo()
    assert files_in(tmp_path) == ["sax_0000.dcm", "sax_0001.dcm"]  # complete files only, no temporaries
    for path in tmp_path.iterdir():
        assert pydicom.dcmread(path).pixel_array.shape == (10, 12)


def test_study_write_failing_midway_keeps_finished_files(tmp_path, monkeypatch):
    study = make_study()
    write_ukbb_study(study, tmp_path)
    sidecar = (tmp_path / "study.json").read_bytes()
    original = layout_ukbb.write_nifti

    def fail_on_lax(image, path, labels=False):
        if "la_4ch" in str(path):
            raise OSError("disk full")
        return original(image, path, labels)

    monkeypatch.setattr(layout_ukbb, "write_nifti", fail_on_lax)
    with pytest.raises(OSError):
        write_ukbb_study(make_study(seed=5), tmp_path)
    monkeypatch.undo()
    assert not [name for name in files_in(tmp_path) if name.startswith(".")]
    assert (tmp_path / "study.json").read_bytes() == sidecar  # the sidecar is written last
    assert read_ukbb_study(tmp_path).n_frames == study.n_frames
