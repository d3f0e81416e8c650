"""CardioMorphNet's test-time use of the study's own labels (:mod:`..motion.adapt`), before and after,
on the motion benchmark's protocol (cross-family first, then in-family held-out hearts).

    python -m CardiacMotionAtlasLib.benchmarks.motion_adapt [--quick] [--json PATH] [--model PATH]
        [--train N] [--test M] [--threads 1] [--train-family ellipsoidal] [--test-family lofted]
        [--pixel-mm 2.5] [--frames 20] [--fov-mm 160] [--matrix N] [--train-frames K] [--in-family-only | --cross-family-only]

One CardioMorphNet is trained (the motion benchmark's configuration and subjects; ``--model PATH``
keeps the trained network and reuses it on a rerun) and applied to the same test hearts several ways,
each with its own interval calibration fitted on the training subjects the same way:

- the refined frame-to-frame chain (``trajectory="chain"``): with SegNet's labels as the refinement's
  targets at every frame and the old fold penalty (previous), with the study's given ED/ES labels as
  the targets there and the relaxed fold penalty (the previous default), with also a copy of SegNet
  fine-tuned on those labels (30 steps, opt-in), and the amortised mean (no refinement);
- the full-cycle trajectory as one stationary velocity fitted to the given ED/ES labels and scaled per
  frame, ``exp(a_t v)`` (:mod:`..motion.trajectory`, the new default), the amplitudes ``a_t`` from the
  intensities (default) or from SegNet's labels; the default fit has the per-structure volume term, its
  intervals the fit's misfit sd and its weights in their millimetre meaning at the study's pixel size
  (``svf-network``: per voxel of the network's grid, the session 9 default), the session 7 default (no
  volume term, no misfit sd) in its own row (``svf-previous``);

and the baselines on the same hearts: SimpleITK diffeomorphic demons (the motion benchmark's settings),
zero motion, and the index baselines without motion: disk summation of the given SAX labels at ED and
ES, and of SegNet's. Test hearts give images and labels at ED and ES only (as UK Biobank); truth is the
phantom's (analytic indices, exact material motion over every frame inside the ED myocardium).

Table (2) is the per-subject ES cavity: the estimated LVESV minus the analytic one (ml), the
systolic overestimation; table (3) the endpoint error at every frame (the chain drifts and does not
refill after ES: its diastolic frames were worse than zero motion).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from ..geometry.warp import ras_to_voxel_displacement, voxel_to_ras_displacement
from ..motion import estimate_motion, load_motion, sequence_from_study, train_motion
from ..motion.baselines import demons_fields
from ..motion.evaluation import endpoint_errors, evaluate_fields
from ..motion.calibration import calibrate_motion
from ..training import describe_device, select_device
from .common import add_family_arguments, benchmark_parser, format_table, machine_description, write_json
from .motion import _row, _text, add_grid_arguments, configs, disk_summation_errors, held_out_subject, interval_scores, simulate_protocol

PREVIOUS = "CardioMorphNet, chain, SegNet targets, old fold penalty"
CHAIN = "CardioMorphNet, chain, given ED/ES targets, new fold penalty (previous default)"
ADAPTED = "CardioMorphNet, chain + given targets + adapted SegNet (30 steps)"
AMORTISED = "CardioMorphNet, chain, amortised mean (no refinement)"
TARGETS = "CardioMorphNet, svf trajectory exp(a_t v), volume term, misfit sd, fit weights in mm (new default)"
SVF_NETWORK = "CardioMorphNet, svf trajectory exp(a_t v), volume term, misfit sd, fit weights per voxel (previous default)"
SVF_PREVIOUS = "CardioMorphNet, svf trajectory exp(a_t v), no volume term, no misfit sd (session 7 default)"
SVF_LABELS = "CardioMorphNet, svf trajectory exp(a_t v), amplitudes from SegNet's labels"
SVF_LIGHT = "CardioMorphNet, svf trajectory exp(a_t v), intensities, light fit regularisation (opt-in)"
VARIANTS = {PREVIOUS: dict(trajectory="chain", given_label_targets=False, adapt_steps=0, fold_margin=0.2,
                           fold_weight=None),
            CHAIN: dict(trajectory="chain"), TARGETS: {}, SVF_PREVIOUS: dict(svf_volume_weight=0.0, misfit_sd=False),
            SVF_NETWORK: dict(svf_regularisation="network"), SVF_LABELS: dict(amplitude_source="labels"),
            SVF_LIGHT: dict(svf_regularisation="light"),
            ADAPTED: dict(trajectory="chain", adapt_steps=30),
            AMORTISED: dict(trajectory="chain", refine_steps=0, adapt_steps=0)}
SHORT = {"previous": PREVIOUS, "chain": CHAIN, "new": TARGETS, "svf-network": SVF_NETWORK, "svf-previous": SVF_PREVIOUS, "svf-labels": SVF_LABELS, "svf-light": SVF_LIGHT,
         "adapted": ADAPTED,
         "amortised": AMORTISED}
DEMONS = "SimpleITK diffeomorphic demons"
DISK_GIVEN, DISK_SEGNET, DISK_ADAPTED = ("disk summation of the given SAX labels", "disk summation of SegNet's labels",
                                         "disk summation of adapted SegNet's labels")
KEYS = ["rmse_LVEF", "rmse_LVEDV", "rmse_LVESV", "err_LVESV", "rmse_RVEF", "rmse_RVESV", "epe_myo", "epe_myo_es",
        "dice_LV", "dice_Myo", "dice_RV", "hd95_LV", "neg_jac", "strain_radi", "strain_circ", "strain_long",
        "coverage_idx", "unc_corr_idx", "seconds"]


def _log(message: str) -> None:
    print(f"[motion_adapt benchmark {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=None, help="training subjects (default 5, quick 3)")
    parser.add_argument("--test", type=int, default=None, help="held-out subjects per test set (default 3, quick 2)")
    parser.add_argument("--steps", type=int, default=None, help="override the motion training steps")
    parser.add_argument("--model", default=None, help="checkpoint to train into, or to reuse when it exists")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variants", default=",".join(SHORT),
                        help=f"comma-separated subset of {','.join(SHORT)} (new, the default, is always kept)")
    parser.add_argument("--no-demons", action="store_true", help="skip the demons baseline")
    parser.add_argument("--cross-family-only", action="store_true", help="skip the in-family test set")
    parser.add_argument("--in-family-only", action="store_true",
                        help="skip the cross-family test set (for choosing settings on held-out training-family hearts)")
    add_grid_arguments(parser)
    add_family_arguments(parser)
    args = parser.parse_args(argv)
    picked = {SHORT[v.strip()] for v in args.variants.split(",") if v.strip()} | {TARGETS}
    variants = {name: options for name, options in VARIANTS.items() if name in picked}
    args.large = False
    torch.set_num_threads(max(args.threads, 1))
    args.train = args.train or (3 if args.quick else 5)
    args.test = args.test or (2 if args.quick else 3)
    device = select_device(args.device)
    cmr, config = configs(args, device)
    start = time.perf_counter()
    protocol, train_sims, test_sets = simulate_protocol(args, cmr, cross_family_only=args.cross_family_only,
                                                        in_family_only=args.in_family_only)
    train = [sequence_from_study(s.study, config.intensity_percentile, ed_es_only=True) for s in train_sims]
    if args.model and Path(args.model).exists():
        _log(f"reusing {args.model}")
        trained = load_motion(args.model, device)
    else:
        _log(f"training CardioMorphNet: {config.seg_steps} SegNet + {config.steps} motion steps")
        t0 = time.perf_counter()
        trained = train_motion(train, config, device=device, calibrate=False, checkpoint_path=args.model)
        _log(f"trained in {time.perf_counter() - t0:.0f} s ({config.train_frames or 'all'} frames per motion step)")
    calibrations = {}
    for name, options in variants.items():
        _log(f"calibrating {name} on the {len(train)} training subjects")
        calibrations[name] = calibrate_motion(trained, train, **options)
    scores: Dict = {}
    per_subject: List[Dict] = []
    for test_set, sims in test_sets:
        for name in [*variants, *([] if args.no_demons else [DEMONS]), "zero motion", DISK_GIVEN, DISK_SEGNET,
                     *([DISK_ADAPTED] if ADAPTED in variants else [])]:
            scores[(test_set.label, name)] = []
        for heart, sim in zip(test_set.hearts, sims):
            _log(f"{test_set.label}: {heart.subject_id} ({heart.params.kind})")
            sequence, order, common = held_out_subject(heart, sim, config.intensity_percentile)
            labels, es, truth_indices = common["labels"], common["es_position"], common["truth_indices"]
            to_voxels = lambda a: torch.as_tensor(ras_to_voxel_displacement(a[order], sequence.ijk_to_ras))  # noqa
            myo = labels[0] == 2
            per_frame = lambda ed_to_t_ras: endpoint_errors(ed_to_t_ras, common["truth_ras"], myo).mean(1)  # noqa
            subject = {"test_set": test_set.label, "subject": heart.subject_id, "LVESV_true": truth_indices["LVESV"]}
            for name, options in variants.items():
                trained.calibration = calibrations[name]
                t0 = time.perf_counter()
                estimate = estimate_motion(trained, sequence, **options)
                seconds = time.perf_counter() - t0
                uncertainty = {"covariance": estimate.covariance[order], "std_mm": estimate.displacement_std_mm()[order]}
                result = evaluate_fields(to_voxels(estimate.ed_to_t), to_voxels(estimate.t_to_ed),
                                         uncertainty=uncertainty, **common)
                result["seconds"] = seconds
                result["_epe_frames"] = per_frame(estimate.ed_to_t[order])
                result["_intervals"] = interval_scores(estimate, truth_indices)
                scores[(test_set.label, name)].append(result)
                subject[f"{name} LVESV err"] = estimate.indices["LVESV"] - truth_indices["LVESV"]
                segnet = estimate.segnet_labels[order]
                if name in (PREVIOUS, ADAPTED):
                    disk = disk_summation_errors(segnet[0], segnet[es], sequence.ijk_to_ras, truth_indices)
                    scores[(test_set.label, DISK_SEGNET if name == PREVIOUS else DISK_ADAPTED)].append(disk)
                    subject[f"{'SegNet' if name == PREVIOUS else 'adapted SegNet'} ES LV err"] = disk["err_LVESV"]
            if not args.no_demons:  # the benchmarks.motion settings
                t0 = time.perf_counter()
                ed_to_t, t_to_ed = demons_fields(sequence, iterations=100, smoothing_mm=2.0)
                seconds = time.perf_counter() - t0
                scores[(test_set.label, DEMONS)].append({
                    **evaluate_fields(ed_to_t, t_to_ed, **common), "seconds": seconds,
                    "_epe_frames": per_frame(voxel_to_ras_displacement(ed_to_t, sequence.ijk_to_ras).numpy())})
            zero = torch.zeros((len(order), 3, *sequence.shape_zyx))
            scores[(test_set.label, "zero motion")].append({**evaluate_fields(zero, zero, **common), "seconds": 0.0,
                                                            "_epe_frames": per_frame(np.zeros_like(common["truth_ras"]))})
            disk = disk_summation_errors(labels[0], labels[es], sequence.ijk_to_ras, truth_indices)
            scores[(test_set.label, DISK_GIVEN)].append(disk)
            subject["given labels ES LV err"] = disk["err_LVESV"]
            per_subject.append(subject)
    rows = [_row(name, values, label) for (label, name), values in scores.items() if values]  # e.g. SegNet's disk
    # summation comes with the previous variant only
    total_s = time.perf_counter() - start
    print(f"machine: {machine_description()}; device: {describe_device(device)}, {torch.get_num_threads()} thread(s); "
          f"train {args.train} / test {args.test} subjects; SAX {cmr.n_frames} frames, {cmr.pixel_mm} mm pixels, "
          f"{cmr.matrix}x{cmr.matrix}; CardioMorphNet {config.seg_steps} SegNet + {config.steps} motion steps, "
          f"{config.posterior_samples} posterior samples, {config.refine_steps} refinement steps; total {total_s:.0f} s")
    print(protocol.header())
    print(format_table(_text(rows, KEYS, with_std=False), ["test_set", "method"] + KEYS,
                       title="(1) indices RMSE vs analytic (LVEF/RVEF points, volumes ml), err_LVESV mean signed (ml); "
                             "EPE in the ED myocardium (mm, all frames / ES); warped ED<->ES Dice (%); folded voxels; "
                             "HD95 LV (mm); strain MAE vs analytic (% strain: radial / circumferential / longitudinal); "
                             "95 % index-interval coverage (%) and Spearman(half-width, |error|); seconds per estimate"))
    print()
    frame_rows = []
    for (label, name), values in scores.items():
        frames = [v["_epe_frames"] for v in values if "_epe_frames" in v]
        if frames and len({len(f) for f in frames}) == 1:
            mean = np.mean(frames, 0)
            frame_rows.append({"test_set": label, "method": name, **{f"t{k + 1}": float(e) for k, e in enumerate(mean)},
                               "mean": float(mean.mean())})
            for row in rows:
                if row["test_set"] == label and row["method"] == name:
                    row["epe_frames"] = mean.tolist()
    subject_keys = list(per_subject[0])
    print(format_table([{k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in s.items()} for s in per_subject],
                       subject_keys, title="(2) ES cavity per subject: LVESV estimate - analytic (ml)"))
    if frame_rows:
        print()
        print(format_table(frame_rows, list(frame_rows[0]),
                           title="(3) endpoint error in the ED myocardium per frame (mm; position t after ED, mean over "
                                 "subjects; the ES position differs between subjects)"))
    if args.json:
        write_json(args.json, rows, {"quick": args.quick, "seed": args.seed, "train": args.train, "test": args.test,
                                     "cmr": cmr.to_dict(), "machine": machine_description(), "total_s": total_s,
                                     "calibrations": calibrations, **protocol.config()},
                   per_subject=per_subject)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
