"""Options every ``train`` command shares for a user's own cohort, and the pre-flight they run.

    --data PATH [PATH ...]          study folders, cohort roots (sub-folders are studies), phantom cohorts
    --manifest FILE.csv|FILE.json   subject, path, split (train | test) [, label_convention]
    --test ID [ID ...]              hold these subjects out (with --data)
    --train-split F                 train on the first ceil(F n) subjects in id order, hold out the rest
    --label-convention C            product | acdc | mnms, for bare label files (study layouts know theirs)
    --preset P                      tiny | demo | default | large (see :mod:`.presets`)

:func:`add_train_parser` declares them, with the size choice, ``--seed`` and ``--resume``, for every method.

:func:`cohort_from_args` finds the studies, applies the split, prints what it found (subjects, frames,
labelled frames, layout, label convention) and raises every input problem at once, all from headers and
metadata, before any heavy preprocessing. :func:`read_entry_study` then reads one study with its
subject id from the folder and refuses a label map that looks read in the wrong convention.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..io.label_conventions import CONVENTIONS
from .presets import PRESETS


def add_cohort_arguments(parser: argparse.ArgumentParser, source: argparse._MutuallyExclusiveGroup,
                         data_help: str = "study folders or cohort roots (UK Biobank-style, ACDC, M&Ms, DICOM, "
                                          "phantom)") -> None:
    """``--data`` and ``--manifest`` (into the command's mutually exclusive ``source`` group), the split
    options and ``--label-convention``."""
    source.add_argument("--data", type=Path, nargs="+", help=data_help)
    source.add_argument("--manifest", type=Path, help="CSV or JSON: subject, path, split (train|test)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--test", nargs="+", metavar="ID", help="subject ids to hold out (not trained on)")
    split.add_argument("--train-split", type=float, metavar="F",
                       help="train on the first ceil(F x n) subjects in id order, hold out the rest")
    add_label_convention_argument(parser)


def add_label_convention_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--label-convention", choices=CONVENTIONS,
                        help="label convention of bare label files: product (1 LV blood pool, 2 LV myocardium, "
                             "3 RV), acdc (1 RV, 2 myocardium, 3 LV), mnms (1 LV, 2 myocardium, 3 RV); study "
                             "layouts carry their own")


def add_preset_argument(group) -> None:
    group.add_argument("--preset", choices=PRESETS,
                       help="tiny (tests) | demo (the main job's settings) | default | large (GPU); explicit "
                            "options override it")


def add_train_parser(subparsers, *, help: str, out_help: str, sizes: Sequence[Tuple[str, str]], config_of: str,
                     seed_default: Optional[int] = None) -> Tuple[argparse.ArgumentParser, argparse._MutuallyExclusiveGroup]:
    """The ``train`` sub-command every method has: the cohort source (``--data``/``--manifest``, split,
    label convention), ``--out``, one size choice (``--preset``, ``--tiny``, the method's ``sizes`` flags,
    ``--config JSON``), ``--seed`` and ``--resume``. Returns the parser and its source group (a method may add
    sources of its own, e.g. ``--phantom N``)."""
    train = subparsers.add_parser("train", help=help)
    source = train.add_mutually_exclusive_group(required=True)
    add_cohort_arguments(train, source)
    train.add_argument("--out", type=Path, required=True, help=out_help)
    size = train.add_mutually_exclusive_group()
    add_preset_argument(size)
    size.add_argument("--tiny", action="store_true", help="tiny configuration (tests, smoke runs; = --preset tiny)")
    for flag, flag_help in sizes:
        size.add_argument(flag, action="store_true", help=flag_help)
    size.add_argument("--config", type=Path, help=f"JSON spec of {config_of} (overrides the preset)")
    train.add_argument("--seed", type=int, default=seed_default, help="override the seed (phantom cohort and training)")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoint at --out when it exists")
    return train, source


def cohort_from_args(args: argparse.Namespace, needs: Sequence[str] = (), title: str = "cohort",
                     bare_files_are_labels: bool = False, paths: Optional[Sequence[Path]] = None,
                     return_scans: bool = False):
    """The cohort's entries (split applied) after a printed pre-flight; raises all input problems of the
    training studies at once (a held-out study's problems are printed). ``return_scans``: return the
    :class:`~CardiacMotionAtlasLib.io.cohort_scan.StudyScan` list instead (each has its entry)."""
    from ..io.cohort import CohortError, apply_split, find_studies, read_cohort_manifest
    from ..io.cohort_scan import format_scan, raise_problems, scan_cohort

    convention = getattr(args, "label_convention", None)
    if getattr(args, "manifest", None) is not None:
        if getattr(args, "test", None) or getattr(args, "train_split", None) is not None:
            raise CohortError(args.manifest, "the manifest gives the split: --test / --train-split go with --data")
        entries = read_cohort_manifest(args.manifest, convention, bare_files_are_labels)
    else:
        entries = find_studies(paths if paths is not None else args.data, convention, bare_files_are_labels)
        entries = apply_split(entries, getattr(args, "test", None), getattr(args, "train_split", None))
    scans = scan_cohort(entries, needs)
    print(format_scan(scans, title), flush=True)
    raise_problems([s for s in scans if s.entry.split == "train"])
    return scans if return_scans else entries


def training_entries(entries) -> List:
    return [e for e in entries if e.split == "train"]


def record_path(out: Path) -> Path:
    """Where a train command records its cohort: ``OUT/cohort.json`` for a model folder, else
    ``<checkpoint stem>.cohort.json`` next to the checkpoint file."""
    out = Path(out)
    return out.with_name(out.stem + ".cohort.json") if out.suffix else out / "cohort.json"


def check_study_labels(study, path, convention: Optional[str]) -> None:
    """Refuse a study whose SAX labels (product convention after reading) look swapped."""
    from ..io.label_conventions import check_label_anatomy

    frames = sorted({f for s in study.sax if s.labels is not None for f in (s.labelled_frames or [])})
    if not frames or any(s.labels is None for s in study.sax):
        return
    array = np.concatenate([np.asarray(s.labels.array)[frames] for s in study.sax], axis=1)
    check_label_anatomy(array, path, convention or "product")


def read_entry_study(entry):
    """The :class:`CineStudy` of a cohort entry, its subject id from the entry (the study folder)."""
    from ..errors import CineStudyError
    from ..io.layouts import read_study

    if entry.layout == "labels":
        raise CineStudyError(entry.path, "a bare label file, not a cine study")
    study = read_study(entry.path, entry.layout)
    study.subject_id = entry.subject_id
    check_study_labels(study, entry.path, entry.label_convention)
    return study


def study_entry(path: Path, args: argparse.Namespace, bare_files_are_labels: bool = False):
    """The entry of a single ``--study`` / ``--labels`` path (its id from its folder)."""
    from ..io.cohort import entry_for

    return entry_for(path, getattr(args, "label_convention", None), bare_files_are_labels)


__all__ = ["add_cohort_arguments", "add_label_convention_argument", "add_preset_argument", "check_study_labels",
           "cohort_from_args", "read_entry_study", "record_path", "study_entry", "training_entries"]
