"""``cardiac-atlas``: the library's command line. Each sub-command lives in its own module and is
registered in :data:`COMMANDS` (``name -> (add_arguments, run)``).

No traceback reaches a user: a library error exits 2 with its message (it names the file and the
problem); anything unexpected exits 2 with one line and the path of a log file holding the full traceback
(:func:`~CardiacMotionAtlasLib.errors.report_error`). Commands that apply a trained model take
``--allow-incomplete`` to use a half-trained (in-progress) checkpoint, which is otherwise refused.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from .. import __version__
from ..errors import run_guarded
from . import nisf_cmd, phantom_cmd, study_cmd
from . import atlas_cmd, batch_cmd, motion_cmd, synth_cmd

Command = Tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]

COMMANDS: Dict[str, Command] = {
    "atlas": (atlas_cmd.add_atlas_arguments, atlas_cmd.run_atlas,
              "spatiotemporal NDF atlas of the LV: train | fit (all frames, ED+ES, ED) | mesh"),
    "batch": (batch_cmd.add_arguments, batch_cmd.run,
              "cohort batch on Dask: one idempotent task per subject (indices | nisf | atlas-fit | motion | synth)"),
    "demo": (phantom_cmd.add_demo_arguments, phantom_cmd.run_demo,
             "main job: synthetic cohort -> clinical indices, meshes, volume curves, report"),
    "phantom": (phantom_cmd.add_phantom_arguments, phantom_cmd.run_phantom,
                "write a synthetic phantom cohort (UK Biobank-style studies + ground truth)"),
    "info": (study_cmd.add_info_arguments, study_cmd.run_info, "describe a study folder (any supported layout)"),
    "indices": (study_cmd.add_indices_arguments, study_cmd.run_indices,
                "clinical indices from a study's SAX segmentations"),
    "motion": (motion_cmd.add_arguments, motion_cmd.run, "CardioMorphNet dense motion with uncertainty: train | estimate"),
    "synth": (synth_cmd.add_arguments, synth_cmd.run,
              "generative CT motion: train the CVAE | sample annotated CT frame pairs"),
    "nisf": (nisf_cmd.add_arguments, nisf_cmd.run,
             "NISF++: 4D intensities and labels from cine slices (train | reconstruct | sample)"),
}


MODEL_COMMANDS = ("atlas", "batch", "motion", "nisf", "synth")
"""Commands whose leaf sub-commands take ``--allow-incomplete``."""
ALLOW_INCOMPLETE_HELP = ("use a checkpoint whose training did not finish (its in-progress <name>.partial.pt); "
                         "refused otherwise. The step count it reached is printed")


def _leaf_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` itself when it has no sub-commands, else the leaves of its sub-command tree."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    if not subs:
        yield parser
        return
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):
            yield from _leaf_parsers(child)


def _add_allow_incomplete(parser: argparse.ArgumentParser) -> None:
    for leaf in _leaf_parsers(parser):
        if "--allow-incomplete" not in leaf._option_string_actions:  # noqa: SLF001
            leaf.add_argument("--allow-incomplete", action="store_true", help=ALLOW_INCOMPLETE_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cardiac-atlas", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"CardiacMotionAtlasLib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, _, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        if name in MODEL_COMMANDS:
            _add_allow_incomplete(command)
    return parser


def _run_command(args: argparse.Namespace) -> int:
    """Run the command, with half-trained checkpoints allowed when asked (also for the processes it
    starts, through the environment) and their warnings printed as one line each."""
    from ..training.completeness import ALLOW_INCOMPLETE_ENV, IncompleteCheckpointWarning, allow_incomplete_checkpoints

    prog = f"cardiac-atlas {args.command}"
    allow = bool(getattr(args, "allow_incomplete", False))

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        if issubclass(category, IncompleteCheckpointWarning):
            print(f"{prog}: warning: {message}", file=sys.stderr, flush=True)
        else:
            previous(message, category, filename, lineno, file, line)

    saved_env = os.environ.get(ALLOW_INCOMPLETE_ENV)
    with warnings.catch_warnings():
        previous = warnings.showwarning
        warnings.showwarning = show
        warnings.simplefilter("always", IncompleteCheckpointWarning)
        try:
            if allow:
                os.environ[ALLOW_INCOMPLETE_ENV] = "1"  # background CLI processes and local Dask workers
            with allow_incomplete_checkpoints(True) if allow else contextlib.nullcontext():
                return COMMANDS[args.command][1](args)
        finally:
            if saved_env is None:
                os.environ.pop(ALLOW_INCOMPLETE_ENV, None)
            else:
                os.environ[ALLOW_INCOMPLETE_ENV] = saved_env


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(f"cardiac-atlas {args.command}", lambda: _run_command(args))


if __name__ == "__main__":
    raise SystemExit(main())
