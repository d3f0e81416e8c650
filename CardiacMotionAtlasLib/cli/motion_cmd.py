"""``cardiac-atlas motion train|estimate``: CardioMorphNet dense motion from cine SAX stacks.

    cardiac-atlas motion train --data COHORT_DIR --out motion.pt [--tiny | --large | --config spec.json]
        [--steps N] [--seg-steps N] [--no-segnet] [--factor 2 --crop 40 --frames 10] [--resume]
    cardiac-atlas motion estimate --model motion.pt --study SUBJECT_DIR --out OUT_DIR [--samples 16]
        [--segnet-ed] [--factor 2 --crop 40 --frames 10]

``--data`` takes study folders or folders of study folders (a phantom cohort); training uses each
study's SAX stack and its labels at ED and ES. ``--factor``/``--crop``/``--frames`` reduce the grid
(in-plane averaging, crop around the heart, evenly spaced frames with ED and ES kept); ``estimate`` must
use the values the model was trained with. Outputs of ``estimate``: ED -> t DVFs (Slicer grid transforms),
uncertainty, warped labels, indices (CSV/JSON with 95 % bounds), strain, volume curves (CSV, PNG).
Every command takes ``--device auto|cpu|cuda[:N]``, ``--threads N`` and ``--progress``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..io.layouts import read_study
from .nisf_cmd import _study_folders
from .options import add_device_arguments, apply_threads, progress_from


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--factor", type=int, default=1, help="in-plane downsampling factor (integer)")
    parser.add_argument("--crop", type=int, help="crop the (downsampled) grid to this many pixels around the heart")
    parser.add_argument("--frames", type=int, help="keep about this many evenly spaced frames (ED, ES kept)")
    add_device_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="motion_command", required=True)
    train = sub.add_parser("train", help="train CardioMorphNet on studies with ED/ES SAX labels")
    train.add_argument("--data", type=Path, nargs="+", required=True, help="study folders or cohort folders")
    train.add_argument("--out", type=Path, required=True, help="checkpoint file (.pt), written atomically")
    size = train.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_true", help="tiny configuration (tests, smoke runs)")
    size.add_argument("--large", action="store_true", help="GPU sizes")
    size.add_argument("--config", type=Path, help="JSON spec of a MotionConfig")
    train.add_argument("--steps", type=int, help="override the motion training steps")
    train.add_argument("--seg-steps", type=int, help="override the SegNet training steps")
    train.add_argument("--no-segnet", action="store_true", help="ablation: no SegNet guidance")
    train.add_argument("--seed", type=int, help="override the seed")
    train.add_argument("--resume", action="store_true", help="continue from --out if it exists")
    _add_common(train)

    estimate = sub.add_parser("estimate", help="estimate the motion of one study")
    estimate.add_argument("--model", type=Path, required=True, help="checkpoint from 'motion train'")
    estimate.add_argument("--study", type=Path, required=True, help="the subject's study folder (any layout)")
    estimate.add_argument("--out", type=Path, required=True, help="output folder")
    estimate.add_argument("--samples", type=int, help="posterior samples (default: the model's config)")
    estimate.add_argument("--refine-steps", type=int, help="refinement steps of the posterior mean on this subject "
                                                           "against SegNet's labels (default: the model's config; "
                                                           "0: the network's amortised mean)")
    estimate.add_argument("--segnet-ed", action="store_true", help="use SegNet's ED segmentation even if the "
                                                                   "study has ED labels")
    _add_common(estimate)


def load_sequence(folder: Path, args: argparse.Namespace, percentile: float = 99.0):
    """A study folder as a (possibly reduced) :class:`MotionSequence` with its ED/ES labels."""
    from ..motion.data import evenly_spaced_frames, resample_sequence, sequence_from_study

    sequence = sequence_from_study(read_study(folder), percentile, ed_es_only=True)
    frames = None
    if args.frames:
        frames = evenly_spaced_frames(sequence.n_frames, args.frames, sequence.ed_frame, sequence.es_frame)
    if args.factor != 1 or args.crop or frames is not None:
        sequence = resample_sequence(sequence, args.factor, args.crop, frames)
    return sequence


def _train(args: argparse.Namespace) -> int:
    from ..motion import MotionConfig, train_motion
    from ..motion.baselines import no_segnet_config
    from ..training import load_config_json

    if args.config:
        config = load_config_json(MotionConfig, args.config)
    else:
        config = MotionConfig.tiny() if args.tiny else (MotionConfig.large() if args.large else MotionConfig())
    if args.steps is not None:
        config.steps = args.steps
    if args.seg_steps is not None:
        config.seg_steps = args.seg_steps
    if args.seed is not None:
        config.seed = args.seed
    if args.no_segnet:
        config = no_segnet_config(config)
    sequences = [load_sequence(folder, args, config.intensity_percentile) for folder in _study_folders(args.data)]
    trained = train_motion(sequences, config, checkpoint_path=args.out, resume=args.resume, device=args.device,
                           progress=progress_from(args))
    metrics = trained.result.metrics if trained.result is not None else {}
    print(f"trained CardioMorphNet on {len(sequences)} studies ({config.seg_steps if config.uses_segnet else 0} "
          f"SegNet + {config.steps} motion steps, shape loss {metrics.get('shape', float('nan')):.4g}); "
          f"checkpoint: {args.out}")
    return 0


def _estimate(args: argparse.Namespace) -> int:
    from ..motion import estimate_motion, load_motion, write_motion_outputs

    trained = load_motion(args.model, device=args.device)
    sequence = load_sequence(args.study, args, trained.config.intensity_percentile)
    estimate = estimate_motion(trained, sequence, samples=args.samples, use_given_ed_labels=not args.segnet_ed,
                               progress=progress_from(args), refine_steps=args.refine_steps)
    paths = write_motion_outputs(estimate, args.out)
    for what, path in paths.items():
        print(f"{what}: {path}")
    print(json.dumps({k: round(v, 2) for k, v in estimate.indices.items()}))
    return 0


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    return {"train": _train, "estimate": _estimate}[args.motion_command](args)


__all__ = ["add_arguments", "load_sequence", "run"]
