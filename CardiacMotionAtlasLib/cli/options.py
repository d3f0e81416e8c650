"""Options shared by several sub-commands."""

from __future__ import annotations

import argparse

from ..training.progress import PROGRESS_MODES, make_progress_reporter


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="bar on a terminal, 'lines' (PROGRESS <fraction> <message>) for a parent "
                             "process such as the Slicer module, or none")


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--threads`` and ``--progress`` (every long-running sub-command)."""
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, help="torch CPU threads (on a shared CPU, 1 is often fastest)")
    add_progress_argument(parser)


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU thread count from ``--threads`` (when given)."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def progress_from(args: argparse.Namespace):
    return make_progress_reporter(args.progress)
