"""Inputs that test the readers (issue 19): valid controls, the named bad inputs that were once accepted
silently, and random mutations of valid files; built with the library's own writers, nibabel and pydicom.

Used by :mod:`CardiacMotionAtlasLib.benchmarks.robustness`. Every :class:`Case` says which reader reads
it, what it expects (``read``, ``refuse`` or None for a mutation), which names a refusal must contain,
and for valid inputs a reference to compare a read against (a ``.npy`` array, or slice/frame counts).
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import nibabel as nib
import numpy as np

from ..data.cine_study import CineSlice
from ..data.image_sequence import ImageSequence
from ..data.mesh_sequence import MeshSequence
from ..geometry.affine import make_ijk_to_ras, rotation_matrix
from ..io.dicom_write import write_dicom_cine
from ..io.itk_images import write_itk_image
from ..io.meshes import write_mesh
from ..io.nifti import write_nifti

READERS = ("nifti", "nrrd", "metaimage", "dicom", "study", "vtp", "ply", "vtk", "stl")
NASTY = ["", "-1", "0", "1e308", "nan", "abc", "999999999", "4294967295", "../../x", "/dev/zero", "LIST", "\x00"]


@dataclass
class Case:
    reader: str
    label: str
    path: Path
    expect: Optional[str] = None  # "read", "refuse" or None (a random mutation)
    names: List[str] = field(default_factory=list)
    kwargs: Dict = field(default_factory=dict)
    reference: Optional[Dict] = None
    named: bool = True


def _image(rng: np.random.Generator, shape=(3, 4, 20, 24), spacing=(1.5, 1.5, 8.0)) -> ImageSequence:
    matrix = make_ijk_to_ras((12.0, -30.0, 41.0), rotation_matrix([1.0, 2.0, 3.0], 0.6), spacing)
    return ImageSequence(rng.normal(100, 20, size=shape).astype(np.float32), matrix, name="sa")


def _reference(folder: Path, name: str, array: np.ndarray) -> Dict:
    path = folder / f"{name}.npy"
    np.save(path, array)
    return {"npy": str(path)}


def _mutate_bytes(data: bytes, rng: np.random.Generator, header: int) -> bytes:
    kind = rng.choice(["truncate", "bitflip", "overwrite"])
    if kind == "truncate" or len(data) < 2:
        return data[: int(rng.integers(0, max(len(data), 1)))]
    buffer = bytearray(data)
    region = min(header, len(data)) if rng.random() < 0.7 else len(data)
    for _ in range(int(rng.integers(1, 9))):
        position = int(rng.integers(0, region))
        if kind == "bitflip":
            buffer[position] ^= 1 << int(rng.integers(0, 8))
        else:
            buffer[position] = int(rng.integers(0, 256))
    return bytes(buffer)


def _mutate_token(data: bytes, rng: np.random.Generator, limit: int = 3000) -> bytes:
    """Replace one word or number of a text header with a nasty value."""
    import re

    tokens = list(re.finditer(rb"[A-Za-z0-9_.\-]+", data[:limit]))
    if not tokens:
        return data
    token = tokens[int(rng.integers(0, len(tokens)))]
    value = NASTY[int(rng.integers(0, len(NASTY)))].encode("latin-1")
    return data[: token.start()] + value + data[token.end():]


def _fuzz_files(folder: Path, reader: str, base: List[Path], n: int, rng: np.random.Generator,
                mutate: Callable[[bytes, np.random.Generator], bytes]) -> List[Case]:
    cases = []
    for index in range(n):
        source = base[index % len(base)]
        suffix = "".join(source.suffixes[-2:]) if source.name.endswith(".nii.gz") else source.suffix
        path = folder / f"fuzz_{reader}_{index:04d}{suffix}"
        path.write_bytes(mutate(source.read_bytes(), rng))
        cases.append(Case(reader, f"{reader} mutation {index}", path, names=[str(path)], named=False))
    return cases


def _nifti_field(data: bytes, rng: np.random.Generator) -> bytes:
    header = nib.Nifti1Header(data[:348])
    names = [name for name in header.structarr.dtype.names if name != "sizeof_hdr"]
    name = names[int(rng.integers(0, len(names)))]
    value = [0, -1, 1, 7, 255, 32767, 2**31 - 1, 2**40, 1e-30, 1e30, np.nan, np.inf][int(rng.integers(0, 12))]
    try:
        with np.errstate(all="ignore"):
            header.structarr[name] = value
    except (ValueError, TypeError, OverflowError):
        header.structarr[name] = 0
    return header.binaryblock + data[348:]


def image_cases(folder: Path, rng: np.random.Generator, n_fuzz: int) -> List[Case]:
    """NIfTI, NRRD and MetaImage: controls, rows 3-6, mutations."""
    cases: List[Case] = []
    image = _image(rng)
    ref = _reference(folder, "image", image.array)
    files = {}
    for reader, suffix in (("nifti", ".nii.gz"), ("nifti", ".nii"), ("nrrd", ".nrrd"), ("nrrd", ".nhdr"),
                           ("metaimage", ".mha"), ("metaimage", ".mhd")):
        sub = folder / f"valid{suffix.replace('.', '_')}"
        sub.mkdir()
        path = (write_nifti if reader == "nifti" else write_itk_image)(image, sub / f"sa{suffix}")
        files[suffix] = path
        cases.append(Case(reader, f"valid {suffix}", path, "read", reference=ref))
    huge = ImageSequence(image.array, np.diag([1e9, 1e9, 1e9, 1.0]))
    for reader, suffix in (("nifti", ".nii.gz"), ("nrrd", ".nrrd"), ("metaimage", ".mha")):
        path = (write_nifti if reader == "nifti" else write_itk_image)(huge, folder / f"huge{suffix}")
        cases.append(Case(reader, f"row 3: 1e9 mm voxels ({suffix})", path, "refuse", [str(path)]))
    for index, (suffix, target) in enumerate([(".mhd", "../../../../etc/passwd"), (".mhd", "/etc/passwd"),
                                              (".mhd", "/dev/zero"), (".nhdr", "../../../../etc/passwd")]):
        sub = folder / f"detached{index}"
        sub.mkdir()
        header = write_itk_image(image, sub / f"x{suffix}", compress=False)
        key = "ElementDataFile = " if suffix == ".mhd" else "data file: "
        lines = [key + target if line.startswith(key) else line for line in header.read_text("latin-1").splitlines()]
        header.write_text("\n".join(lines) + "\n", "latin-1")
        cases.append(Case("metaimage" if suffix == ".mhd" else "nrrd", f"row 4: {key.strip(' =:')} = {target}",
                          header, "refuse", [str(header)]))
    sub = folder / "fifo"
    sub.mkdir()
    header = write_itk_image(image, sub / "x.mhd", compress=False)
    (sub / "x.raw").unlink()
    os.mkfifo(sub / "x.raw")
    cases.append(Case("metaimage", "row 5: data file is a FIFO", header, "refuse", [str(header)]))
    cases.append(Case("nifti", "row 6: 1 MB .nii.gz declaring 1 GiB", _bomb(folder / "bomb.nii.gz"), "refuse",
                      [str(folder / "bomb.nii.gz")]))
    per = max(n_fuzz, 0)
    cases += _fuzz_files(folder, "nifti", [files[".nii"]], per // 2, rng, lambda d, r: _mutate_bytes(d, r, 352))
    cases += _fuzz_files(folder, "nifti", [files[".nii"]], per - per // 2, rng, _nifti_field)
    cases += _fuzz_files(folder, "nrrd", [files[".nrrd"]], per, rng,
                         lambda d, r: _mutate_token(d, r, d.find(b"\n\n")) if r.random() < 0.5
                         else _mutate_bytes(d, r, d.find(b"\n\n") + 2))
    cases += _fuzz_files(folder, "metaimage", [files[".mha"]], per, rng,
                         lambda d, r: _mutate_token(d, r, d.find(b"ElementDataFile")) if r.random() < 0.5
                         else _mutate_bytes(d, r, d.find(b"ElementDataFile") + 30))
    return cases


def _bomb(path: Path, n_data_bytes: int = 1_020_000) -> Path:
    """About 1 MB of gzip whose NIfTI header declares 1 GiB of float32 voxels (0.5 mm, 256 mm field)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((512, 512, 1024))
    header.set_zooms((0.5, 0.5, 0.5))
    header.set_sform(np.diag([0.5, 0.5, 0.5, 1.0]), code=1)
    data = header.binaryblock + b"\0" * 4 + np.random.default_rng(0).bytes(n_data_bytes)
    path.write_bytes(gzip.compress(data))
    return path


