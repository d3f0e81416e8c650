"""``cardiac-atlas``: the library's command line. Each sub-command lives in its own module and is
registered in :data:`COMMANDS` (``name -> (add_arguments, run)``)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, List, Optional, Tuple

from .. import __version__
from ..errors import CardiacMotionAtlasError
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cardiac-atlas", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"CardiacMotionAtlasLib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, _, help_text) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except CardiacMotionAtlasError as error:
        print(f"cardiac-atlas {args.command}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cardiac-atlas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
