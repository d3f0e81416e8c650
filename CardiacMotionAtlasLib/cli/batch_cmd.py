"""``cardiac-atlas batch``: one idempotent Dask task per subject of a cohort.

    cardiac-atlas batch --manifest cohort.csv --pipeline indices --out results/
    cardiac-atlas batch --cohort phantom_cohort/ --pipeline atlas-fit --model atlas/atlas.pt --out fits/ \\
        --option setting=ed_es --workers 4
    cardiac-atlas batch --manifest cohort.csv --pipeline nisf --model nisf.pt --out recon/ \\
        --scheduler tcp://scheduler-host:8786

The manifest is a CSV with ``subject`` and ``study`` columns (paths relative to the manifest) and optional
per-subject option columns; ``--cohort DIR`` makes one from the sub-folders of DIR instead. A rerun skips
finished subjects; ``OUT/summary.csv`` lists every subject's status, duration, error and key results.
Exit status: 0 when every subject is done or skipped, 1 when some failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List

from .options import add_progress_argument, progress_from


def _pipeline_help() -> str:
    from ..batch.pipelines import PIPELINES

    return "; ".join(f"{name}: {p.description}" for name, p in sorted(PIPELINES.items()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..batch.pipelines import PIPELINES

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", type=Path, help="CSV: subject, study[, per-subject options]")
    source.add_argument("--cohort", type=Path, help="folder of study folders (one subject each); its manifest is "
                                                    "written to OUT/manifest.csv")
    parser.add_argument("--pipeline", required=True, choices=sorted(PIPELINES), help=_pipeline_help())
    parser.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per subject)")
    parser.add_argument("--model", type=Path, help="trained model for nisf / atlas-fit (= --option model=PATH)")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="pipeline option for every subject (repeatable; manifest columns override)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="existing Dask scheduler (tcp://host:8786, or a scheduler file .json); "
                             "default: a local cluster")
    parser.add_argument("--workers", type=int, default=2, help="local cluster worker processes (default 2)")
    parser.add_argument("--threads-per-worker", type=int, default=1, help="tasks per local worker (default 1)")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch CPU threads per task (default 1)")
    parser.add_argument("--device", help="device for every subject (= --option device=...): cpu, cuda, auto")
    parser.add_argument("--strict", action="store_true", help="check every study path before starting")
    add_progress_argument(parser)


def _options(args: argparse.Namespace) -> Dict[str, str]:
    options: Dict[str, str] = {}
    for text in args.option:
        name, sep, value = text.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"cardiac-atlas batch: --option expects NAME=VALUE, got {text!r}")
        options[name.strip()] = value.strip()
    if args.model is not None:
        options["model"] = str(args.model.expanduser().resolve())
    if args.device is not None:
        options["device"] = args.device
    return options


def run(args: argparse.Namespace) -> int:
    from ..batch import manifest_from_folder, run_batch, write_manifest

    manifest = args.manifest
    if args.cohort is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        manifest = write_manifest(args.out / "manifest.csv", manifest_from_folder(args.cohort))
    result = run_batch(manifest, args.pipeline, args.out, options=_options(args), scheduler=args.scheduler,
                       n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                       torch_threads=args.torch_threads, progress=progress_from(args), check_paths=args.strict)
    done, skipped, failed = (result.count(s) for s in ("done", "skipped", "failed"))
    print(f"batch {args.pipeline}: {done} done, {skipped} skipped (already complete), {failed} failed "
          f"of {len(result.outcomes)} subjects in {result.seconds:.1f} s; summary: {result.summary_path}")
    lines: List[str] = [f"  {o.subject}: {o.error}" for o in result.failed]
    if lines:
        print("failed subjects:\n" + "\n".join(lines), file=sys.stderr)
    return 1 if failed else 0


__all__ = ["add_arguments", "run"]
