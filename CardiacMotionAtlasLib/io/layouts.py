"""Read a cine study from whatever layout it is in: UK Biobank-style, ACDC, M&Ms, a DICOM folder, or
a single SAX stack NIfTI/NRRD file. :func:`detect_layout` says which; :func:`read_study` reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..data.cine_study import CineStudy
from ..errors import CineStudyError
from ._common import PathLike
from .dicom import read_dicom_cine
from .itk_images import read_itk_image
from .layout_acdc import read_acdc_study, read_mnms_study
from .layout_common import split_stack
from .layout_ukbb import SIDECAR, read_ukbb_study, write_ukbb_study
from .nifti import is_nifti_path, read_nifti

LAYOUTS = ("ukbb", "acdc", "mnms", "dicom", "stack")


def _has_dicom(folder: Path, limit: int = 200) -> bool:
    """Whether any of the first ``limit`` files (recursively) has the DICOM preamble."""
    checked = 0
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix.lower() == ".dcm":
            return True
        try:
            with open(path, "rb") as handle:
                head = handle.read(132)
        except OSError:
            continue
        if head[128:132] == b"DICM":
            return True
        checked += 1
        if checked >= limit:
            break
    return False


def detect_layout(path: PathLike) -> str:
    """One of :data:`LAYOUTS` for ``path``; :class:`CineStudyError` if none fits."""
    path = Path(path)
    if not path.exists():
        raise CineStudyError(path, "does not exist")
    if not path.is_file() and not path.is_dir():
        raise CineStudyError(path, "not a study folder nor a regular file (a device, FIFO or socket?)")
    if path.is_file():
        name = path.name.lower()
        if is_nifti_path(path) or name.endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
            return "stack"
        raise CineStudyError(path, "not a study folder nor a SAX stack image (.nii[.gz], .nrrd, .mha)")
    names = {p.name.lower() for p in path.iterdir() if not p.name.startswith(".")}
    if names & {"sa.nii.gz", SIDECAR} or any(n.startswith(("la_2ch", "la_3ch", "la_4ch", "seg_sa")) for n in names):
        return "ukbb"
    if "info.cfg" in names or any(n.endswith(("_4d.nii.gz", "_4d.nii")) for n in names):
        return "acdc"
    if any(n.endswith("_sa.nii.gz") for n in names):
        return "mnms"
    if _has_dicom(path):
        return "dicom"
    raise CineStudyError(path, "no recognised study layout (expected sa.nii.gz [UK Biobank], *_4d.nii.gz + "
                               "Info.cfg [ACDC], *_sa.nii.gz [M&Ms] or DICOM files)")


def read_stack_study(path: PathLike, subject_id: Optional[str] = None) -> CineStudy:
    """A single SAX stack image file (NIfTI or any SimpleITK format) as a study of its slices."""
    path = Path(path)
    image = read_nifti(path, name="SAX") if is_nifti_path(path) else read_itk_image(path, name="SAX")
    return CineStudy(subject_id=subject_id or path.name.split(".")[0], slices=split_stack(image),
                     cycle_length_s=image.cycle_length_s, metadata={"source": str(path), "layout": "stack"})


def read_study(path: PathLike, layout: Optional[str] = None, drop_incomplete: bool = False) -> CineStudy:
    """Read the study at ``path`` (layout detected unless given, see :func:`detect_layout`).
    ``drop_incomplete`` (DICOM only): leave out unreadable files and incomplete slices and report them in
    ``study.metadata["dropped"]`` instead of refusing the study (see :func:`read_dicom_cine`)."""
    layout = layout or detect_layout(path)
    if layout == "ukbb":
        return read_ukbb_study(path)
    if layout == "acdc":
        return read_acdc_study(path)
    if layout == "mnms":
        return read_mnms_study(path)
    if layout == "dicom":
        return read_dicom_cine(path, drop_incomplete=drop_incomplete)
    if layout == "stack":
        return read_stack_study(path)
    raise CineStudyError(path, f"unknown layout {layout!r}; expected one of {LAYOUTS}")


__all__ = ["LAYOUTS", "detect_layout", "read_study", "read_stack_study", "write_ukbb_study"]
