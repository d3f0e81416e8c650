"""``cardiac-atlas info`` and ``cardiac-atlas indices``: inspect any supported study folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write_text
from ..io.dicom_consistency import format_dropped
from ..io.layouts import detect_layout, read_study
from ..data.cine_study import CineStudy

DROP_INCOMPLETE_HELP = ("DICOM: leave out unreadable files and slices with missing frames (each drop is printed) "
                        "instead of refusing the study")


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", type=Path, help="UK Biobank-style folder, ACDC/M&Ms patient folder or cine DICOM folder")
    parser.add_argument("--drop-incomplete", action="store_true", help=DROP_INCOMPLETE_HELP)


def read_study_reporting_drops(path: Path, drop_incomplete: bool, prog: str) -> CineStudy:
    """Read a study; with ``drop_incomplete`` every dropped file/slice is printed to stderr."""
    study = read_study(path, drop_incomplete=drop_incomplete)
    for line in format_dropped(study.metadata.get("dropped", [])):
        print(f"{prog}: warning: {line}", file=sys.stderr)
    return study


def run_info(args: argparse.Namespace) -> int:
    layout = detect_layout(args.study)
    study = read_study_reporting_drops(args.study, args.drop_incomplete, "cardiac-atlas info")
    convention = study.metadata.get("label_convention")
    labels = f", labels read in the {convention} convention (shown as the product's)" if convention else ""
    print(f"{study.subject_id}: layout {layout}, {len(study.slices)} slices, {study.n_frames} frames, "
          f"ED frame {study.ed_frame}, ES frame {study.es_frame}, cycle {study.cycle_length_s} s{labels}")
    for s in study.slices:
        spacing = ", ".join(f"{v:.2f}" for v in s.image.spacing)
        normal = ", ".join(f"{v:+.2f}" for v in s.normal)
        labelled = "-" if s.labels is None else f"{len(s.labelled_frames)} labelled frames"
        print(f"  {s.view:4s} {s.image.name:20s} {s.image.array.shape[2]}x{s.image.array.shape[3]} "
              f"spacing ({spacing}) mm, normal RAS ({normal}), {labelled}")
    return 0


def add_indices_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", type=Path, help="study folder with SAX segmentations at ED and ES")
    parser.add_argument("--json", type=Path, help="also write the indices as JSON")
    parser.add_argument("--drop-incomplete", action="store_true", help=DROP_INCOMPLETE_HELP)


def run_indices(args: argparse.Namespace) -> int:
    from ..analysis.clinical_indices import clinical_indices_from_labels
    from ..errors import CineStudyError

    study = read_study_reporting_drops(args.study, args.drop_incomplete, "cardiac-atlas indices")
    if any(s.labels is None for s in study.sax):
        raise CineStudyError(args.study, "no SAX segmentation found (seg_sa*.nii.gz or *_gt.nii.gz)")
    labels = study.sax_stack(labels=True)
    es = study.es_frame
    indices = clinical_indices_from_labels(labels, ed_frame=study.ed_frame, es_frame=es).as_dict()
    for name, value in indices.items():
        unit = "%" if name.endswith("EF") else ("g" if name == "LVM" else "ml")
        print(f"{name:6s} {value:8.1f} {unit}")
    if args.json:
        atomic_write_text(args.json, json.dumps({"subject": study.subject_id, **{k: float(v) for k, v in indices.items()}}, indent=2))
    return 0 if np.isfinite(indices["LVEF"]) else 1
