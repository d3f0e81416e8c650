"""Options shared by several sub-commands."""

from __future__ import annotations

import argparse

from ..training.progress import PROGRESS_MODES, make_progress_reporter


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="bar on a terminal, 'lines' (PROGRESS <fraction> <message>) for a parent "
                             "process such as the Slicer module, or none")


def progress_from(args: argparse.Namespace):
    return make_progress_reporter(args.progress)
