"""Property-based robustness: readers fed truncated, bit-flipped and header-mutated versions of valid
files (NIfTI, NRRD, DICOM, VTP, detached MetaImage/NRRD headers, whole DICOM folders; half as many
examples for PLY, legacy VTK, STL, MetaImage) return a valid object or raise one of the library's errors
(naming the file), never anything else. A few hundred examples per reader, about 30 s in all.

``CMA_FUZZ_EXAMPLES`` (default 300) changes the number of examples (e.g. 3000 for a longer local run).
"""

import os
import re
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError, InputFileError
from CardiacMotionAtlasLib.io.dicom import read_dicom_cine, write_dicom_cine
from CardiacMotionAtlasLib.io.itk_images import read_itk_image, write_itk_image
from CardiacMotionAtlasLib.io.meshes import read_mesh, write_mesh
from CardiacMotionAtlasLib.io.nifti import read_nifti, write_nifti
from io_helpers import image_sequence, make_study

from test_io_meshes import _sphere_sequence

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom notes on the nasty values we set

EXAMPLES = int(os.environ.get("CMA_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

NASTY_NUMBERS = [0, -1, 1, 2, 3, 7, 255, 32767, -32768, 65535, 2**31 - 1, 2**40, 1e-30, 1e30,
                 float("nan"), float("inf")]
NASTY_TEXT = ["", "-1", "0", "1e308", "nan", "abc", "999999999", "(nan,0,0)", "none", "(1,0) (0,1)",
              "unsigned char", "gzip", "raw", "3 3 3 3 3", "\x00"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _byte_mutation(data: bytes, draw, header_bytes: int) -> bytes:
    """Truncate, flip bits in or overwrite a few bytes of ``data`` (in its first ``header_bytes`` or anywhere);
    a file an earlier mutation truncated may be shorter than the header region, or empty."""
    if not data:
        return data
    kind = draw(st.sampled_from(["truncate", "bitflip", "overwrite"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    buffer = bytearray(data)
    region = min(draw(st.sampled_from([header_bytes, len(data)])), len(data))
    if kind == "bitflip":
        for position in draw(st.lists(st.integers(0, region - 1), min_size=1, max_size=8)):
            buffer[position] ^= 1 << draw(st.integers(0, 7))
    else:
        offset = draw(st.integers(0, region - 1))
        patch = draw(st.binary(min_size=1, max_size=8))
        buffer[offset: offset + len(patch)] = patch
    return bytes(buffer[: len(data)])


def _text_header_mutation(data: bytes, draw, separator: bytes) -> bytes:
    """Replace the value of one ``key<separator>value`` header line with a nasty value."""
    head_end = data.find(b"\n\n")
    head = data[:head_end if head_end > 0 else 2000]
    lines = head.split(b"\n")
    index = draw(st.integers(1, len(lines) - 1))
    key = lines[index].split(separator, 1)[0]
    lines[index] = key + separator + draw(st.sampled_from(NASTY_TEXT)).encode("latin-1")
    return b"\n".join(lines) + data[len(head):]


def _check(read, path, folder=None):
    """A valid read or a library error that names the file (or the folder holding it)."""
    try:
        return read(folder if folder is not None else path)
    except CardiacMotionAtlasError as exc:
        if isinstance(exc, InputFileError):
            assert str(path) in str(exc) or (folder is not None and str(folder) in str(exc)), str(exc)
        return exc


# --------------------------------------------------------------------------- NIfTI


@pytest.fixture(scope="module")
def nifti_bytes(workdir):
    plain = write_nifti(image_sequence((3, 2, 4, 5), integer=True), workdir / "valid.nii")
    packed = write_nifti(image_sequence((3, 2, 4, 5)), workdir / "valid.nii.gz")
    return plain.read_bytes(), packed.read_bytes()


@FUZZ
@given(data=st.data())
def test_nifti_reader_only_raises_library_errors(workdir, nifti_bytes, data):
    plain, packed = nifti_bytes
    choice = data.draw(st.sampled_from(["bytes", "field", "gzip"]))
    if choice == "gzip":
        path, mutated = workdir / "fuzz.nii.gz", _byte_mutation(packed, data.draw, 64)
    elif choice == "bytes":
        path, mutated = workdir / "fuzz.nii", _byte_mutation(plain, data.draw, 352)
    else:
        header = nib.Nifti1Header(plain[:348])
        field = data.draw(st.sampled_from([name for name in header.structarr.dtype.names if name != "sizeof_hdr"]))
        value = data.draw(st.sampled_from(NASTY_NUMBERS))
        try:
            with np.errstate(all="ignore"):
                header.structarr[field] = value
        except (ValueError, TypeError, OverflowError):
            header.structarr[field] = 0
        path, mutated = workdir / "fuzz.nii", header.binaryblock + plain[348:]
    path.write_bytes(mutated)
    result = _check(read_nifti, path)
    if not isinstance(result, Exception):
        assert np.all(np.isfinite(result.array))


# --------------------------------------------------------------------------- NRRD


@pytest.fixture(scope="module")
def nrrd_bytes(workdir):
    raw = write_itk_image(image_sequence((3, 2, 4, 5)), workdir / "valid.nrrd", compress=False)
    packed = write_itk_image(image_sequence((1, 2, 4, 5)), workdir / "valid_gz.nrrd", compress=True)
    return raw.read_bytes(), packed.read_bytes()


@FUZZ
@given(data=st.data())
def test_nrrd_reader_only_raises_library_errors(workdir, nrrd_bytes, data):
    raw, packed = nrrd_bytes
    source = data.draw(st.sampled_from([raw, packed]))
    if data.draw(st.booleans()):
        mutated = _text_header_mutation(source, data.draw, b": ")
    else:
        mutated = _byte_mutation(source, data.draw, source.find(b"\n\n") + 2)
    path = workdir / "fuzz.nrrd"
    path.write_bytes(mutated)
    _check(read_itk_image, path)


# --------------------------------------------------------------------------- DICOM

DICOM_TAGS = ["Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation", "SamplesPerPixel",
              "PixelSpacing", "ImagePositionPatient", "ImageOrientationPatient", "TriggerTime",
              "NominalInterval", "RescaleSlope", "SliceThickness", "NumberOfFrames", "PhotometricInterpretation"]


@pytest.fixture(scope="module")
def dicom_bytes(workdir):
    cine = make_study(n_frames=1, n_sax=1, ny=6, nx=7, integer=True, labelled=None, lax_views=()).slices[0]
    paths = write_dicom_cine(cine, workdir / "valid_dicom")
    return paths[0].read_bytes()


@FUZZ
@given(data=st.data())
def test_dicom_reader_only_raises_library_errors(workdir, dicom_bytes, data):
    folder = workdir / "fuzz_dicom"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    path = folder / "image.dcm"
    if data.draw(st.booleans()):
        path.write_bytes(_byte_mutation(dicom_bytes, data.draw, 900))
    else:
        path.write_bytes(dicom_bytes)
        ds = pydicom.dcmread(path)
        tag = data.draw(st.sampled_from(DICOM_TAGS))
        value = data.draw(st.sampled_from(NASTY_NUMBERS + ["", "abc", [1, 2], [0, 0, 0, 0, 0, 0]]))
        try:
            if isinstance(value, float) and not np.isfinite(value):
                value = str(value)
            setattr(ds, tag, value)
            ds.save_as(path)
        except Exception:  # pydicom refuses to encode it: keep the valid file for this example
            path.write_bytes(dicom_bytes)
    _check(read_dicom_cine, path, folder)


# --------------------------------------------------------------------------- VTP


@pytest.fixture(scope="module")
def vtp_bytes(workdir):
    mesh = _sphere_sequence(1)
    binary = write_mesh(mesh, workdir / "valid.vtp")
    ascii_ = write_mesh(mesh, workdir / "valid_ascii.vtp", binary=False)
    return binary.read_bytes(), ascii_.read_bytes()


@FUZZ
@given(data=st.data())
def test_vtp_reader_only_raises_library_errors(workdir, vtp_bytes, data):
    binary, ascii_ = vtp_bytes
    source = data.draw(st.sampled_from([binary, ascii_]))
    if data.draw(st.booleans()):
        attributes = list(re.finditer(rb'(\w+)="([^"]*)"', source[:3000]))
        match = data.draw(st.sampled_from(attributes))
        value = data.draw(st.sampled_from(NASTY_TEXT + ["99999999999", "Float64", "Int8", "appended", "ascii"]))
        mutated = source[: match.start(2)] + value.encode("latin-1") + source[match.end(2):]
    else:
        mutated = _byte_mutation(source, data.draw, 3000)
    path = workdir / "fuzz.vtp"
    path.write_bytes(mutated)
    result = _check(read_mesh, path)
    if not isinstance(result, Exception):
        assert result.faces.size == 0 or result.faces.max() < result.n_vertices


# --------------------------------------------------------------------------- other formats (fewer examples)

OTHER = settings(max_examples=max(10, EXAMPLES // 2), deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _token_mutation(data: bytes, draw) -> bytes:
    """Replace one word or number of the first 3000 bytes with a nasty value."""
    tokens = list(re.finditer(rb"[A-Za-z0-9_.\-]+", data[:3000]))
    token = draw(st.sampled_from(tokens))
    value = draw(st.sampled_from(NASTY_TEXT + ["2147483648", "-5", "4294967295"])).encode("latin-1")
    return data[: token.start()] + value + data[token.end():]


@pytest.fixture(scope="module")
def mesh_bytes(workdir):
    mesh = _sphere_sequence(1)
    return {suffix: [write_mesh(mesh, workdir / f"valid{suffix}").read_bytes(),
                     write_mesh(mesh, workdir / f"valid_ascii{suffix}", binary=False).read_bytes()]
            for suffix in (".ply", ".vtk", ".stl")}


@pytest.mark.parametrize("suffix", [".ply", ".vtk", ".stl"])
@OTHER
@given(data=st.data())
def test_other_mesh_readers_only_raise_library_errors(workdir, mesh_bytes, suffix, data):
    source = data.draw(st.sampled_from(mesh_bytes[suffix]))
    if data.draw(st.booleans()):
        mutated = _token_mutation(source, data.draw)
    else:
        mutated = _byte_mutation(source, data.draw, 400)
    path = workdir / f"fuzz{suffix}"
    path.write_bytes(mutated)
    _check(read_mesh, path)


@pytest.fixture(scope="module")
def metaimage_bytes(workdir):
    return write_itk_image(image_sequence((3, 2, 4, 5)), workdir / "valid.mha", compress=False).read_bytes()


@OTHER
@given(data=st.data())
def test_metaimage_reader_only_raises_library_errors(workdir, metaimage_bytes, data):
    if data.draw(st.booleans()):
        mutated = _token_mutation(metaimage_bytes, data.draw)
    else:
        mutated = _byte_mutation(metaimage_bytes, data.draw, metaimage_bytes.find(b"ElementDataFile") + 30)
    path = workdir / "fuzz.mha"
    path.write_bytes(mutated)
    _check(read_itk_image, path)


# --------------------------------------------------------------------------- detached headers (MetaImage, NRRD)

DATA_FILE_VALUES = ["x.raw", "../x.raw", "../../../../etc/passwd", "/etc/passwd", "/dev/zero", "/dev/null", "LOCAL",
                    "LIST", "LIST 2D", "x%03d.raw 1 3 1", "x%d.raw 0 99999999 1", "x.raw x.raw", "", ".", "..",
                    "sub", "sub/x.raw", "link.raw", "C:\\x.raw", "x.raw\x00", "%s%s%s 1 2 1", "missing.raw"]


@pytest.fixture(scope="module")
def detached_folder(workdir):
    folder = workdir / "detached"
    folder.mkdir()
    (folder / "sub").mkdir()
    mhd = write_itk_image(image_sequence((1, 2, 4, 5)), folder / "valid.mhd", compress=False)
    nhdr = write_itk_image(image_sequence((1, 2, 4, 5)), folder / "valid.nhdr", compress=False)
    raw = next(p for p in folder.iterdir() if p.suffix == ".raw" and p.stem == "valid").read_bytes()
    return folder, {".mhd": mhd.read_bytes(), ".nhdr": nhdr.read_bytes()}, raw


@FUZZ
@given(data=st.data())
def test_detached_header_reader_only_raises_library_errors(detached_folder, data):
    folder, headers, raw = detached_folder
    suffix = data.draw(st.sampled_from([".mhd", ".nhdr"]))
    header = headers[suffix]
    key = b"ElementDataFile = " if suffix == ".mhd" else b"data file: "
    start = header.index(key) + len(key)
    end = header.index(b"\n", start)
    value = data.draw(st.sampled_from(DATA_FILE_VALUES)).encode("latin-1")
    mutated = header[:start] + value + header[end:]
    bytes_mutated = data.draw(st.booleans())
    if bytes_mutated:
        mutated = _byte_mutation(mutated, data.draw, len(mutated))
    (folder / "x.raw").write_bytes(raw if data.draw(st.booleans()) else _byte_mutation(raw, data.draw, len(raw)))
    for name in ("x000.raw", "x001.raw", "x002.raw", "x003.raw"):
        (folder / name).write_bytes(raw[:40])
    link = folder / "link.raw"
    if not link.is_symlink():
        os.symlink(workdir_outside(folder), link)
    path = folder / f"fuzz{suffix}"
    path.write_bytes(mutated)
    result = _check(read_itk_image, path)
    if not isinstance(result, Exception):  # never read through '..', an absolute path, a device or link.raw
        assert bytes_mutated or value in (b"x.raw", b"LOCAL", b"x%03d.raw 1 3 1", b"LIST", b"LIST 2D"), value
        assert np.all(np.isfinite(result.array))


def workdir_outside(folder):
    """A regular file outside ``folder`` (the target of ``link.raw``, which must never be read)."""
    outside = folder.parent / "outside.raw"
    outside.write_bytes(b"\x7f" * 4096)
    return outside


# --------------------------------------------------------------------------- DICOM folders


@pytest.fixture(scope="module")
def dicom_folder_bytes(workdir):
    study = make_study(n_frames=3, n_sax=2, ny=6, nx=7, integer=True, labelled=None, lax_views=())
    files = {}
    for s in study.slices:
        for path in write_dicom_cine(s, workdir / "valid_folder", patient_id="P1", study_uid="1.2.3",
                                     frame_of_reference_uid="1.2.3.4", series_number=s.slice_index + 1):
            files[path.name] = path.read_bytes()
    return files


@OTHER
@given(data=st.data())
def test_dicom_folder_reader_only_raises_library_errors(workdir, dicom_folder_bytes, data):
    """Whole cine folders: files deleted, truncated, duplicated, of another subject, junk added; read
    with or without ``drop_incomplete``. A read study has one frame count and one subject."""
    folder = workdir / "fuzz_folder"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    names = sorted(dicom_folder_bytes)
    for name in names:
        (folder / name).write_bytes(dicom_folder_bytes[name])
    for _ in range(data.draw(st.integers(1, 4))):
        name = data.draw(st.sampled_from(names))
        path = folder / name
        action = data.draw(st.sampled_from(["delete", "truncate", "bytes", "subject", "duplicate", "junk", "empty"]))
        if action == "delete":
            path.unlink(missing_ok=True)
        elif action in ("truncate", "bytes") and path.exists() and path.stat().st_size > 0:
            path.write_bytes(_byte_mutation(path.read_bytes(), data.draw, 900))
        elif action == "subject" and path.exists():
            try:
                ds = pydicom.dcmread(path)
                tag = data.draw(st.sampled_from(["PatientID", "StudyInstanceUID", "FrameOfReferenceUID"]))
                setattr(ds, tag, "9.9.9")
                ds.save_as(path)
            except Exception:  # a mutated file pydicom cannot rewrite: leave it
                pass
        elif action == "duplicate":
            (folder / f"copy_{name}").write_bytes(dicom_folder_bytes[name])
        elif action == "junk":
            (folder / "notes.txt").write_bytes(data.draw(st.binary(min_size=1, max_size=300)))
        else:
            (folder / "empty.dcm").write_bytes(b"")
    drop = data.draw(st.booleans())
    result = _check(lambda f: read_dicom_cine(f, drop_incomplete=drop), folder, folder)
    if not isinstance(result, Exception):
        assert len({s.n_frames for s in result.slices}) == 1
        if not drop:
            assert result.metadata["dropped"] == []