def _cine_slices(rng: np.random.Generator, n_sax: int = 4, n_frames: int = 5) -> List[CineSlice]:
    rotation = rotation_matrix([0.3, -0.5, 0.8], 0.9)
    phases = np.arange(n_frames) / n_frames
    slices = []
    for k in range(n_sax):
        matrix = make_ijk_to_ras(np.array([-20.0, 15.5, 60.25]) + 10.0 * k * rotation[:, 2], rotation, (1.5, 1.25, 8.0))
        array = np.rint(rng.normal(200, 40, size=(n_frames, 1, 12, 14))).astype(np.int16)
        image = ImageSequence(array, matrix, phases=phases, cycle_length_s=0.96, trigger_times_s=phases * 0.96)
        slices.append(CineSlice(image=image, view="SAX", slice_index=k))
    return slices


def _dicom_folder(folder: Path, rng: np.random.Generator, patients=("P1",) * 4) -> List[List[Path]]:
    return [write_dicom_cine(s, folder, patient_id=patients[s.slice_index], series_number=s.slice_index + 1)
            for s in _cine_slices(rng)]


def _cut(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def dicom_cases(folder: Path, rng: np.random.Generator, n_fuzz: int) -> List[Case]:
    """DICOM cine folders: control, rows 1, 2 and 7, folder mutations."""
    cases = []
    _dicom_folder(folder / "valid", rng)
    cases.append(Case("dicom", "valid cine folder", folder / "valid", "read", reference={"n_slices": 4, "n_frames": 5}))
    files = _dicom_folder(folder / "row1", rng)
    for path in files[1]:
        _cut(path, 0.5)
    cases.append(Case("dicom", "row 1: one slice's frames truncated", folder / "row1", "refuse", [str(files[1][0])]))
    cases.append(Case("dicom", "row 1: same, drop_incomplete=True", folder / "row1", "read",
                      kwargs={"drop_incomplete": True}, reference={"n_slices": 3, "n_frames": 5, "dropped": 5}))
    _dicom_folder(folder / "row2", rng, patients=("P1", "P1", "P2", "P2"))
    cases.append(Case("dicom", "row 2: two patients in one folder", folder / "row2", "refuse", ["PatientID"]))
    files = _dicom_folder(folder / "row7", rng)
    cut = [files[0][1], files[1][4], files[2][0], files[3][2], files[3][3]]
    for path in cut:
        _cut(path, 0.98)
    cases.append(Case("dicom", "row 7: 5 truncated frames", folder / "row7", "refuse", [str(cut[0])]))
    for index in range(n_fuzz):
        target = folder / f"fuzz{index:04d}"
        shutil_copy(folder / "valid", target)
        names = sorted(target.iterdir())
        for _ in range(int(rng.integers(1, 4))):
            path = names[int(rng.integers(0, len(names)))]
            action = rng.choice(["delete", "bytes", "duplicate"])
            if action == "delete":
                path.unlink(missing_ok=True)
            elif path.exists() and path.stat().st_size:
                if action == "bytes":
                    path.write_bytes(_mutate_bytes(path.read_bytes(), rng, 1000))
                else:
                    (target / f"copy_{path.name}").write_bytes(path.read_bytes())
        cases.append(Case("dicom", f"dicom mutation {index}", target, names=[str(target)], named=False,
                          kwargs={"drop_incomplete": bool(rng.random() < 0.5)}))
    return cases


def shutil_copy(source: Path, target: Path) -> None:
    import shutil

    shutil.copytree(source, target)


def study_cases(folder: Path, rng: np.random.Generator) -> List[Case]:
    """Study folders (row 7: a 3D sa.nii.gz, label value 7) and ``info`` on non-folders."""
    cases = []
    image = _image(rng, shape=(5, 4, 20, 24))
    sidecar = {"ed_frame": 0, "es_frame": 3, "cycle_length_s": 0.96, "trigger_times_s": [0.0, 0.19, 0.38, 0.58, 0.77]}
    for name, frames in (("valid", 5), ("sa3d", 1)):
        study = folder / name
        study.mkdir()
        write_nifti(ImageSequence(image.array[:frames], image.ijk_to_ras), study / "sa.nii.gz")
        (study / "study.json").write_text(json.dumps(sidecar))
    cases.append(Case("study", "valid UK Biobank-style folder", folder / "valid", "read",
                      reference={"n_slices": 4, "n_frames": 5}))
    cases.append(Case("study", "row 7: 3D sa.nii.gz for a 4D cine", folder / "sa3d", "refuse",
                      [str(folder / "sa3d" / "sa.nii.gz")]))
    study = folder / "label7"
    shutil_copy(folder / "valid", study)
    labels = rng.integers(0, 4, size=image.array.shape).astype(np.uint8)
    labels[0, 0, 0, 0] = 7
    write_nifti(ImageSequence(labels, image.ijk_to_ras), study / "seg_sa.nii.gz", labels=True)
    cases.append(Case("study", "row 7: label value 7", study, "refuse", [str(study / "seg_sa.nii.gz")]))
    cases.append(Case("study", "info /dev/null", Path(os.devnull), "refuse", [os.devnull]))
    text = folder / "notes.txt"
    text.write_text("not a study")
    cases.append(Case("study", "info on a regular text file", text, "refuse", [str(text)]))
    return cases


def mesh_cases(folder: Path, rng: np.random.Generator, n_fuzz: int) -> List[Case]:
    """VTP, PLY, legacy VTK and STL: controls and mutations (binary and ASCII)."""
    from vtkmodules.vtkFiltersSources import vtkSphereSource

    from ..io.vtk_convert import polydata_to_arrays

    source = vtkSphereSource()
    source.SetThetaResolution(12)
    source.SetPhiResolution(8)
    source.SetRadius(20.0)
    source.Update()
    vertices, faces, _ = polydata_to_arrays(source.GetOutput())
    mesh = MeshSequence((vertices + [10.25, -20.5, 30.125])[None], faces, phases=np.zeros(1), name="lv")
    cases = []
    for suffix in (".vtp", ".ply", ".vtk", ".stl"):
        reader = suffix[1:]
        base = [write_mesh(mesh, folder / f"valid{suffix}"), write_mesh(mesh, folder / f"valid_ascii{suffix}", binary=False)]
        if suffix != ".stl":  # STL repeats vertices per face: its read is compared by the reader's own tests
            ref = _reference(folder, f"mesh_{reader}", mesh.vertices[0])
            cases.append(Case(reader, f"valid {suffix}", base[0], "read", reference={**ref, "mesh": True}))
        cases += _fuzz_files(folder, reader, base, n_fuzz, rng,
                             lambda d, r: _mutate_token(d, r) if r.random() < 0.5 else _mutate_bytes(d, r, 600))
    return cases


def build_cases(folder: Path, rng: np.random.Generator, n_fuzz: int) -> List[Case]:
    """Every case, inputs written under ``folder`` (created)."""
    cases: List[Case] = []
    for name, build in (("images", lambda f: image_cases(f, rng, n_fuzz)), ("dicom", lambda f: dicom_cases(f, rng, n_fuzz)),
                        ("studies", lambda f: study_cases(f, rng)), ("meshes", lambda f: mesh_cases(f, rng, n_fuzz))):
        (folder / name).mkdir(parents=True)
        cases += build(folder / name)
    return cases


__all__ = ["Case", "READERS", "build_cases", "image_cases", "dicom_cases", "study_cases", "mesh_cases"]
