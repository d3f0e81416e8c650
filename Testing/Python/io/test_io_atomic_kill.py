"""A writer killed midway (SIGKILL: no cleanup code runs) never leaves a partial destination file."""

import multiprocessing as mp
import os
import signal
import time

import numpy as np
import pytest

from CardiacMotionAtlasLib.data.image_sequence import ImageSequence
from CardiacMotionAtlasLib.io.atomic import atomic_path
from CardiacMotionAtlasLib.io.nifti import read_nifti, write_nifti

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")


def _slow_writer(path, started):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(b"x" * 1024)
            handle.flush()
            started.set()
            while True:  # never finishes on its own
                handle.write(b"x" * 1024)
                time.sleep(0.01)


def _nifti_writer(path, started):
    array = np.random.default_rng(0).normal(size=(6, 40, 160, 160)).astype(np.float32)
    started.set()
    write_nifti(ImageSequence(array, np.eye(4)), path)


def _spawn(target, path):
    context = mp.get_context("fork")
    started = context.Event()
    process = context.Process(target=target, args=(str(path), started))
    process.start()
    assert started.wait(30)
    return process


def test_killed_midway_leaves_no_destination(tmp_path):
    destination = tmp_path / "out.bin"
    process = _spawn(_slow_writer, destination)
    time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    assert not destination.exists()
    # the only thing left is the hidden temporary file, never the destination name
    assert all(p.name.startswith(".out.bin.") for p in tmp_path.iterdir())


def test_existing_file_survives_a_killed_overwrite(tmp_path):
    destination = tmp_path / "out.bin"
    destination.write_bytes(b"previous complete content")
    process = _spawn(_slow_writer, destination)
    time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    assert destination.read_bytes() == b"previous complete content"


@pytest.mark.parametrize("delay_s", [0.05, 0.3, 0.8])
def test_killed_nifti_writer_leaves_nothing_or_a_complete_file(tmp_path, delay_s):
    destination = tmp_path / "sa.nii.gz"
    process = _spawn(_nifti_writer, destination)
    time.sleep(delay_s)
    os.kill(process.pid, signal.SIGKILL)
    process.join(10)
    if destination.exists():  # the rename happened before the kill: then the file is whole
        assert read_nifti(destination).array.shape == (6, 40, 160, 160)
    leftovers = [p for p in tmp_path.iterdir() if p != destination]
    assert all(p.name.startswith(".sa.nii.gz.") for p in leftovers)
