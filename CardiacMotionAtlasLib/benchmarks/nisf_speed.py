"""NISF++ reconstruction time of a UK Biobank-sized study: fitting plus sampling the 4D labels and
intensities on a 1.25 mm grid, previous and new sampling side by side in one run.

    python -m CardiacMotionAtlasLib.benchmarks.nisf_speed [--threads 1] [--train-steps 30] [--fit-steps F]
        [--spacing 1.25] [--frames 50] [--sax 10] [--model nisf.pt] [--bf16] [--labels-only] [--json PATH]

The study: one phantom heart imaged like UK Biobank (10 SAX + 2CH/3CH/4CH, 50 frames, 1.8 mm pixels,
8 mm slices; :class:`~..phantom.cmr.CMRConfig` defaults). The model: the default network
(:class:`~..nisf.config.NISFConfig`), trained ``--train-steps`` on that study alone (the time does not
depend on the weights; ``--model`` loads a trained checkpoint instead, for label agreement that means
something). One fit (the model's stored fit config, as ``nisf reconstruct``), then the grid of
``nisf reconstruct`` (:func:`~..nisf.sampling.standard_grid`, every frame) sampled by each method:
``previous`` (a full forward per phase, session 9), the default (each chunk's points and latent encoded
once for all phases; labels alone coarse to fine, :mod:`..nisf.refine`), optionally ``bf16`` (opt-in
autocast); each for the labels alone (the 4D segmentation) and for labels + intensities (what ``nisf
reconstruct`` writes). Agreement of each method's labels and intensities with the previous method's
(same output) is printed beside its time.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import Dict, List

import numpy as np
import torch

from ..nisf import NISFConfig, fit_subject, train_nisf
from ..nisf.sampling import sample_grid, standard_grid
from ..phantom.cmr import CMRConfig, simulate_cine
from ..phantom.heart import PhantomHeart
from ..training import describe_device, select_device
from .common import benchmark_parser, format_table, machine_description, write_json


def _log(message: str) -> None:
    print(f"[nisf speed {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ukbb_study(frames: int, sax: int, seed: int):
    """A UK Biobank-sized phantom cine study (``sax`` SAX slices + 3 LAX views, ``frames`` frames)."""
    heart = PhantomHeart.from_seed(seed, 0)
    config = CMRConfig(n_frames=frames, min_sax=sax, max_sax=sax)
    return simulate_cine(heart, config, seed=seed).study


def agreement(labels: np.ndarray, reference: np.ndarray) -> Dict[str, float]:
    """Fraction of equal voxels over the heart (either map > 0) and mean Dice of classes 1-3."""
    heart = (labels > 0) | (reference > 0)
    dice = []
    for label in (1, 2, 3):
        a, b = labels == label, reference == label
        total = a.sum() + b.sum()
        if total:
            dice.append(2.0 * (a & b).sum() / total)
    return {"heart_voxels_equal": float((labels[heart] == reference[heart]).mean()) if heart.any() else 1.0,
            "dice_vs_previous": float(np.mean(dice)) if dice else 1.0}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--fit-steps", type=int, default=None, help="override the fit's steps (default: the config's)")
    parser.add_argument("--spacing", type=float, default=1.25, help="sampling grid spacing (mm)")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--sax", type=int, default=10)
    parser.add_argument("--model", default=None, help="a trained NISF++ checkpoint instead of a brief training")
    parser.add_argument("--bf16", action="store_true", help="also time bfloat16 autocast sampling (opt-in)")
    parser.add_argument("--labels-only", action="store_true", help="skip the labels + intensities rows")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    torch.manual_seed(args.seed)
    study = ukbb_study(args.frames, args.sax, args.seed)
    counts = {view: len(study.view(view)) for view in ("SAX", "2CH", "3CH", "4CH")}
    _log(f"study: {counts}, {study.n_frames} frames")
    if args.model:
        from ..nisf.train import load_nisf

        trained = load_nisf(args.model, device)
    else:
        config = NISFConfig()
        config.steps = args.train_steps
        trained = train_nisf([study], config, device=device)
    fit_config = trained.config.fit if args.fit_steps is None else replace(trained.config.fit, steps=args.fit_steps)
    _log(f"fitting ({fit_config.steps} steps, {describe_device(device)})")
    t0 = time.perf_counter()
    fit = fit_subject(trained, study, fit_config)
    fit_s = time.perf_counter() - t0
    ijk_to_ras, shape = standard_grid(fit, args.spacing)
    previous = {"shared_encoding": False, "coarse_to_fine": False}
    methods = [("labels", "previous: every voxel, full forward per phase (session 9)", False, previous),
               ("labels", "coarse to fine + shared encoding (default)", False, {}),
               ("labels + intensities", "previous: full forward per phase (session 9)", True, previous),
               ("labels + intensities", "shared encoding (default)", True, {})]
    if args.bf16:
        methods.insert(2, ("labels", "coarse to fine + shared encoding + bf16 autocast (opt-in)", False, {"bf16": True}))
        methods.append(("labels + intensities", "shared encoding + bf16 autocast (opt-in)", True, {"bf16": True}))
    if args.labels_only:
        methods = [m for m in methods if m[0] == "labels"]
    rows: List[Dict] = []
    reference: Dict[str, tuple] = {}
    for output, method, want_intensity, options in methods:
        _log(f"sampling {output} on {shape} x {study.n_frames} frames: {method}")
        t0 = time.perf_counter()
        sampled = sample_grid(fit, ijk_to_ras, shape, want_intensity=want_intensity, **options)
        sample_s = time.perf_counter() - t0
        labels = sampled.labels.array
        intensity = None if sampled.intensity is None else sampled.intensity.array
        row = {"output": output, "method": method, "fit_s": fit_s, "sample_s": sample_s, "total_s": fit_s + sample_s}
        reference.setdefault(output, (labels, intensity))
        row.update(agreement(labels, reference[output][0]))
        row["intensity_max_abs_diff"] = (float("nan") if intensity is None else
                                         float(np.abs(intensity.astype(np.float64) - reference[output][1]).max()))
        rows.append(row)
    print(f"machine: {machine_description()}; device: {describe_device(device)}; study {counts}, "
          f"{study.n_frames} frames, {study.sax[0].image.spacing[0]:.2f} mm pixels; fit {fit_config.steps} steps; "
          f"grid {shape} at {args.spacing} mm x {study.n_frames} frames")
    print(format_table(rows, title="NISF++ reconstruction of a UK Biobank-sized study: fit + 4D sampling (s), "
                                    "labels/intensities vs the previous method"))
    if args.json:
        write_json(args.json, rows, {"threads": args.threads, "frames": args.frames, "sax": args.sax,
                                     "spacing_mm": args.spacing, "fit_steps": fit_config.steps,
                                     "train_steps": args.train_steps, "model": args.model,
                                     "machine": machine_description(), "device": describe_device(device)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
