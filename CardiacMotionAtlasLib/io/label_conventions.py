"""Label conventions of the datasets the product reads, converted to the product's at the ``io/`` boundary.

The product's convention (``product``): 0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool.
It is also UK Biobank's (Bai et al., JCMR 2018, the ``ukbb_cardiac`` segmentations) and the phantom's.

- ``acdc``: 0 background, 1 RV blood pool, 2 LV myocardium, 3 LV blood pool (ACDC challenge, Bernard et
  al., IEEE TMI 2018; the dataset's ``*_gt.nii.gz``). 1 and 3 are swapped with respect to the product's.
- ``mnms``: 0 background, 1 LV blood pool, 2 LV myocardium, 3 RV blood pool. Source: the M&Ms challenge
  description (https://www.ub.edu/mnms/, Campello et al., IEEE TMI 2021): "Labels are: 1 (LV), 2 (MYO)
  and 3 (RV)"; the CineMA project's M&Ms loader maps them the same way ({1: LV, 2: MYO, 3: RV}). So
  M&Ms equals the product's convention; it is named anyway so that a user can say where a map came from.

A study folder's convention follows from its layout (:data:`LAYOUT_CONVENTIONS`). A bare label file's
cannot be known unless it is written down: :func:`convention_of_label_file` takes it from
``--label-convention``, a sidecar ``<file stem>.json`` (``{"label_convention": "acdc"}``), or the stamp the
product's own NIfTI writer puts in the header (intent ``label``, intent name ``cma:<convention>``), and
otherwise refuses: it never guesses.
:func:`check_label_anatomy` is a last line of defence: in every convention the LV blood pool is enclosed
by the myocardium while the RV blood pool borders the background (the RV wall is not labelled), so a
map whose "LV blood pool" borders the background far more than its "RV" is refused as swapped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from ..errors import InputFileError
from ._common import PathLike

PRODUCT = "product"
CONVENTIONS = ("product", "acdc", "mnms")
"""The label conventions the readers know."""

_TO_PRODUCT: Dict[str, np.ndarray] = {
    "product": np.array([0, 1, 2, 3], dtype=np.uint8),
    "acdc": np.array([0, 3, 2, 1], dtype=np.uint8),
    "mnms": np.array([0, 1, 2, 3], dtype=np.uint8),
}
MEANINGS = {
    "product": "1 LV blood pool, 2 LV myocardium, 3 RV blood pool",
    "acdc": "1 RV blood pool, 2 LV myocardium, 3 LV blood pool",
    "mnms": "1 LV blood pool, 2 LV myocardium, 3 RV blood pool",
}
LAYOUT_CONVENTIONS: Dict[str, Optional[str]] = {"ukbb": "product", "acdc": "acdc", "mnms": "mnms",
                                                "dicom": None, "stack": None}
"""The convention of each study layout's label files (None: the layout carries no labels)."""
SIDECAR_KEY = "label_convention"
STAMP_PREFIX = "cma:"
"""NIfTI intent name prefix of the product's label files: ``cma:product``, ``cma:acdc``, ``cma:mnms``."""

SWAP_MARGIN = 0.25
""":func:`check_label_anatomy` refuses a map whose label 1 borders the background on a fraction of its
in-plane border larger than label 3's by more than this (the phantom: label 1 ~0-0.11, label 3 ~0.6)."""
MIN_BORDER = 20


class LabelConventionError(InputFileError):
    """A label map's convention is unknown, contradictory, or the map looks like another convention."""


def check_convention(name: Optional[str], path: Optional[PathLike] = None) -> str:
    """``name`` if it is one of :data:`CONVENTIONS`, else :class:`LabelConventionError`."""
    if name not in CONVENTIONS:
        raise LabelConventionError(path, f"unknown label convention {name!r}; expected one of {', '.join(CONVENTIONS)}")
    return str(name)


def to_product(labels: np.ndarray, convention: str, path: Optional[PathLike] = None) -> np.ndarray:
    """``labels`` (integers 0..3 in ``convention``) as a ``uint8`` array in the product's convention."""
    table = _TO_PRODUCT[check_convention(convention, path)]
    array = np.asarray(labels)
    if array.size and (array.min() < 0 or array.max() > 3):
        unknown = [v for v in np.unique(array).tolist() if v not in (0, 1, 2, 3)]
        raise LabelConventionError(path, f"unknown label values {unknown[:8]}{' ...' if len(unknown) > 8 else ''}: "
                                         f"the {convention} convention has 0 background, {MEANINGS[convention]}")
    return table[array.astype(np.intp)]


def from_product(labels: np.ndarray, convention: str) -> np.ndarray:
    """Product labels as ``uint8`` labels of ``convention`` (every table here is its own inverse)."""
    table = _TO_PRODUCT[check_convention(convention)]
    inverse = np.argsort(table).astype(np.uint8)
    return inverse[np.asarray(labels).astype(np.intp)]


def sidecar_of(label_path: PathLike) -> Path:
    """The sidecar of a label file: ``labels.nii.gz`` -> ``labels.json``."""
    path = Path(label_path)
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return path.with_name(name[: -len(suffix)] + ".json")
    return path.with_name(path.stem + ".json")


