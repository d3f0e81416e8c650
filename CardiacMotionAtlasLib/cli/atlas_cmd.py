"""``cardiac-atlas atlas train|fit|mesh``: the spatiotemporal Neural Diffeomorphic Flow atlas.

Subjects come from 4D label maps (NIfTI/NRRD, labels 0 bg, 1 LV blood pool, 2 LV myocardium, 3 RV blood
pool; one frame per phase), from subject folders written by ``cardiac-atlas phantom`` (their
``ground_truth/labels_iso.nii.gz`` with the phases and ES frame of ``phantom.json``), or from the
built-in phantom (``--phantom N``: subjects ``0..N-1`` of the cohort seed; ``--phantom-index K``).

    cardiac-atlas atlas train --phantom 8 --out atlas/ [--quick|--tiny] [--resume] [--device cuda]
    cardiac-atlas atlas fit --atlas atlas/atlas.pt --phantom-index 9 --setting ed --out fit/
    cardiac-atlas atlas fit --atlas atlas/atlas.pt --labels subject_labels.nii.gz --setting ed_es --out fit/
    cardiac-atlas atlas mesh --atlas atlas/atlas.pt [--subject fit/phantom009_codes.pt] --phases 25 --out meshes/
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import List

import numpy as np

from .options import add_progress_argument, progress_from


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")


def add_atlas_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="atlas_command", required=True)
    train = sub.add_parser("train", help="train the atlas on a cohort (checkpoint: OUT/atlas.pt)")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument("--labels", type=Path, nargs="+", help="4D label maps or phantom subject folders")
    source.add_argument("--phantom", type=int, metavar="N", help="the first N subjects of the built-in phantom cohort")
    train.add_argument("--frames", type=int, default=10, help="phantom frames per cycle (with --phantom)")
    size = train.add_mutually_exclusive_group()
    size.add_argument("--tiny", action="store_true", help="test-sized networks (seconds)")
    size.add_argument("--quick", action="store_true", help="a few minutes on 2 CPU cores")
    size.add_argument("--large", action="store_true", help="GPU-sized networks")
    train.add_argument("--config", type=Path, help="JSON spec of AtlasConfig (overrides the size flags)")
    train.add_argument("--steps", type=int, help="override the number of training steps")
    train.add_argument("--resume", action="store_true", help="continue from OUT/atlas.pt when it exists")
    train.add_argument("--seed", type=int, default=0, help="phantom cohort seed and training seed")
    train.add_argument("--out", type=Path, required=True)
    _add_device(train)
    add_progress_argument(train)

    fit = sub.add_parser("fit", help="fit a new subject's codes (networks frozen) and write its meshes")
    fit.add_argument("--atlas", type=Path, required=True, help="atlas checkpoint (atlas.pt)")
    source = fit.add_mutually_exclusive_group(required=True)
    source.add_argument("--labels", type=Path, help="4D label map or phantom subject folder")
    source.add_argument("--phantom-index", type=int, metavar="K", help="subject K of the built-in phantom cohort")
    fit.add_argument("--setting", choices=("all", "ed_es", "ed"), default="all", help="frames the fit observes")
    fit.add_argument("--frames", type=int, default=10, help="phantom frames per cycle (with --phantom-index)")
    fit.add_argument("--steps", type=int, help="fitting steps (default from FitConfig)")
    fit.add_argument("--phases", type=int, default=25, help="output meshes per cycle")
    fit.add_argument("--resolution", type=int, help="marching-cubes grid of the template (default 72)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--out", type=Path, required=True)
    _add_device(fit)
    add_progress_argument(fit)

    mesh = sub.add_parser("mesh", help="template meshes over the cycle, or a fitted subject's meshes")
    mesh.add_argument("--atlas", type=Path, required=True)
    mesh.add_argument("--subject", type=Path, help="fitted subject (…_codes.pt from 'fit'); template if absent")
    mesh.add_argument("--phases", type=int, default=25, help="meshes per cycle")
    mesh.add_argument("--resolution", type=int, help="marching-cubes grid of the template (default 72)")
    mesh.add_argument("--out", type=Path, required=True)
    _add_device(mesh)


def _subject_from_labels(path: Path, sampling, seed: int):
    from ..atlas.inputs import subject_from_label_input

    return subject_from_label_input(path, sampling, seed)


def _phantom_subject(index: int, seed: int, frames: int, sampling, with_es: bool = True):
    from ..atlas.sampling import subject_from_phantom
    from ..phantom.heart import PhantomHeart

    heart = PhantomHeart.from_seed(seed, index)
    phases = np.arange(frames) / frames
    if with_es:
        phases = np.sort(np.append(phases, heart.es_phase))
    return subject_from_phantom(heart, phases, sampling, seed=1000 * seed + index)


def _atlas_config(args: argparse.Namespace):
    from ..atlas.config import AtlasConfig
    from ..training.config import load_config_json

    if args.config is not None:
        config = load_config_json(AtlasConfig, args.config)
    elif args.tiny:
        config = AtlasConfig.tiny()
    elif args.quick:
        config = AtlasConfig.quick()
    elif args.large:
        config = AtlasConfig.large()
    else:
        config = AtlasConfig()
    config = replace(config, seed=args.seed)
    return replace(config, steps=args.steps) if args.steps is not None else config


def _write_meshes(mesh, folder: Path) -> List[Path]:
    from ..io.meshes import write_mesh_sequence

    return write_mesh_sequence(mesh, folder, name=mesh.name)


def run_train(args: argparse.Namespace) -> int:
    from ..atlas.train import train_atlas
    from ..training.config import save_config_json
    from ..training.device import describe_device, select_device

    device = select_device(args.device)
    config = _atlas_config(args)
    if args.phantom is not None:
        if args.phantom < 1:
            raise SystemExit("--phantom must be >= 1")
        subjects = [_phantom_subject(i, args.seed, args.frames, config.sampling, with_es=False)
                    for i in range(args.phantom)]
    else:
        subjects = [_subject_from_labels(path, config.sampling, seed=i) for i, path in enumerate(args.labels)]
    args.out.mkdir(parents=True, exist_ok=True)
    save_config_json(config, args.out / "atlas_config.json")
    print(f"training on {len(subjects)} subjects ({describe_device(device)})")
    atlas = train_atlas(subjects, config, device=device, checkpoint_path=args.out / "atlas.pt", resume=args.resume,
                        progress=progress_from(args))
    print(f"atlas written to {args.out / 'atlas.pt'} ({atlas.training_seconds_per_step:.3f} s/step)")
    return 0


def run_fit(args: argparse.Namespace) -> int:
    from ..analysis.volume_curves import VolumeCurve, plot_volume_curves
    from ..atlas.config import FitConfig, MeshConfig
    from ..atlas.evaluation import cavity_volume_curve
    from ..atlas.fit import fit_subject
    from ..atlas.meshing import subject_mesh_sequence, template_mesh_sequence, track_template
    from ..atlas.model import Atlas
    from ..io.atomic import atomic_write_text

    atlas = Atlas.load(args.atlas, device=args.device)
    if args.labels is not None:
        subject = _subject_from_labels(args.labels, atlas.config.sampling, args.seed)
    else:
        subject = _phantom_subject(args.phantom_index, args.seed, args.frames, atlas.config.sampling)
    config = FitConfig(seed=args.seed)
    if args.steps is not None:
        config = replace(config, steps=args.steps)
    fitted = fit_subject(atlas, subject, args.setting, config, progress=progress_from(args))
    args.out.mkdir(parents=True, exist_ok=True)
    codes = fitted.save(args.out / f"{fitted.subject_id}_codes.pt", config)
    phases = np.arange(args.phases) / args.phases
    mesh_config = MeshConfig() if args.resolution is None else MeshConfig(resolution=args.resolution)
    motion = track_template(atlas, mesh_config)
    mesh = subject_mesh_sequence(atlas, fitted, phases, motion, mesh_config)
    paths = _write_meshes(mesh, args.out / "meshes")
    _write_meshes(template_mesh_sequence(atlas, phases, motion, mesh_config), args.out / "template")
    curve = cavity_volume_curve(mesh, fitted.frame)
    plot_volume_curves(VolumeCurve(phases, curve, f"{fitted.subject_id} LV (atlas, {args.setting})"),
                       args.out / "volume_curve.png")
    atomic_write_text(args.out / "volume_curve.json", json.dumps(
        {"subject": fitted.subject_id, "setting": args.setting, "phases": phases.tolist(), "lv_ml": curve.tolist(),
         "sdf_error_mm": fitted.sdf_error_mm, "fit_seconds": fitted.seconds}, indent=1))
    print(f"{fitted.subject_id}: fitted ({args.setting}) in {fitted.seconds:.1f} s, SDF error "
          f"{fitted.sdf_error_mm:.2f} mm; codes {codes}; {len(paths)} meshes in {args.out / 'meshes'}")
    return 0


def run_mesh(args: argparse.Namespace) -> int:
    from ..atlas.config import MeshConfig
    from ..atlas.fit import FittedSubject
    from ..atlas.meshing import subject_mesh_sequence, template_mesh_sequence
    from ..atlas.model import Atlas

    atlas = Atlas.load(args.atlas, device=args.device)
    config = MeshConfig() if args.resolution is None else MeshConfig(resolution=args.resolution)
    phases = np.arange(args.phases) / args.phases
    if args.subject is None:
        mesh = template_mesh_sequence(atlas, phases, config=config)
    else:
        mesh = subject_mesh_sequence(atlas, FittedSubject.load(args.subject, atlas.device), phases, config=config)
    paths = _write_meshes(mesh, args.out)
    print(f"{len(paths)} meshes ({mesh.n_vertices} vertices, shared faces) written to {args.out}")
    return 0


def run_atlas(args: argparse.Namespace) -> int:
    return {"train": run_train, "fit": run_fit, "mesh": run_mesh}[args.atlas_command](args)


__all__ = ["add_atlas_arguments", "run_atlas", "run_train", "run_fit", "run_mesh"]
