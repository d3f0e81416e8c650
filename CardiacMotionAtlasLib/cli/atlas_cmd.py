"""``cardiac-atlas atlas train|fit|mesh``: the spatiotemporal Neural Diffeomorphic Flow atlas.

Subjects come from study folders of any layout (UK Biobank-style, ACDC, M&Ms: their SAX labels at the
labelled frames, each layout's label convention converted to the product's), cohort roots whose
sub-folders are studies (``--data``), a manifest (``--manifest``: subject, path, split), subject folders
written by ``cardiac-atlas phantom`` (their ``ground_truth/labels_iso.nii.gz`` with the phases and ES frame
of ``phantom.json``), bare 4D label maps (NIfTI/NRRD, one frame per phase; their convention must be given
with ``--label-convention product|acdc|mnms``, a sidecar ``<stem>.json`` or the product's header stamp; a
file inside an ACDC/M&Ms/UK Biobank-style study folder defaults to that layout's), or the built-in phantom
(``--phantom N``: subjects ``0..N-1`` of the cohort seed; ``--phantom-index K``). Subject ids are the study
folders' names (``.../1000001/labels.nii.gz`` -> ``1000001``). ``train`` prints what it found and every
input problem (from headers) before preprocessing, and records the split in ``OUT/cohort.json``.

``fit`` is the atlas' runner (:func:`~CardiacMotionAtlasLib.atlas.runner.run_atlas_fit`, which names its
outputs: ``<subject>_codes.pt``, ``meshes/``, ``template/``, ``volume_curve.png``/``.json``). ``fit`` and
``mesh`` write into a staging folder beside ``--out`` and publish it at once: a failure leaves nothing
behind. They refuse a half-trained atlas (``atlas.partial.pt``, left by a killed ``train``) unless
``--allow-incomplete``; ``train --resume`` finishes it.

``--preset tiny|demo|default|large`` sets the training, fitting and meshing sizes (``demo``: the main
job's); ``fit`` and ``mesh`` default to the preset the atlas was trained with (recognised from its
configuration). Explicit options (``--steps``, ``--points-per-frame``, ``--tracking-steps``,
``--resolution``) override the preset.

    cardiac-atlas atlas train --data /data/acdc --test patient101 --out atlas/ --preset demo [--resume]
    cardiac-atlas atlas train --labels ukbb/*/labels.nii.gz --label-convention product --out atlas/
    cardiac-atlas atlas fit --atlas atlas/atlas.pt --phantom-index 9 --setting ed --out fit/
    cardiac-atlas atlas fit --atlas atlas/atlas.pt --labels /data/acdc/patient101 --setting ed_es --out fit/
    cardiac-atlas atlas mesh --atlas atlas/atlas.pt [--subject fit/phantom009_codes.pt] --phases 25 --out meshes/
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import List

import numpy as np

from .cohort_options import (add_label_convention_argument, add_preset_argument, add_train_parser,
                             cohort_from_args, record_path, training_entries)
from .options import add_progress_argument, progress_from


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")


def add_atlas_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="atlas_command", required=True)
    train, source = add_train_parser(sub, help="train the atlas on a cohort (checkpoint: OUT/atlas.pt)",
                                     out_help="output folder (atlas.pt, atlas_config.json, cohort.json)",
                                     sizes=(("--quick", "a few minutes on 2 CPU cores (= --preset demo)"),
                                            ("--large", "GPU-sized networks (= --preset large)")),
                                     config_of="an AtlasConfig", seed_default=0)
    source.add_argument("--labels", type=Path, nargs="+",
                        help="study folders, phantom subject folders or bare 4D label maps (--label-convention)")
    source.add_argument("--phantom", type=int, metavar="N", help="the first N subjects of the built-in phantom cohort")
    train.add_argument("--frames", type=int, default=10, help="phantom frames per cycle (with --phantom)")
    train.add_argument("--steps", type=int, help="override the number of training steps")
    train.add_argument("--points-per-frame", type=int, help="override the SDF points per frame and step")
    _add_device(train)
    add_progress_argument(train)

    fit = sub.add_parser("fit", help="fit a new subject's codes (networks frozen) and write its meshes")
    fit.add_argument("--atlas", type=Path, required=True, help="atlas checkpoint (atlas.pt)")
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--labels", type=Path, help="study folder (any layout), phantom subject folder or bare 4D "
                                                    "label map (--label-convention)")
    source.add_argument("--phantom-index", type=int, metavar="K", help="subject K of the built-in phantom cohort")
    add_label_convention_argument(fit)
    fit.add_argument("--setting", choices=("all", "ed_es", "ed"), default="all", help="frames the fit observes")
    fit.add_argument("--frames", type=int, default=10, help="phantom frames per cycle (with --phantom-index)")
    add_preset_argument(fit)
    fit.add_argument("--steps", type=int, help="fitting steps (default: the preset's)")
    fit.add_argument("--points-per-frame", type=int, help="SDF points per frame and fitting step (default: the preset's)")
    _add_mesh_options(fit)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", type=Path, required=True)
    _add_device(fit)
    add_progress_argument(fit)

    mesh = sub.add_parser("mesh", help="template meshes over the cycle, or a fitted subject's meshes")
    mesh.add_argument("--atlas", type=Path, required=True)
    mesh.add_argument("--subject", type=Path, help="fitted subject (…_codes.pt from 'fit'); template if absent")
    add_preset_argument(mesh)
    _add_mesh_options(mesh)
    mesh.add_argument("--out", type=Path, required=True)
    _add_device(mesh)


def _add_mesh_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phases", type=int, default=25, help="output meshes per cycle")
    parser.add_argument("--resolution", type=int, help="marching-cubes grid of the template (default: the preset's)")
    parser.add_argument("--tracking-steps", type=int, help="template phases per cycle of the vertex tracking "
                                                           "(default: the preset's)")


def _phantom_subject(index: int, seed: int, frames: int, sampling, with_es: bool = True):
    from ..atlas.sampling import subject_from_phantom
    from ..phantom.heart import PhantomHeart

    heart = PhantomHeart.from_seed(seed, index)
    phases = np.arange(frames) / frames
    if with_es:
        phases = np.sort(np.append(phases, heart.es_phase))
    return subject_from_phantom(heart, phases, sampling, seed=1000 * seed + index)


def _train_preset_name(args: argparse.Namespace) -> str:
    if args.preset:
        return args.preset
    return "tiny" if args.tiny else "demo" if args.quick else "large" if args.large else "default"


def _atlas_config(args: argparse.Namespace):
    from ..atlas.config import AtlasConfig
    from ..training.config import load_config_json
    from .presets import atlas_preset

    if args.config is not None:
        config = load_config_json(AtlasConfig, args.config)
    else:
        config = atlas_preset(_train_preset_name(args)).config
    config = replace(config, seed=args.seed)
    if args.points_per_frame is not None:
        config = replace(config, points_per_frame=args.points_per_frame)
    return replace(config, steps=args.steps) if args.steps is not None else config


def _applied_preset(args: argparse.Namespace, atlas):
    """The preset ``fit``/``mesh`` use: ``--preset``, else the one the atlas was trained with."""
    from .presets import applied_atlas_preset

    return applied_atlas_preset(atlas.config, args.preset)


def _mesh_config(args: argparse.Namespace, preset):
    config = preset.mesh
    if args.resolution is not None:
        config = replace(config, resolution=args.resolution)
    if args.tracking_steps is not None:
        config = replace(config, tracking_steps=args.tracking_steps)
    return config


def _load_atlas(args: argparse.Namespace):
    """(atlas, ``{"atlas_step": n, "atlas_complete": bool}``): a half-trained atlas is refused by the
    checkpoint loader unless ``--allow-incomplete`` (then a warning gives its step count)."""
    from ..atlas.model import load_atlas
    from ..training.checkpoint import load_checkpoint

    atlas = load_atlas(args.atlas, args.device)
    checkpoint = load_checkpoint(args.atlas, expected_kind="atlas", allow_incomplete=True)
    return atlas, {"atlas_step": checkpoint.step, "atlas_complete": checkpoint.complete}


def _write_meshes(mesh, folder: Path) -> List[Path]:
    from ..io.meshes import write_mesh_sequence

    return write_mesh_sequence(mesh, folder, name=mesh.name)


def run_train(args: argparse.Namespace) -> int:
    from ..atlas.inputs import subject_from_entry
    from ..atlas.train import train_atlas
    from ..io.cohort import write_cohort_record
    from ..training.config import save_config_json
    from ..training.device import describe_device, select_device

    config = _atlas_config(args)
    entries = []
    if args.phantom is not None:
        if args.phantom < 1:
            raise SystemExit("--phantom must be >= 1")
    else:  # pre-flight from headers: every input problem before the (slow) SDF sampling
        entries = cohort_from_args(args, needs=("labels",), title="atlas train", bare_files_are_labels=True,
                                   paths=args.labels if args.labels else args.data)
    device = select_device(args.device)
    if args.phantom is not None:
        subjects = [_phantom_subject(i, args.seed, args.frames, config.sampling, with_es=False)
                    for i in range(args.phantom)]
    else:
        train = training_entries(entries)
        print(f"sampling the SDFs of {len(train)} training subjects: {', '.join(e.subject_id for e in train)}",
              flush=True)
        subjects = [subject_from_entry(entry, config.sampling, seed=i) for i, entry in enumerate(train)]
    args.out.mkdir(parents=True, exist_ok=True)
    save_config_json(config, args.out / "atlas_config.json")
    if entries:
        write_cohort_record(record_path(args.out), entries, {"method": "atlas", "preset": _train_preset_name(args)})
    print(f"training on {len(subjects)} subjects ({describe_device(device)})")
    atlas = train_atlas(subjects, config, device=device, checkpoint_path=args.out / "atlas.pt", resume=args.resume,
                        progress=progress_from(args))
    print(f"atlas written to {args.out / 'atlas.pt'} ({atlas.training_seconds_per_step:.3f} s/step)")
    return 0


def _fit_subject_data(args: argparse.Namespace, sampling):
    from ..atlas.inputs import layout_label_convention, subject_from_entry
    from ..io.cohort import entry_for
    from ..io.cohort_scan import format_scan, raise_problems, scan_study

    if args.labels is None:
        return _phantom_subject(args.phantom_index, args.seed, args.frames, sampling)
    convention = args.label_convention
    if convention is None:  # a bare label file inside a study folder: that layout's convention
        inherited = layout_label_convention(args.labels)
        if inherited is not None:
            convention = inherited[0]
            print(f"{args.labels}: label convention {convention} (the {inherited[1]} layout of its folder; "
                  "--label-convention overrides)", flush=True)
    entry = entry_for(args.labels, convention, bare_files_are_labels=True)
    scan = scan_study(entry, ("labels",))
    print(format_scan([scan], "atlas fit"), flush=True)
    raise_problems([scan])
    return subject_from_entry(entry, sampling, args.seed)


def run_fit(args: argparse.Namespace) -> int:
    """Load the atlas, read the subject (pre-flight messages), then :func:`~..atlas.runner.run_atlas_fit`
    (every output published at once into ``--out``; file names in the runner's docstring)."""
    from ..atlas.runner import run_atlas_fit

    atlas, atlas_state = _load_atlas(args)
    preset, source = _applied_preset(args, atlas)
    subject = _fit_subject_data(args, atlas.config.sampling)
    fit_config = replace(preset.fit, seed=args.seed)
    if args.steps is not None:
        fit_config = replace(fit_config, steps=args.steps)
    if args.points_per_frame is not None:
        fit_config = replace(fit_config, points_per_frame=args.points_per_frame)
    mesh_config = _mesh_config(args, preset)
    print(f"fit preset {preset.name} ({source}): {fit_config.steps} steps, {fit_config.points_per_frame} "
          f"points/frame; mesh grid {mesh_config.resolution}, {mesh_config.tracking_steps} tracking steps", flush=True)
    run = run_atlas_fit(atlas, subject, args.out, setting=args.setting, phases=args.phases, fit_config=fit_config,
                        mesh_config=mesh_config, record={"preset": preset.name, **atlas_state},
                        progress=progress_from(args))
    print(f"{run.subject_id}: fitted ({args.setting}) in {run.fitted.seconds:.1f} s, SDF error "
          f"{run.fitted.sdf_error_mm:.2f} mm; codes {run.paths['codes']}; {run.meshes.n_frames} meshes in "
          f"{run.paths['meshes']}")
    return 0


def run_mesh(args: argparse.Namespace) -> int:
    from ..atlas.fit import FittedSubject
    from ..atlas.meshing import subject_mesh_sequence, template_mesh_sequence
    from ..io.atomic import staged_output_dir

    atlas, _ = _load_atlas(args)
    config = _mesh_config(args, _applied_preset(args, atlas)[0])
    phases = np.arange(args.phases) / args.phases
    if args.subject is None:
        mesh = template_mesh_sequence(atlas, phases, config=config)
    else:
        mesh = subject_mesh_sequence(atlas, FittedSubject.load(args.subject, atlas.device), phases, config=config)
    with staged_output_dir(args.out) as out:
        paths = [args.out / p.relative_to(out) for p in _write_meshes(mesh, out)]
    print(f"{len(paths)} meshes ({mesh.n_vertices} vertices, shared faces) written to {args.out}")
    return 0


def run_atlas(args: argparse.Namespace) -> int:
    return {"train": run_train, "fit": run_fit, "mesh": run_mesh}[args.atlas_command](args)


__all__ = ["add_atlas_arguments", "run_atlas", "run_train", "run_fit", "run_mesh"]
