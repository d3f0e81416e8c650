"""``cardiac-atlas motion train|estimate``: CardioMorphNet dense motion from cine SAX stacks.

    cardiac-atlas motion train (--data COHORT_DIR ... | --manifest cohort.csv) --out motion.pt
        [--preset tiny|demo|default|large | --tiny | --large | --config spec.json] [--test ID ... | --train-split F]
        [--steps N] [--seg-steps N] [--no-segnet] [--factor 2 --crop 40 --frames 10] [--resume]
    cardiac-atlas motion estimate --model motion.pt --study SUBJECT_DIR --out OUT_DIR [--samples 16]
        [--segnet-ed] [--preset P] [--factor 2 --crop 40 --frames 10]

``--data`` takes study folders or cohort roots in any layout (UK Biobank-style, ACDC, M&Ms, phantom),
``--manifest`` a CSV/JSON of subject, path, split; training uses each ``train`` study's SAX stack and its
labels at ED and ES (checked from headers, with the other input problems, before anything is loaded) and
records the split and the grid reduction in ``<out stem>.cohort.json``. ``--factor``/``--crop``/``--frames``
reduce the grid (in-plane averaging, crop around the heart, evenly spaced frames with ED and ES kept);
``--preset tiny|demo`` reduces it as the main job does (about 4 mm pixels, a 125 mm crop, 8 frames,
resolved from the first training study's pixel size), explicit options win. The checkpoint stores what
``estimate`` needs (reduction or preset, intensity normalisation, the training grid; ``motion.preprocessing``):
``estimate`` applies it without options and refuses options that differ (older checkpoints: the cohort
record next to the model, else the options as given). ``estimate`` is :func:`~CardiacMotionAtlasLib.motion.runner.run_motion`
(the one runner; its docstring names the outputs): ED -> t DVFs (Slicer grid transforms), uncertainty, warped
labels, indices (CSV/JSON with 95 % bounds), strain, volume curves (CSV, PNG), published at once.
Every command takes ``--device auto|cpu|cuda[:N]``, ``--threads N`` and ``--progress``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Tuple

from .cohort_options import (add_preset_argument, add_train_parser, cohort_from_args, read_entry_study,
                             record_path, study_entry, training_entries)
from .options import add_device_arguments, apply_threads, progress_from


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--factor", type=int, help="in-plane downsampling factor (integer; default 1)")
    parser.add_argument("--crop", type=int, help="crop the (downsampled) grid to this many pixels around the heart")
    parser.add_argument("--frames", type=int, help="keep about this many evenly spaced frames (ED, ES kept)")
    add_device_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="motion_command", required=True)
    train, _ = add_train_parser(sub, help="train CardioMorphNet on studies with ED/ES SAX labels",
                                out_help="checkpoint file (.pt), written atomically",
                                sizes=(("--large", "GPU sizes"),), config_of="a MotionConfig")
    train.add_argument("--steps", type=int, help="override the motion training steps")
    train.add_argument("--seg-steps", type=int, help="override the SegNet training steps")
    train.add_argument("--no-segnet", action="store_true", help="ablation: no SegNet guidance")
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
    add_preset_argument(estimate)
    _add_common(estimate)


def _reduction(args: argparse.Namespace, pixel_mm: float) -> Tuple[int, Optional[int], Optional[int]]:
    """(factor, crop, frames): explicit options, else the preset's reduction resolved for ``pixel_mm``."""
    from ..motion.preprocessing import resolve_reduction

    reduction, _ = resolve_reduction(None, "motion", pixel_mm, args.factor, args.crop, args.frames,
                                     getattr(args, "preset", None))
    return reduction or (1, None, None)


def load_sequence(study, args: argparse.Namespace, percentile: float = 99.0,
                  reduction: Optional[Tuple[int, Optional[int], Optional[int]]] = None):
    """A study (a :class:`CineStudy`, or a folder read in any layout) as a (possibly reduced)
    :class:`MotionSequence` with its ED/ES labels; ``reduction`` = (factor, crop, frames), default from
    ``args`` (see :func:`_reduction`)."""
    from ..motion.data import sequence_from_study
    from ..motion.preprocessing import reduce_sequence

    if not hasattr(study, "slices"):
        study = read_entry_study(study_entry(Path(study), args))
    sequence = sequence_from_study(study, percentile, ed_es_only=True)
    return reduce_sequence(sequence, reduction or _reduction(args, float(sequence.spacing[0])))


