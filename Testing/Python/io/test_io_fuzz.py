"""Property-based robustness: readers fed truncated, bit-flipped and header-mutated versions of valid
files (NIfTI, NRRD, DICOM, VTP; fewer examples for PLY, legacy VTK, STL, MetaImage) return a valid
object or raise one of the library's errors (naming the file), never anything else.

``CMA_FUZZ_EXAMPLES`` raises the number of examples for a longer local run.
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

EXAMPLES = int(os.environ.get("CMA_FUZZ_EXAMPLES", "40"))
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
    kind = draw(st.sampled_from(["truncate", "bitflip", "overwrite"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    buffer = bytearray(data)
    region = draw(st.sampled_from([header_bytes, len(data)]))
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
