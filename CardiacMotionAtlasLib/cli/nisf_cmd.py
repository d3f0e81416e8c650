"""``cardiac-atlas nisf train|reconstruct|sample``: NISF++ 4D intensity and label fields from cine slices.

    cardiac-atlas nisf train (--data COHORT_DIR ... | --manifest cohort.csv) --out nisf.pt
        [--preset tiny|demo|default|large | --tiny | --paper | --config spec.json] [--steps N] [--resume]
        [--test ID ... | --train-split F]
    cardiac-atlas nisf reconstruct --model nisf.pt --study SUBJECT_DIR --out OUT_DIR [--use-labels] [--spacing 1.25]
        [--preset P]
    cardiac-atlas nisf sample --model nisf.pt --fit OUT_DIR/subject_fit.pt --out OUT2 [--spacing 1.0] [--phases 50]

``--data`` takes study folders or folders of study folders (a cohort root in any layout: UK Biobank-style,
ACDC, M&Ms, DICOM, phantom); ``--manifest`` a CSV/JSON of subject, path, split. ``train`` prints what it
found and every input problem before training, trains on the ``train`` studies only and records the split
in ``<out stem>.cohort.json``. ``--preset demo`` is the main job's configuration. Every command takes
``--device auto|cpu|cuda[:N]``, ``--threads N`` and ``--progress``; ``train`` and ``reconstruct`` take
``--resume`` (continue from the last checkpoint of an interrupted run).

``reconstruct`` runs :func:`~CardiacMotionAtlasLib.nisf.reconstruct_subject` (the one NISF++ runner, also
behind the cohort batch, the Slicer Logic and the main job): ``intensity.nii.gz``, ``labels.nii.gz``,
``slices.json``, ``subject_fit.pt``, ``indices.json`` (clinical indices of the sampled labels, also printed
as one JSON line) and with ``--meshes`` ``meshes/``, published at once (a failure leaves nothing at OUT);
the fit's checkpoint ``OUT.fit_checkpoint.pt`` stays beside OUT until then (``--resume`` continues it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List

from ..errors import CineStudyError
from ..io.layouts import detect_layout
from .cohort_options import (add_preset_argument, add_train_parser, cohort_from_args, read_entry_study,
                             record_path, study_entry, training_entries)
from .options import add_device_arguments, apply_threads, progress_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="nisf_command", required=True)
    train, _ = add_train_parser(sub, help="train NISF++ on a cohort of cine studies",
                                out_help="checkpoint file (.pt), written atomically",
                                sizes=(("--paper", "the paper's sizes (GPU)"),), config_of="an NISFConfig")
    train.add_argument("--steps", type=int, help="override the number of training steps")
    add_device_arguments(train)

    recon = sub.add_parser("reconstruct", help="fit a new subject (network frozen) and sample its 4D labels")
    recon.add_argument("--model", type=Path, required=True, help="NISF++ checkpoint from 'nisf train'")
    recon.add_argument("--study", type=Path, required=True, help="the subject's study folder (any layout)")
    recon.add_argument("--out", type=Path, required=True, help="output folder")
    recon.add_argument("--use-labels", action="store_true", help="also fit to the study's labels (Dice)")
    recon.add_argument("--steps", type=int, help="override the number of fitting steps")
    add_preset_argument(recon)
    recon.add_argument("--no-sample", action="store_true", help="only fit (slices.json, subject_fit.pt)")
    recon.add_argument("--labels-only", action="store_true",
                       help="sample the 4D labels alone (no intensity.nii.gz; several times faster)")
    _add_sampling_arguments(recon)
    recon.add_argument("--resume", action="store_true",
                       help="continue an interrupted fit (its checkpoint OUT.fit_checkpoint.pt beside OUT)")
    add_device_arguments(recon)

    sample = sub.add_parser("sample", help="sample a fitted subject on any 4D grid")
    sample.add_argument("--model", type=Path, required=True, help="NISF++ checkpoint from 'nisf train'")
    sample.add_argument("--fit", type=Path, required=True, help="subject_fit.pt from 'nisf reconstruct'")
    sample.add_argument("--out", type=Path, required=True, help="output folder")
    sample.add_argument("--reference", type=Path, help="sample on the grid of this NIfTI image instead")
    _add_sampling_arguments(sample)
    add_device_arguments(sample)


def _add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spacing", type=float, default=1.25, help="isotropic grid spacing (mm)")
    parser.add_argument("--phases", type=int, help="number of equally spaced phases (default: the study's frames)")
    parser.add_argument("--meshes", action="store_true", help="also write label surfaces (VTP) per frame")


def _study_folders(paths: List[Path]) -> List[Path]:
    """Study folders under ``paths`` (each a study or a folder of studies); kept for callers, the train
    commands use :func:`.cohort_options.cohort_from_args`."""
    folders = []
    for path in paths:
        try:
            detect_layout(path)
            folders.append(path)
            continue
        except CineStudyError:
            if not path.is_dir():
                raise
        children = [child for child in sorted(path.iterdir()) if child.is_dir() and not child.name.startswith(".")]
        found = []
        for child in children:
            try:
                detect_layout(child)
                found.append(child)
            except CineStudyError:
                pass
        if not found:
            raise CineStudyError(path, "neither a study folder nor a folder of study folders")
        folders.extend(found)
    return folders


def _train(args: argparse.Namespace) -> int:
    from ..nisf import NISFConfig, train_nisf
    from ..training import load_config_json

    from ..io.cohort import write_cohort_record
    from .presets import nisf_preset

    if args.config:
        config = load_config_json(NISFConfig, args.config)
    elif args.preset:
        config = nisf_preset(args.preset)
    else:
        config = NISFConfig.tiny() if args.tiny else (NISFConfig.paper() if args.paper else NISFConfig())
    if args.steps is not None:
        config.steps = args.steps
    if args.seed is not None:
        config.seed = args.seed
    entries = cohort_from_args(args, title="nisf train")
    train = training_entries(entries)
    studies = [read_entry_study(entry) for entry in train]
    print(f"training NISF++ on {len(studies)} studies ({config.steps} steps): {', '.join(e.subject_id for e in train)}",
          flush=True)
    trained = train_nisf(studies, config, checkpoint_path=args.out, resume=args.resume, device=args.device,
                         progress=progress_from(args))
    record = write_cohort_record(record_path(args.out), entries, {"method": "nisf", "preset": args.preset})
    print(f"trained NISF++ on {len(studies)} studies, {config.steps} steps "
          f"(loss {trained.result.metrics.get('loss', float('nan')):.4g}); checkpoint: {args.out}; cohort: {record}")
    return 0


def _phases(args: argparse.Namespace):
    from ..nisf.runner import equally_spaced_phases

    return None if args.phases is None else equally_spaced_phases(args.phases)


def _reconstruct(args: argparse.Namespace) -> int:
    """Load the model, read the study (pre-flight checks of the cohort reader), then the NISF++ runner."""
    from ..nisf import load_nisf, reconstruct_subject

    trained = load_nisf(args.model, device=args.device)  # --allow-incomplete: the context cli.main opens
    fit_config = None
    if args.preset:
        from .presets import nisf_preset

        fit_config = nisf_preset(args.preset).fit
    study = read_entry_study(study_entry(args.study, args))
    run = reconstruct_subject(trained, study, args.out, fit_config=fit_config, steps=args.steps,
                              use_labels=args.use_labels, sample=not args.no_sample, spacing_mm=args.spacing,
                              phases=args.phases, mesh_labels=(1, 2, 3) if args.meshes else (), checkpoint=True,
                              resume=args.resume, progress=progress_from(args), intensity=not args.labels_only)
    for what, path in run.paths.items():
        print(f"{what}: {path}")
    print(json.dumps(run.key_results(), sort_keys=True))
    return 0


def _sample(args: argparse.Namespace) -> int:
    """Sample a fitted subject on another grid/phases; the outputs are published at once."""
    from ..io.atomic import staged_output_dir
    from ..io.nifti import read_nifti
    from ..nisf import load_nisf
    from ..nisf.fit import load_subject_fit
    from ..nisf.outputs import write_reconstruction

    trained = load_nisf(args.model, device=args.device)
    fit = load_subject_fit(trained, args.fit)
    grid = None
    phases = _phases(args)
    if args.reference is not None:  # its grid, and its frames as equally spaced phases unless --phases
        reference = read_nifti(args.reference)
        grid = (reference.ijk_to_ras, reference.shape_zyx)
        phases = phases if args.phases is not None else list(reference.phases)
    with staged_output_dir(args.out) as staging:
        staged = write_reconstruction(fit, staging, spacing_mm=args.spacing, grid=grid, phases=phases,
                                      mesh_labels=(1, 2, 3) if args.meshes else ())
    for what, path in staged.items():
        print(f"{what}: {args.out / Path(path).relative_to(staging)}")
    return 0


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    return {"train": _train, "reconstruct": _reconstruct, "sample": _sample}[args.nisf_command](args)


__all__ = ["add_arguments", "run"]
