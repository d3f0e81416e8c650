"""``cardiac-atlas synth train|sample``: generative CT motion (systole-conditioned CVAE) and annotated pairs.

    cardiac-atlas synth train --out MODEL_DIR [--phantom 12 | --data SUBJECT_DIR ... | --manifest cohort.csv]
                              [--preset tiny|demo|default|large | --tiny | --large | --config spec.json]
                              [--modality auto|ct|cine] [--test ID ... | --train-split F]
                              [--estimator-steps N] [--cvae-steps N] [--seed S] [--resume]
    cardiac-atlas synth sample --model MODEL_DIR/synth.pt --frame ct_ES.nii.gz [--labels seg_ct_ES.nii.gz]
                               --out PAIRS_DIR --samples N [--mode random|line|grid] [--seed S] [--es-phase 0.35]

``sample`` draws ``N`` latents of the mode (standard-normal coordinates of the model's prior for this
frame: ``random`` draws, a ``line`` through the prior mean, a ``grid`` over two latent axes) and writes
``PAIRS_DIR/samples.csv``, one row per sample with its implied LVEF (%, from the warped labels).
``train`` learns from phantom subjects simulated on the fly (``--phantom N``: exact ES/ED flows) or from a
cohort (``--data`` folders or cohort roots, ``--manifest``), whose flows are annotated by SimpleITK
diffeomorphic demons: with ``--modality ct`` (``auto`` when every study has them) the CT phases
``ct_ED.nii.gz``/``ct_ES.nii.gz`` (``seg_ct_ED.nii.gz`` centres the working grid), e.g. a ``cardiac-atlas
phantom`` cohort or real CT; with ``--modality cine`` (``auto`` for CMR-only layouts: ACDC, M&Ms, UK
Biobank-style without CT) the SAX stack's ED and ES frames on a HU-like scale
(:func:`~CardiacMotionAtlasLib.synthesis.data.cine_to_hu`), recorded in ``MODEL_DIR/inputs.json`` so that
``sample`` maps its conditioning frame the same way. It writes ``MODEL_DIR/estimator.pt``,
``MODEL_DIR/synth.pt`` and ``MODEL_DIR/cohort.json`` (the split); ``--resume`` continues an interrupted run. ``sample`` runs
:func:`~CardiacMotionAtlasLib.synthesis.runner.run_synthesis` (the runner the batch and the main job call):
``PAIRS_DIR/pair_<i>/`` folders and ``samples.csv``, published at once (a failure leaves nothing new);
rerunning carries complete pairs over. Every command takes
``--device auto|cpu|cuda[:N]``, ``--threads N`` and ``--progress``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Tuple

from ..errors import InputFileError
from .cohort_options import (add_cohort_arguments, add_label_convention_argument, add_preset_argument,
                             cohort_from_args, read_entry_study, record_path)
from .options import add_device_arguments, apply_threads, progress_from

MODALITIES = ("auto", "ct", "cine")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="synth_command", required=True)
    train = sub.add_parser("train", help="train the flow estimator (pyramid) and the CVAE")
    train.add_argument("--out", type=Path, required=True, help="model folder (estimator.pt, synth.pt)")
    source = train.add_mutually_exclusive_group()
    source.add_argument("--phantom", type=int, default=None, help="simulate N phantom subjects (default 12)")
    add_cohort_arguments(train, source, "subject folders (CT phases ct_ED/ct_ES.nii.gz, or a cine study in any "
                                        "layout) or cohort roots")
    train.add_argument("--modality", choices=MODALITIES, default="auto",
                       help="ct: CT phases; cine: the SAX ED/ES frames; auto: ct when every study has CT phases")
    size = train.add_mutually_exclusive_group()
    add_preset_argument(size)
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
    sample.add_argument("--labels", type=Path, help="its label map, warped too (convention: --label-convention)")
    sample.add_argument("--out", type=Path, required=True, help="output folder")
    sample.add_argument("--n", "--samples", dest="n", type=int, default=3, help="number of samples")
    sample.add_argument("--mode", choices=("random", "line", "grid"), default="random", help="latent layout")
    sample.add_argument("--seed", type=int, default=0, help="seed of the random latents")
    sample.add_argument("--es-phase", type=float, default=0.35, help="cardiac phase of the conditioning frame")
    add_label_convention_argument(sample)
    add_device_arguments(sample)


def _subject_folders(paths: List[Path]) -> List[Path]:
    """Folders holding ``ct_ED.nii.gz`` under ``paths`` (kept for callers; ``train`` uses the cohort)."""
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


def _ct_pair(entry, config):
    from ..io.nifti import read_nifti
    from ..synthesis.data import pair_from_frames

    folder = entry.path
    ed, es = read_nifti(folder / "ct_ED.nii.gz"), read_nifti(folder / "ct_ES.nii.gz")
    if ed.shape_zyx != es.shape_zyx or not (abs(ed.ijk_to_ras - es.ijk_to_ras) < 1e-4).all():
        raise InputFileError(folder / "ct_ES.nii.gz", "grid differs from ct_ED.nii.gz")
    seg = folder / "seg_ct_ED.nii.gz"  # centres the working grid only (any convention: labels > 0)
    labels = read_nifti(seg, labels=True).array[0] if seg.is_file() else None
    return pair_from_frames(ed.array[0], es.array[0], ed.ijk_to_ras, config, labels, entry.subject_id)


def _cine_pair(entry, config):
    from ..io.layout_common import sax_volume
    from ..synthesis.data import pair_from_frames
    from ..synthesis.data import cine_to_hu

    study = read_entry_study(entry)
    if study.es_frame is None:
        raise InputFileError(entry.path, "the ES frame is unknown; a cine pair needs ED and ES")
    stack = sax_volume(study.sax, name=study.subject_id)
    labels = None
    if all(s.labels is not None and study.ed_frame in (s.labelled_frames or []) for s in study.sax):
        labels = sax_volume(study.sax, labels=True).array[study.ed_frame]
    ed, es = (cine_to_hu(stack.array[f]) for f in (study.ed_frame, study.es_frame))
    return pair_from_frames(ed, es, stack.ijk_to_ras, config, labels, entry.subject_id)


def _cohort_pairs(args: argparse.Namespace, config) -> Tuple[list, str, list]:
    """(pairs, modality, entries) of the training studies of ``--data`` / ``--manifest``."""
    from ..io.cohort_scan import raise_problems, scan_study

    scans = cohort_from_args(args, title="synth train", return_scans=True)
    train = [s for s in scans if s.entry.split == "train"]
    modality = args.modality
    if modality == "auto":
        modality = "ct" if all(s.has_ct for s in train) else "cine"
    raise_problems([scan_study(s.entry, ("ct",) if modality == "ct" else ("es",)) for s in train])
    make = _ct_pair if modality == "ct" else _cine_pair
    print(f"training the CT motion CVAE on {len(train)} studies ({modality} ED/ES pairs, demons-annotated): "
          f"{', '.join(s.entry.subject_id for s in train)}", flush=True)
    return [make(s.entry, config) for s in train], modality, [s.entry for s in scans]


def _pairs(args: argparse.Namespace, config) -> list:
    from ..phantom.heart import PhantomHeart
    from ..synthesis import phantom_pairs

    n = 12 if args.phantom is None else args.phantom
    if n < 1:
        raise InputFileError(None, f"--phantom must be >= 1, got {n}")
    return phantom_pairs([PhantomHeart.from_seed(config.seed, i) for i in range(n)], config, seed=config.seed)


def _train(args: argparse.Namespace) -> int:
    import json

    from ..io.atomic import atomic_write_text
    from ..io.cohort import write_cohort_record
    from ..synthesis import SynthConfig, train_synthesis
    from ..synthesis.data import CINE_HU_SCALE, CINE_PERCENTILE
    from ..synthesis.runner import INPUTS_RECORD
    from ..training import load_config_json
    from .presets import synth_preset

    if args.config:
        config = load_config_json(SynthConfig, args.config)
    elif args.preset:
        config = synth_preset(args.preset, 0 if args.seed is None else args.seed)
    else:
        config = SynthConfig.tiny() if args.tiny else (SynthConfig.large() if args.large else SynthConfig())
    for name, value in (("estimator_steps", args.estimator_steps), ("cvae_steps", args.cvae_steps), ("seed", args.seed)):
        if value is not None:
            setattr(config, name, value)
    config = config.validate()
    entries, modality = [], "ct"
    if args.data or args.manifest:
        pairs, modality, entries = _cohort_pairs(args, config)
    else:
        pairs = _pairs(args, config)
    trained = train_synthesis(pairs, config, out_dir=args.out, resume=args.resume, device=args.device,
                              progress=progress_from(args))
    inputs = {"modality": modality}
    if modality == "cine":
        inputs.update(cine_percentile=CINE_PERCENTILE, cine_hu_scale=CINE_HU_SCALE)
    atomic_write_text(args.out / INPUTS_RECORD, json.dumps(inputs, indent=1) + "\n")
    if entries:
        write_cohort_record(record_path(args.out), entries, {"method": "synth", "preset": args.preset,
                                                             "modality": modality})
    metrics = trained.result.metrics if trained.result is not None else {}
    print(f"trained CT motion CVAE on {len(pairs)} {modality} pairs (mse {metrics.get('mse', float('nan')):.4g} "
          f"voxels^2, kl {metrics.get('kl', float('nan')):.4g}); model: {args.out / 'synth.pt'} ({trained.model_version})")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from ..synthesis import load_synthesis
    from ..synthesis.runner import run_synthesis

    trained = load_synthesis(args.model, device=args.device)
    run = run_synthesis(trained, args.frame, args.out, labels=args.labels,
                        label_convention=args.label_convention or "product", n=args.n, mode=args.mode,
                        seed=args.seed, es_phase=args.es_phase, progress=progress_from(args))
    for folder, row in zip(run.folders, run.rows):
        implied = (f"implied LVEF {row['implied_lvef_pct']} %, myocardial volume change {row['myo_change_pct']} %"
                   if row["implied_lvef_pct"] else "no labels: no implied LVEF")
        print(f"pair: {folder} ({implied}; max flow {row['max_flow_mm']} mm)")
    print(f"sample table: {run.paths['samples']}")
    return 0


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    return {"train": _train, "sample": _sample}[args.synth_command](args)


__all__ = ["add_arguments", "run"]
