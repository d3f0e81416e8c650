"""Issue 19, rows 3-6: image headers that were read silently. Implausible geometry (1e9 mm voxels), detached
data files outside the header's folder or not regular (``../../etc/passwd``, ``/dev/zero``, a FIFO, a link
out), and headers declaring far more voxels than the file holds are refused BEFORE SimpleITK/nibabel
opens the data or allocates it, with an :class:`InputFileError` naming the file."""

import bz2
import gzip
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from CardiacMotionAtlasLib.errors import InputFileError
from CardiacMotionAtlasLib.io.dicom import read_dicom_cine, write_dicom_cine
from CardiacMotionAtlasLib.io.geometry_checks import MAX_FOV_MM, MAX_VOXEL_MM, MIN_VOXEL_MM
from CardiacMotionAtlasLib.io.itk_images import read_itk_image, write_itk_image
from CardiacMotionAtlasLib.io.nifti import read_nifti, write_nifti
from CardiacMotionAtlasLib.io.size_budget import check_declared_size, count_decompressed
from CardiacMotionAtlasLib.geometry.affine import make_ijk_to_ras
from io_helpers import assert_names_file, image_sequence, make_study

REPO = Path(__file__).resolve().parents[3]
IMAGE_SUFFIXES = [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"]


def _write(image, path):
    return write_nifti(image, path) if path.name.endswith((".nii", ".nii.gz")) else write_itk_image(image, path)


def _read(path):
    return read_nifti(path) if path.name.endswith((".nii", ".nii.gz")) else read_itk_image(path)


# --------------------------------------------------------------------------- row 3: plausible geometry


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
@pytest.mark.parametrize("spacing, origin, shape, what", [
    ((1e9, 1e9, 1e9), (0, 0, 0), (2, 3, 4, 5), "voxel size"),
    ((0.01, 1.0, 1.0), (0, 0, 0), (2, 3, 4, 5), "voxel size"),
    ((0.9, 0.9, 8.0), (0, 0, 0), (1, 2, 3, 1200), "field of view"),
    ((1.0, 1.0, 8.0), (3e6, 0, 0), (1, 2, 3, 4), "origin"),
])
def test_implausible_geometry_is_refused_naming_the_file(tmp_path, suffix, spacing, origin, shape, what):
    image = image_sequence(shape, matrix=make_ijk_to_ras(origin, np.eye(3), spacing))
    path = _write(image, tmp_path / f"sa{suffix}")
    with pytest.raises(InputFileError) as info:
        _read(path)
    assert_names_file(info.value, path)
    assert f"implausible {what}" in str(info.value)


@pytest.mark.parametrize("suffix", IMAGE_SUFFIXES)
def test_plausible_geometry_at_the_limits_is_read(tmp_path, suffix):
    spacing = (MIN_VOXEL_MM * 1.01, 2.0, MAX_VOXEL_MM * 0.99)
    n_x = int(MAX_FOV_MM / 2.0) - 1  # j axis (2 mm) just inside the field-of-view limit
    image = image_sequence((2, 2, n_x, 3), matrix=make_ijk_to_ras((10, -20, 30), np.eye(3), spacing))
    back = _read(_write(image, tmp_path / f"sa{suffix}"))
    assert np.allclose(back.spacing, spacing, rtol=1e-5)
    assert np.allclose(back.array, image.array)


def test_dicom_pixel_spacing_of_1e9_mm_is_refused(tmp_path):
    cine = make_study(n_frames=2, n_sax=1, integer=True, labelled=None, lax_views=()).slices[0]
    paths = write_dicom_cine(cine, tmp_path)
    ds = pydicom.dcmread(paths[1])
    ds.PixelSpacing = [1e9, 1e9]
    ds.save_as(paths[1])
    with pytest.raises(InputFileError) as info:
        read_dicom_cine(tmp_path)
    assert_names_file(info.value, paths[1])
    assert "PixelSpacing" in str(info.value)


# --------------------------------------------------------------------------- rows 4-5: detached data files


def _metaimage(tmp_path, name="x.mhd"):
    """A MetaImage header with detached data ``x.raw`` (a ``.mha`` header may point to a data file too)."""
    header = write_itk_image(image_sequence((1, 2, 4, 5)), tmp_path / "x.mhd", compress=False)
    header = header.rename(tmp_path / name)
    return header, header.read_text().splitlines()


def _point_metaimage_to(header, lines, target):
    lines = [line for line in lines if not line.startswith("ElementDataFile")] + [f"ElementDataFile = {target}"]
    header.write_text("\n".join(lines) + "\n")


def _point_nhdr_to(header, target):
    text = header.read_text()
    lines = [f"data file: {target}" if line.startswith(("data file:", "datafile:")) else line
             for line in text.splitlines()]
    header.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("target, problem", [
    ("../../../../etc/passwd", "outside the header's own folder"),
    ("/etc/passwd", "absolute path"),
    ("/dev/zero", "absolute path"),
    ("sub/x.raw", "outside the header's own folder"),
    ("missing.raw", "does not exist"),
])
@pytest.mark.parametrize("kind", ["mhd", "mha", "nhdr"])
def test_detached_data_file_outside_the_folder_is_refused(tmp_path, kind, target, problem):
    (tmp_path / "sub").mkdir()
    if kind == "nhdr":
        header = write_itk_image(image_sequence((1, 2, 4, 5)), tmp_path / "x.nhdr", compress=False)
        _point_nhdr_to(header, target)
    else:
        header, lines = _metaimage(tmp_path, f"x.{kind}")
        (tmp_path / "x.raw").write_bytes(b"\0" * 160)
        _point_metaimage_to(header, lines, target)
    with pytest.raises(InputFileError) as info:
        read_itk_image(header)
    assert_names_file(info.value, header)
    assert problem in str(info.value) and target in str(info.value)


@pytest.mark.parametrize("kind", ["mhd", "nhdr"])
def test_symlink_escaping_the_folder_and_device_links_are_refused(tmp_path, kind):
    outside = tmp_path / "outside.raw"
    outside.write_bytes(b"\1" * 4 * 40)
    folder = tmp_path / "study"
    folder.mkdir()
    if kind == "nhdr":
        header = write_itk_image(image_sequence((1, 2, 4, 5)), folder / "x.nhdr", compress=False)
    else:
        header, _ = _metaimage(folder)
    data = next(p for p in folder.iterdir() if p != header)
    data.unlink()
    os.symlink(outside, data)
    with pytest.raises(InputFileError) as info:
        read_itk_image(header)
    assert_names_file(info.value, header)
    assert "outside the header's folder" in str(info.value)
    data.unlink()
    os.symlink("/dev/zero", data)
    with pytest.raises(InputFileError) as info:
        read_itk_image(header)
    assert "outside the header's folder" in str(info.value)


def test_symlink_inside_the_folder_is_read(tmp_path):
    header, lines = _metaimage(tmp_path)
    os.replace(tmp_path / "x.raw", tmp_path / "real.raw")
    os.symlink("real.raw", tmp_path / "x.raw")
    assert read_itk_image(header).array.shape == (1, 2, 4, 5)


@pytest.mark.parametrize("kind", ["mhd", "nhdr"])
def test_fifo_data_file_is_refused_without_hanging(tmp_path, kind):
    """Row 5: a FIFO as data file made ``info`` hang; it is refused before anything opens it (run in a
    subprocess with a timeout so that a regression fails instead of hanging the suite)."""
    if kind == "nhdr":
        header = write_itk_image(image_sequence((1, 2, 4, 5)), tmp_path / "x.nhdr", compress=False)
        data = next(p for p in tmp_path.iterdir() if p != header)
        data.unlink()
        os.mkfifo(data)
    else:
        header, lines = _metaimage(tmp_path)
        (tmp_path / "x.raw").unlink()
        os.mkfifo(tmp_path / "x.raw")
    code = textwrap.dedent(f"""
        from CardiacMotionAtlasLib.errors import InputFileError
        from CardiacMotionAtlasLib.io.itk_images import read_itk_image
        try:
            read_itk_image({str(header)!r})
        except InputFileError as error:
            print("REFUSED", error)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.stdout.startswith(f"REFUSED {header}"), result.stdout + result.stderr
    assert "FIFO" in result.stdout


def test_metaimage_list_of_data_files_is_checked_file_by_file(tmp_path):
    header, lines = _metaimage(tmp_path)
    raw = (tmp_path / "x.raw").read_bytes()
    (tmp_path / "a.raw").write_bytes(raw[:80])
    (tmp_path / "b.raw").write_bytes(raw[80:])
    lines = [line for line in lines if not line.startswith("ElementDataFile")]
    header.write_text("\n".join(lines + ["ElementDataFile = LIST 2D", "a.raw", "../b.raw"]) + "\n")
    with pytest.raises(InputFileError) as info:
        read_itk_image(header)
    assert "'../b.raw'" in str(info.value)


# --------------------------------------------------------------------------- row 6: declared size vs data


def _nifti_declaring(tmp_path, dims, gz=True, n_data_bytes=1_020_000):
    """A NIfTI (float32) holding ``n_data_bytes`` of incompressible data whose header declares ``dims``
    voxels. Gzipped, 1 MB declaring 1 GiB passed the former deflate-ratio bound (1100 x 1 MB > 1 GiB)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(dims)
    header.set_zooms((0.5, 0.5, 0.5))
    header.set_sform(np.diag([0.5, 0.5, 0.5, 1.0]), code=1)
    header["vox_offset"] = 352
    data = header.binaryblock + b"\0" * 4 + np.random.default_rng(0).bytes(n_data_bytes)
    path = tmp_path / ("bomb.nii.gz" if gz else "bomb.nii")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_header_declaring_1_gib_is_refused_below_half_a_gigabyte(tmp_path):
    """Row 6: a small .nii.gz declaring 1 GiB of voxels is refused at the header; the process' peak
    memory (measured in a fresh subprocess) stays below 0.5 GB and within 100 MB of the imports'."""
    path = _nifti_declaring(tmp_path, (512, 512, 1024))  # float32: 1 GiB
    assert 1100 * path.stat().st_size > 1 << 30 > path.stat().st_size
    code = textwrap.dedent(f"""
        from CardiacMotionAtlasLib.errors import InputFileError
        from CardiacMotionAtlasLib.io.nifti import read_nifti
        def peak_kib():  # VmHWM: this process' own peak (ru_maxrss would carry the parent's over fork+exec)
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        before = peak_kib()
        try:
            read_nifti({str(path)!r})
            print("READ")
        except InputFileError as error:
            print("REFUSED", error)
        after = peak_kib()
        print("KB", before, after)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    lines = result.stdout.splitlines()
    assert lines and lines[0].startswith(f"REFUSED {path}"), result.stdout + result.stderr
    assert "declares 1073741824 bytes" in lines[0]
    before, after = (int(v) for v in lines[-1].split()[1:])  # VmHWM: KiB
    assert after < 500 * 1024, f"peak RSS {after / 1024:.0f} MiB"
    assert after - before < 100 * 1024, f"refusing grew the peak by {(after - before) / 1024:.0f} MiB"


def test_uncompressed_nifti_declaring_more_than_the_file_is_refused(tmp_path):
    path = _nifti_declaring(tmp_path, (64, 64, 64), gz=False, n_data_bytes=64 * 64 * 64 * 4 - 1)
    with pytest.raises(InputFileError) as info:
        read_nifti(path)
    assert_names_file(info.value, path)
    assert "holds only" in str(info.value)


def test_truncated_gzip_nifti_is_refused_before_reading(tmp_path):
    image = image_sequence((3, 4, 8, 9))
    packed = write_nifti(image, tmp_path / "sa.nii.gz").read_bytes()
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputFileError) as info:
        read_nifti(path)
    assert_names_file(info.value, path)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_compressed_itk_header_declaring_more_is_refused(tmp_path, suffix):
    path = write_itk_image(image_sequence((1, 4, 8, 9)), tmp_path / f"x{suffix}", compress=True)
    data = path.read_bytes()
    old = b"sizes: 9 8 4" if suffix == ".nrrd" else b"DimSize = 9 8 4"
    assert old in data
    path.write_bytes(data.replace(old, old.replace(b"4", b"400")))
    with pytest.raises(InputFileError) as info:
        read_itk_image(path)
    assert_names_file(info.value, path)
    assert "holds only" in str(info.value)


def test_memory_budget_refuses_a_large_declaration(tmp_path, monkeypatch):
    image = image_sequence((2, 8, 16, 16), matrix=make_ijk_to_ras((0, 0, 0), np.eye(3), (1.0, 1.0, 1.0)))
    path = write_nifti(image, tmp_path / "sa.nii.gz")
    assert read_nifti(path).array.shape == (2, 8, 16, 16)
    monkeypatch.setenv("CMA_IO_MEMORY_BUDGET_MB", "0.01")
    with pytest.raises(InputFileError) as info:
        read_nifti(path)
    assert_names_file(info.value, path)
    assert "memory budget" in str(info.value)


def test_count_decompressed_counts_concatenated_members_and_stops_at_the_cap(tmp_path):
    rng = np.random.default_rng(0)
    parts = [rng.bytes(300_000), bytes(2_000_000), b"x" * 77]
    path = tmp_path / "multi.gz"
    path.write_bytes(b"".join(gzip.compress(p) for p in parts))
    total = sum(len(p) for p in parts)
    assert count_decompressed(path, 0, "gzip", 10 * total) == total
    assert count_decompressed(path, 0, "gzip", 1000) == 1000
    packed = tmp_path / "x.bz2"
    packed.write_bytes(b"HEAD" + bz2.compress(parts[1]) + bz2.compress(parts[0]))
    assert count_decompressed(packed, 4, "bzip2", 10 * total) == len(parts[0]) + len(parts[1])
    with pytest.raises(InputFileError):
        check_declared_size(packed, len(parts[0]) + len(parts[1]) + 1, offset=4, encoding="bzip2")
    check_declared_size(packed, len(parts[0]) + len(parts[1]), offset=4, encoding="bzip2")


def test_cohort_preflight_refuses_implausible_geometry_from_the_header(tmp_path):
    from CardiacMotionAtlasLib.io.cohort import entry_for
    from CardiacMotionAtlasLib.io.cohort_scan import scan_study
    from CardiacMotionAtlasLib.io.layout_ukbb import write_ukbb_study

    folder = write_ukbb_study(make_study(n_frames=4, n_sax=2, labelled=None, lax_views=()), tmp_path / "uk")
    assert scan_study(entry_for(folder)).problems == []
    sa = read_nifti(folder / "sa.nii.gz")
    sa.ijk_to_ras = np.diag([1e9, 1e9, 1e9, 1.0])
    write_nifti(sa, folder / "sa.nii.gz")
    (problem,) = scan_study(entry_for(folder)).problems
    assert problem.startswith(str(folder / "sa.nii.gz")) and "implausible voxel size" in problem
