"""CardioMorphNet's test-time use of the study's own labels (:mod:`..motion.adapt`), before and after,
on the motion benchmark's protocol (cross-family first, then in-family held-out hearts).

    python -m CardiacMotionAtlasLib.benchmarks.motion_adapt [--quick] [--json PATH] [--model PATH]
        [--train N] [--test M] [--threads 1] [--train-family ellipsoidal] [--test-family lofted]

One CardioMorphNet is trained (the motion benchmark's configuration and subjects; ``--model PATH``
keeps the trained network and reuses it on a rerun) and applied to the same test hearts several ways:
the previous inference (refinement targets = SegNet's labels at every frame, SegNet as trained), with
the study's given ED/ES labels as the targets at those frames and the relaxed fold penalty (the new
default), and with also a copy of SegNet fine-tuned on those labels (30 steps, opt-in), each
with its own interval calibration fitted on the
training subjects the same way; the amortised mean (no refinement); zero motion; and the index
baselines without motion: disk summation of the given SAX labels at ED and ES, and of SegNet's.
Test hearts give images and labels at ED and ES only (as UK Biobank); truth is the phantom's
(analytic indices, exact material motion over every frame inside the ED myocardium).

Table (2) is the per-subject ES cavity: the estimated LVESV minus the analytic one (ml), the
systolic overestimation this work addresses.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

from ..geometry.warp import ras_to_voxel_displacement
from ..motion import estimate_motion, load_motion, sequence_from_study, train_motion
from ..motion.evaluation import evaluate_fields
from ..motion.calibration import calibrate_motion
from ..training import describe_device, select_device
from .common import add_family_arguments, benchmark_parser, format_table, machine_description, write_json
from .motion import _row, _text, configs, disk_summation_errors, held_out_subject, interval_scores, simulate_protocol

PREVIOUS = "CardioMorphNet, previous (SegNet targets, old fold penalty)"
TARGETS = "CardioMorphNet, new default (given ED/ES targets, new fold penalty, SegNet as trained)"
ADAPTED = "CardioMorphNet + given targets + new fold penalty + adapted SegNet (30 steps)"
AMORTISED = "CardioMorphNet, amortised mean (no refinement)"
VARIANTS = {PREVIOUS: dict(given_label_targets=False, adapt_steps=0, fold_margin=0.2, fold_weight=None), TARGETS: {},
            ADAPTED: dict(adapt_steps=30), AMORTISED: dict(refine_steps=0, adapt_steps=0)}
SHORT = {"previous": PREVIOUS, "new": TARGETS, "adapted": ADAPTED, "amortised": AMORTISED}
DISK_GIVEN, DISK_SEGNET, DISK_ADAPTED = ("disk summation of the given SAX labels", "disk summation of SegNet's labels",
                                         "disk summation of adapted SegNet's labels")
KEYS = ["rmse_LVEF", "rmse_LVEDV", "rmse_LVESV", "err_LVESV", "rmse_RVEF", "rmse_RVESV", "epe_myo", "epe_myo_es",
        "dice_LV", "dice_Myo", "dice_RV", "neg_jac", "coverage_idx", "unc_corr_idx", "seconds"]


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
    parser.add_argument("--variants", default="previous,new,adapted,amortised",
                        help=f"comma-separated subset of {','.join(SHORT)} (previous, new and adapted are always kept)")
    parser.add_argument("--cross-family-only", action="store_true", help="skip the in-family test set")
    add_family_arguments(parser)
    args = parser.parse_args(argv)
    picked = {SHORT[v.strip()] for v in args.variants.split(",")} | {PREVIOUS, TARGETS, ADAPTED}
    variants = {name: options for name, options in VARIANTS.items() if name in picked}
    args.large = False
    torch.set_num_threads(max(args.threads, 1))
    args.train = args.train or (3 if args.quick else 5)
    args.test = args.test or (2 if args.quick else 3)
    device = select_device(args.device)
    cmr, config = configs(args, device)
    start = time.perf_counter()
    protocol, train_sims, test_sets = simulate_protocol(args, cmr, cross_family_only=args.cross_family_only)
    train = [sequence_from_study(s.study, config.intensity_percentile, ed_es_only=True) for s in train_sims]
    if args.model and Path(args.model).exists():
        _log(f"reusing {args.model}")
        trained = load_motion(args.model, device)
    else:
        _log(f"training CardioMorphNet: {config.seg_steps} SegNet + {config.steps} motion steps")
        trained = train_motion(train, config, device=device, calibrate=False, checkpoint_path=args.model)
    calibrations = {}
    for name, options in variants.items():
        _log(f"calibrating {name} on the {len(train)} training subjects")
        calibrations[name] = calibrate_motion(trained, train, **options)
    scores: Dict = {}
    per_subject: List[Dict] = []
    for test_set, sims in test_sets:
        for name in [*variants, "zero motion", DISK_GIVEN, DISK_SEGNET, DISK_ADAPTED]:
            scores[(test_set.label, name)] = []
        for heart, sim in zip(test_set.hearts, sims):
            _log(f"{test_set.label}: {heart.subject_id} ({heart.params.kind})")
            sequence, order, common = held_out_subject(heart, sim, config.intensity_percentile)
            labels, es, truth_indices = common["labels"], common["es_position"], common["truth_indices"]
            to_voxels = lambda a: torch.as_tensor(ras_to_voxel_displacement(a[order], sequence.ijk_to_ras))  # noqa
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
                result["_intervals"] = interval_scores(estimate, truth_indices)
                scores[(test_set.label, name)].append(result)
                subject[f"{name} LVESV err"] = estimate.indices["LVESV"] - truth_indices["LVESV"]
                segnet = estimate.segnet_labels[order]
                if name in (PREVIOUS, ADAPTED):
                    disk = disk_summation_errors(segnet[0], segnet[es], sequence.ijk_to_ras, truth_indices)
                    scores[(test_set.label, DISK_SEGNET if name == PREVIOUS else DISK_ADAPTED)].append(disk)
                    subject[f"{'SegNet' if name == PREVIOUS else 'adapted SegNet'} ES LV err"] = disk["err_LVESV"]
            zero = torch.zeros((len(order), 3, *sequence.shape_zyx))
            scores[(test_set.label, "zero motion")].append({**evaluate_fields(zero, zero, **common), "seconds": 0.0})
            disk = disk_summation_errors(labels[0], labels[es], sequence.ijk_to_ras, truth_indices)
            scores[(test_set.label, DISK_GIVEN)].append(disk)
            subject["given labels ES LV err"] = disk["err_LVESV"]
            per_subject.append(subject)
    rows = [_row(name, values, label) for (label, name), values in scores.items()]
    total_s = time.perf_counter() - start
    print(f"machine: {machine_description()}; device: {describe_device(device)}, {torch.get_num_threads()} thread(s); "
          f"train {args.train} / test {args.test} subjects; SAX {cmr.n_frames} frames, {cmr.pixel_mm} mm pixels, "
          f"{cmr.matrix}x{cmr.matrix}; CardioMorphNet {config.seg_steps} SegNet + {config.steps} motion steps, "
          f"{config.posterior_samples} posterior samples, {config.refine_steps} refinement steps; total {total_s:.0f} s")
    print(protocol.header())
    print(format_table(_text(rows, KEYS, with_std=False), ["test_set", "method"] + KEYS,
                       title="(1) indices RMSE vs analytic (LVEF/RVEF points, volumes ml), err_LVESV mean signed (ml); "
                             "EPE in the ED myocardium (mm, all frames / ES); warped ED<->ES Dice (%); folded voxels; "
                             "95 % index-interval coverage (%) and Spearman(half-width, |error|); seconds per estimate"))
    print()
    subject_keys = list(per_subject[0])
    print(format_table([{k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in s.items()} for s in per_subject],
                       subject_keys, title="(2) ES cavity per subject: LVESV estimate - analytic (ml)"))
    if args.json:
        write_json(args.json, rows, {"quick": args.quick, "seed": args.seed, "train": args.train, "test": args.test,
                                     "cmr": cmr.to_dict(), "machine": machine_description(), "total_s": total_s,
                                     "calibrations": calibrations, **protocol.config()},
                   per_subject=per_subject)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
