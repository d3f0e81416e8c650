"""``cardiac-atlas phantom`` and ``cardiac-atlas demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..phantom.acquisition import ACQUISITION_CHOICES
from ..phantom.cmr import CMRConfig
from ..phantom.cohort import CohortConfig, write_cohort
from ..phantom.families import DEFAULT_FAMILY, FAMILY_CHOICES, FAMILY_NAMES
from .options import add_progress_argument, progress_from


def _add_cohort_arguments(parser: argparse.ArgumentParser, default_subjects: int,
                          default_acquisition: str = "fixed") -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--subjects", type=int, default=default_subjects, help="number of subjects")
    parser.add_argument("--seed", type=int, default=0, help="cohort seed (the cohort is deterministic)")
    parser.add_argument("--family", choices=FAMILY_CHOICES, default=DEFAULT_FAMILY,
                        help=f"phantom family (mixed alternates them; default {DEFAULT_FAMILY})")
    parser.add_argument("--acquisition", choices=ACQUISITION_CHOICES, default=default_acquisition,
                        help="fixed: one protocol and pose for all; randomised: heart pose, CMR and CT "
                             f"protocols drawn per subject (default {default_acquisition})")
    parser.add_argument("--frames", type=int, choices=(25, 50), default=None,
                        help="cine frames per cycle (with a randomised acquisition: fixed, the rest drawn)")
    parser.add_argument("--no-ct", action="store_true", help="skip the CT phases")
    parser.add_argument("--tiny", action="store_true", help="tiny images (for tests and smoke runs)")
    add_progress_argument(parser)


def cohort_config_from(args: argparse.Namespace) -> CohortConfig:
    if args.subjects < 1:
        raise SystemExit("--subjects must be >= 1")
    config = CohortConfig.tiny(args.subjects) if args.tiny else CohortConfig(n_subjects=args.subjects)
    config.seed = args.seed
    config.family = getattr(args, "family", DEFAULT_FAMILY)
    config.acquisition = getattr(args, "acquisition", "fixed")
    if args.frames:
        config.cmr = CMRConfig(**{**config.cmr.to_dict(), "n_frames": args.frames})
        config.acquisition_ranges = config.acquisition_ranges.with_frames(args.frames)
    if args.no_ct:
        config.ct = None
    return config


def add_phantom_arguments(parser: argparse.ArgumentParser) -> None:
    _add_cohort_arguments(parser, default_subjects=6, default_acquisition="randomised")


def run_phantom(args: argparse.Namespace) -> int:
    from ..phantom.cohort import cohort_hearts
    from ..phantom.plausibility import plausibility_rows, write_plausibility_csv

    config = cohort_config_from(args)
    folders = write_cohort(args.out, config, progress_from(args))
    print(f"wrote {len(folders)} subjects to {args.out} (subjects already complete were kept)")
    rows = plausibility_rows(cohort_hearts(config))
    path = write_plausibility_csv(rows, args.out / "plausibility.csv")
    outside = [f"{row['subject']} ({row['out_of_range']})" for row in rows if row["out_of_range"]]
    print(f"plausibility (measured volumes, EF, mass, thickening, shortening, torsion vs adult ranges): "
          f"{len(rows) - len(outside)}/{len(rows)} subjects in range; table: {path}")
    for line in outside:
        print(f"  outside a range: {line}")
    return 0


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    from ..main_job.synthetic_cohort import STAGES

    _add_cohort_arguments(parser, default_subjects=6, default_acquisition="randomised")
    parser.add_argument("--train-family", dest="family", choices=FAMILY_CHOICES, default=DEFAULT_FAMILY,
                        help="the family the methods train on (same as --family; --subjects of it, the last held "
                             f"out in-family; default {DEFAULT_FAMILY})")
    parser.add_argument("--test-family", choices=FAMILY_NAMES, default=None,
                        help="family of the one extra cross-family held-out subject (default: a family the "
                             "training family does not contain)")
    parser.add_argument("--stages", nargs="*", choices=STAGES, default=list(STAGES),
                        help="method stages to run after the indices (default: all; none: indices only)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help="torch CPU threads")


def run_demo(args: argparse.Namespace) -> int:
    from ..main_job.synthetic_cohort import run_synthetic_cohort

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.subjects < 3 and args.stages:
        raise SystemExit("--subjects must be >= 3 with method stages (train on all but one, hold one out)")
    report = run_synthetic_cohort(args.out, cohort_config_from(args), progress_from(args), stages=args.stages,
                                  size="tiny" if args.tiny else "quick", device=args.device,
                                  test_family=args.test_family)
    print(report.read_text())
    print(f"results written to {args.out.resolve()} (report: {report.resolve()})")
    return 0