def _train(args: argparse.Namespace) -> int:
    from ..io.cohort import write_cohort_record
    from ..motion import MotionConfig, train_motion
    from ..motion.baselines import no_segnet_config
    from ..training import load_config_json
    from .presets import motion_preset

    if args.config:
        config = load_config_json(MotionConfig, args.config)
    elif args.preset:
        config = motion_preset(args.preset).config
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
    entries = cohort_from_args(args, needs=("ed_es_labels",), title="motion train")
    train = training_entries(entries)
    studies = [read_entry_study(entry) for entry in train]
    pixel_mm = float(studies[0].sax[0].image.spacing[0])  # i spacing, as the main job
    reduction = _reduction(args, pixel_mm)
    print(f"training CardioMorphNet on {len(studies)} studies (factor {reduction[0]}, crop {reduction[1]}, frames "
          f"{reduction[2]}): {', '.join(e.subject_id for e in train)}", flush=True)
    sequences = [load_sequence(study, args, config.intensity_percentile, reduction) for study in studies]
    from ..motion.preprocessing import preprocessing_record

    explicit = any(v is not None for v in (args.factor, args.crop, args.frames))
    record = preprocessing_record(sequences, config, reduction, args.preset if args.preset and not explicit else None)
    trained = train_motion(sequences, config, checkpoint_path=args.out, resume=args.resume, device=args.device,
                           progress=progress_from(args), preprocessing=record)
    record = write_cohort_record(record_path(args.out), entries, {
        "method": "motion", "preset": args.preset,
        "reduction": {"factor": reduction[0], "crop": reduction[1], "frames": reduction[2]}})
    metrics = trained.result.metrics if trained.result is not None else {}
    print(f"trained CardioMorphNet on {len(sequences)} studies ({config.seg_steps if config.uses_segnet else 0} "
          f"SegNet + {config.steps} motion steps, shape loss {metrics.get('shape', float('nan')):.4g}); "
          f"checkpoint: {args.out}; cohort: {record}")
    return 0


def _recorded_reduction(model: Path) -> Optional[Tuple[int, Optional[int], Optional[int]]]:
    """(factor, crop, frames) that ``motion train`` recorded in ``<model stem>.cohort.json``, or None."""
    path = record_path(model)
    if not path.is_file():
        return None
    try:
        reduction = json.loads(path.read_text(encoding="utf-8")).get("reduction")
        return int(reduction["factor"]), reduction.get("crop") or None, reduction.get("frames") or None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _estimate(args: argparse.Namespace) -> int:
    from ..motion import load_motion
    from ..motion.runner import run_motion

    trained = load_motion(args.model, device=args.device)
    factor, crop, frames = args.factor, args.crop, args.frames
    if not trained.preprocessing and args.preset is None and factor is None and crop is None and frames is None:
        recorded = _recorded_reduction(args.model)  # the training's grid, as recorded by 'motion train'
        if recorded is not None:
            factor, crop, frames = recorded
            print(f"grid reduction of the training (factor {factor}, crop {crop}, frames {frames}) from "
                  f"{record_path(args.model)}", flush=True)
    study = read_entry_study(study_entry(Path(args.study), args))
    result = run_motion(trained, study, args.out, factor=factor, crop=crop, frames=frames, preset=args.preset,
                        samples=args.samples, refine_steps=args.refine_steps, use_given_ed_labels=not args.segnet_ed,
                        progress=progress_from(args), log=lambda line: print(line, flush=True))
    for what, path in result.paths.items():
        print(f"{what}: {path}")
    print(json.dumps({k: round(v, 2) for k, v in result.estimate.indices.items()}))
    return 0


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    return {"train": _train, "estimate": _estimate}[args.motion_command](args)


__all__ = ["add_arguments", "load_sequence", "run"]
