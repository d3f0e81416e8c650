"""``cardiac-atlas synth train|sample``: generative CT motion (systole-conditioned CVAE) and annotated pairs.

    cardiac-atlas synth train --out MODEL_DIR [--phantom 12 | --data SUBJECT_DIR ...] [--tiny | --large | --config spec.json]
                              [--estimator-steps N] [--cvae-steps N] [--seed S] [--resume]
    cardiac-atlas synth sample --model MODEL_DIR/synth.pt --frame ct_ES.nii.gz [--labels seg_ct_ES.nii.gz]
                               --out PAIRS_DIR --n N [--mode random|line|grid] [--seed S] [--es-phase 0.35]

``train`` learns from phantom subjects simulated on the fly (``--phantom N``: exact ES/ED flows) or from
folders holding ``ct_ED.nii.gz`` and ``ct_ES.nii.gz`` (and optionally ``seg_ct_ED.nii.gz``), e.g. the
subjects of a ``cardiac-atlas phantom`` cohort or real CT, whose flows are annotated by SimpleITK
diffeomorphic demons. It writes ``MODEL_DIR/estimator.pt`` and ``MODEL_DIR/synth.pt``; ``--resume``
continues an interrupted run. ``sample`` writes ``PAIRS_DIR/pair_<i>/`` folders (see
:mod:`CardiacMotionAtlasLib.synthesis.pairs`); rerunning skips complete pairs. Every command takes
``--device auto|cpu|cuda[:N]``, ``--threads N`` and ``--progress``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

from ..errors import InputFileError
from .options import add_device_arguments, apply_threads, progress_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="synth_command", required=True)
    train = sub.add_parser("train", help="train the flow estimator (pyramid) and the CVAE")
    train.add_argument("--out", type=Path, required=True, help="model folder (estimator.pt, synth.pt)")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--phantom", type=int, default=None, help="simulate N phantom subjects (default 12)")
    source.add_argument("--data", type=Path, nargs="+", help="subject folders with ct_ED/ct_ES.nii.gz, or their parents")
    size = train.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_true", help="tiny configuration (tests, smoke runs)")
    size.add_argument("--large", action="store_true", help="2 mm working grid, wider networks (GPU)")
    size.add_argument("--config", type=Path, help="JSON spec of a SynthConfig")
    train.add_argument("--estimator-steps", type=int, help="override the flow estimator's steps")
    train.add_argument("--cvae-steps", type=int, help="override the CVAE's steps")
    train.add_argument("--seed", type=int, help="override the seed (phantom subjects and training)")
    train.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    add_device_arguments(train)

    sample = sub.add_parser("sample", help="write N annotated pairs for one ES frame")
    sample.add_argument("--model", type=Path, required=True, help="synth.pt from 'synth train'")
    sample.add_argument("--frame", type=Path, required=True, help="conditioning (ES) CT frame, NIfTI (HU)")
    sample.add_argument("--labels", type=Path, help="its label map (0 bg, 1 LV, 2 myo, 3 RV), warped too")
    sample.add_argument("--out", type=Path, required=True, help="output folder")
    sample.add_argument("--n", type=int, default=3, help="number of samples")
    sample.add_argument("--mode", choices=("random", "line", "grid"), default="random", help="latent layout")
    sample.add_argument("--seed", type=int, default=0, help="seed of the random latents")
    sample.add_argument("--es-phase", type=float, default=0.35, help="cardiac phase of the conditioning frame")
    add_device_arguments(sample)


def _subject_folders(paths: List[Path]) -> List[Path]:
    folders = []
    for path in paths:
        if (path / "ct_ED.nii.gz").is_file():
            folders.append(path)
            continue
        found = sorted(child for child in path.iterdir() if (child / "ct_ED.nii.gz").is_file()) if path.is_dir() else []
        if not found:
            raise InputFileError(path, "neither a subject folder with ct_ED.nii.gz/ct_ES.nii.gz nor a folder of them")
        folders.extend(found)
    return folders


def _pairs(args: argparse.Namespace, config) -> list:
    from ..io.nifti import read_nifti
    from ..phantom.heart import PhantomHeart
    from ..synthesis import pair_from_frames, phantom_pairs

    if args.data:
        pairs = []
        for folder in _subject_folders(args.data):
            ed, es = read_nifti(folder / "ct_ED.nii.gz"), read_nifti(folder / "ct_ES.nii.gz")
            if ed.shape_zyx != es.shape_zyx or not (abs(ed.ijk_to_ras - es.ijk_to_ras) < 1e-4).all():
                raise InputFileError(folder / "ct_ES.nii.gz", "grid differs from ct_ED.nii.gz")
            seg = folder / "seg_ct_ED.nii.gz"
            labels = read_nifti(seg, labels=True).array[0] if seg.is_file() else None
            pairs.append(pair_from_frames(ed.array[0], es.array[0], ed.ijk_to_ras, config, labels, folder.name))
        return pairs
    n = 12 if args.phantom is None else args.phantom
    if n < 1:
        raise InputFileError(None, f"--phantom must be >= 1, got {n}")
    return phantom_pairs([PhantomHeart.from_seed(config.seed, i) for i in range(n)], config, seed=config.seed)


def _train(args: argparse.Namespace) -> int:
    from ..synthesis import SynthConfig, train_synthesis
    from ..training import load_config_json

    if args.config:
        config = load_config_json(SynthConfig, args.config)
    else:
        config = SynthConfig.tiny() if args.tiny else (SynthConfig.large() if args.large else SynthConfig())
    for name, value in (("estimator_steps", args.estimator_steps), ("cvae_steps", args.cvae_steps), ("seed", args.seed)):
        if value is not None:
            setattr(config, name, value)
    pairs = _pairs(args, config.validate())
    trained = train_synthesis(pairs, config, out_dir=args.out, resume=args.resume, device=args.device,
                              progress=progress_from(args))
    metrics = trained.result.metrics if trained.result is not None else {}
    print(f"trained CT motion CVAE on {len(pairs)} pairs (mse {metrics.get('mse', float('nan')):.4g} voxels^2, "
          f"kl {metrics.get('kl', float('nan')):.4g}); model: {args.out / 'synth.pt'} ({trained.model_version})")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from ..io.nifti import read_nifti
    from ..synthesis import generate_pairs, load_synthesis

    trained = load_synthesis(args.model, device=args.device)
    frame = read_nifti(args.frame)
    if frame.n_frames != 1:
        raise InputFileError(args.frame, f"{frame.n_frames} frames; the conditioning frame must be one 3D volume")
    labels = None
    if args.labels is not None:
        seg = read_nifti(args.labels, labels=True, allowed_labels=(0, 1, 2, 3))
        if seg.shape_zyx != frame.shape_zyx or not (abs(seg.ijk_to_ras - frame.ijk_to_ras) < 1e-3).all():
            raise InputFileError(args.labels, "grid differs from the conditioning frame's")
        labels = seg.array[0]
    folders = generate_pairs(trained, frame.array[0], args.out, ijk_to_ras=frame.ijk_to_ras, labels=labels, n=args.n,
                             mode=args.mode, seed=args.seed, es_phase=args.es_phase, subject_id=frame.name,
                             progress=progress_from(args))
    for folder in folders:
        print(f"pair: {folder}")
    return 0


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    return {"train": _train, "sample": _sample}[args.synth_command](args)


__all__ = ["add_arguments", "run"]
