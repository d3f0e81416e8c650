"""The main job's held-out subjects: which family each comes from and whether the models saw that family.

The main job trains every method on subjects of one family (or a mix) and applies it to one held-out
subject of a training family (*in-family*) and one of a family no model saw (*cross-family*); every
stage reports both side by side with its baseline measured on the same hearts (the project's rule for
benchmarks: in-family rows stand beside the cross-family ones, never instead of them).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

from ..phantom.families import DEFAULT_FAMILY

IN_FAMILY, CROSS_FAMILY = "in-family", "cross-family"


def subject_family(folder: Path) -> str:
    """The phantom family of a cohort subject folder (``phantom.json``'s ``"family"``; folders written
    before families existed are ellipsoidal)."""
    sidecar = Path(folder) / "phantom.json"
    if not sidecar.is_file():
        return "unknown"
    return str(json.loads(sidecar.read_text()).get("family", DEFAULT_FAMILY))


def training_families(train_folders: Iterable[Path]) -> List[str]:
    """The families of the training subjects, sorted, without repeats."""
    return sorted({subject_family(folder) for folder in train_folders})


def held_out_role(folder: Path, train_families: Sequence[str]) -> Dict[str, str]:
    """``{"family", "role"}`` of a held-out subject: ``in-family`` when the models trained on its
    family, else ``cross-family``."""
    family = subject_family(folder)
    return {"family": family, "role": IN_FAMILY if family in train_families else CROSS_FAMILY}


def split_cohort(cohort_folders: Sequence[Path], held_out=None):
    """``(train folders, held-out folders)``: with ``held_out`` None, all but the last train and the last
    is held out (the stages' historical behaviour); else ``cohort_folders`` train and ``held_out`` are
    applied to."""
    folders = [Path(f) for f in cohort_folders]
    if held_out is None:
        return folders[:-1], folders[-1:]
    held = [Path(f) for f in held_out]
    overlap = {f.resolve() for f in folders} & {f.resolve() for f in held}
    if overlap:
        raise ValueError(f"held-out subjects are among the training subjects: {sorted(str(p) for p in overlap)}")
    return folders, held


def subject_label(entry: Dict) -> str:
    """``phantom005 (in-family, ellipsoidal)`` for a report row."""
    return f"{entry['subject']} ({entry.get('role', '?')}, {entry.get('family', '?')})"


def fmt(value, digits: int = 2) -> str:
    """A number for a report cell (``-`` when missing or not finite)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{number:.{digits}f}" if math.isfinite(number) else "-"


__all__ = ["CROSS_FAMILY", "IN_FAMILY", "fmt", "held_out_role", "split_cohort", "subject_family", "subject_label",
           "training_families"]