def read_sidecar(label_path: PathLike) -> Dict:
    """The label file's sidecar as a dict ({} if absent); invalid JSON names the sidecar."""
    sidecar = sidecar_of(label_path)
    if not sidecar.is_file():
        return {}
    try:
        value = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LabelConventionError(sidecar, f"unreadable sidecar ({error})") from None
    if not isinstance(value, dict):
        raise LabelConventionError(sidecar, "sidecar must be a JSON object")
    return value


def stamped_convention(path: PathLike) -> Optional[str]:
    """The convention the product's NIfTI writer stamped in ``path``'s header (None: no stamp, not NIfTI
    or unreadable; the readers report unreadable files)."""
    import nibabel as nib

    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")) or not path.is_file():
        return None
    try:
        intent, _, name = nib.load(str(path)).header.get_intent()
    except Exception:  # noqa: BLE001 - unreadable: the reader names the problem later
        return None
    name = str(name)
    if intent != "label" or not name.startswith(STAMP_PREFIX) or name[len(STAMP_PREFIX):] not in CONVENTIONS:
        return None
    return name[len(STAMP_PREFIX):]


def convention_of_label_file(path: PathLike, given: Optional[str] = None) -> str:
    """The convention of a bare label file: ``given`` (``--label-convention``), its sidecar's
    ``label_convention`` or the product's header stamp (:func:`stamped_convention`); those present must
    agree. None: :class:`LabelConventionError` naming the file (a bare map's convention is never guessed)."""
    path = Path(path)
    stored = read_sidecar(path).get(SIDECAR_KEY)
    where = sidecar_of(path).name
    if stored is not None:
        stored = check_convention(stored, sidecar_of(path))
    stamp = stamped_convention(path)
    if stamp is not None:
        if stored is not None and stored != stamp:
            raise LabelConventionError(path, f"{where} ({SIDECAR_KEY}: {stored}) contradicts the header "
                                             f"({STAMP_PREFIX}{stamp})")
        stored, where = stamp, f"the header ({STAMP_PREFIX}{stamp})"
    if given is not None:
        given = check_convention(given, path)
        if stored is not None and stored != given:
            raise LabelConventionError(path, f"--label-convention {given} contradicts {where}"
                                             + ("" if where.startswith("the header") else f" ({SIDECAR_KEY}: {stored})"))
        return given
    if stored is not None:
        return stored
    raise LabelConventionError(
        path, "label convention unknown for a bare label file: give --label-convention "
              + " | ".join(f"{name} ({MEANINGS[name]})" for name in CONVENTIONS)
              + f", or write {sidecar_of(path).name} with {{\"{SIDECAR_KEY}\": \"...\"}}")


def _border_contacts(labels: np.ndarray, label: int) -> tuple:
    """(in-plane border length of ``label`` in pixel edges, fraction of it bordering background)."""
    mask = labels == label
    total = background = 0
    for axis in (-1, -2):
        for shift in (1, -1):
            neighbour = np.roll(labels, shift, axis=axis)
            edge = mask & (neighbour != label)
            total += int(edge.sum())
            background += int((edge & (neighbour == 0)).sum())
    return total, background / max(total, 1)


def label_anatomy(labels: np.ndarray) -> Dict[str, float]:
    """Fractions of the in-plane borders (last two axes) of labels 1 and 3 (product convention) that
    touch the background, and the border lengths (pixel edges)."""
    array = np.asarray(labels)
    n1, f1 = _border_contacts(array, 1)
    n3, f3 = _border_contacts(array, 3)
    return {"border_1": n1, "background_1": f1, "border_3": n3, "background_3": f3}


def check_label_anatomy(labels: np.ndarray, path: Optional[PathLike], convention: str = PRODUCT) -> None:
    """Refuse product-convention ``labels`` (``(..., y, x)``, in-plane last) whose LV blood pool (1)
    borders the background much more than the RV blood pool (3) does: the map was most likely read
    in the wrong convention (``convention`` is the one it was read with, for the message)."""
    stats = label_anatomy(labels)
    if min(stats["border_1"], stats["border_3"]) < MIN_BORDER:
        return
    if stats["background_1"] - stats["background_3"] > SWAP_MARGIN:
        other = "acdc" if convention != "acdc" else "product"
        raise LabelConventionError(
            path, f"read as the {convention} convention ({MEANINGS[convention]}), the LV blood pool borders the "
                  f"background along {100 * stats['background_1']:.0f} % of its outline and the RV blood pool along "
                  f"{100 * stats['background_3']:.0f} %; an LV blood pool is enclosed by myocardium, so the map "
                  f"looks like another convention (e.g. {other}: {MEANINGS[other]}). Check --label-convention.")


__all__ = ["CONVENTIONS", "LAYOUT_CONVENTIONS", "LabelConventionError", "MEANINGS", "PRODUCT", "SIDECAR_KEY",
           "STAMP_PREFIX", "stamped_convention",
           "check_convention", "check_label_anatomy", "convention_of_label_file", "from_product", "label_anatomy",
           "read_sidecar", "sidecar_of", "to_product"]
