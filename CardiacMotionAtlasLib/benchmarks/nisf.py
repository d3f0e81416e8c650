"""NISF++ on held-out phantom subjects: super-resolution segmentation, intensities, motion correction,
held-out views, baselines, ablations, speed.

    python -m CardiacMotionAtlasLib.benchmarks.nisf [--quick] [--json PATH] [--device auto] [--train N] [--test M]
        [--steps S] [--fit-steps F] [--no-encoding-ablation]
        [--train-family ellipsoidal] [--test-family lofted] [--acquisition randomised]

A phantom cohort is simulated (every subject with its own breath-hold misalignments, intensity scales
and noise; with ``--acquisition randomised`` also its own heart pose and CMR protocol: slice thickness
and gap, pixel size and FOV (within the run's matrix), prescription error, contrast, coil bias, noise;
the frame count stays the run's); NISF++ is trained on ``--train`` hearts of the training family and
fitted to two test sets of ``--test`` hearts each (:func:`.common.build_protocol`): hearts of
``--test-family`` (cross-family, reported first) and held-out hearts of the training family
(in-family), every baseline on the same test hearts, from their intensities alone (the network adapted
to each test subject from the trained weights, ``FitConfig.lr_network``; also with their SAX/LAX labels,
to compare fairly with the label-resampling baselines). Ground truth: the phantom's analytic labels on a 1.25 mm isotropic grid at
ED and ES (plus more phases without --quick) and the known per-slice misalignments.

Tables: (0) the standardised frame's x (towards the RV) and z (base -> apex) against the heart's true
axes (intensity-only fits choose the RV side by probe fits; with labels it comes from them); (1) 3D
segmentation, Dice per class and HD95 (mm), against SimpleITK nearest/linear resampling of the given SAX
labels (no motion correction), the previous method (network frozen at inference) fitted in the same run, NISF++ on its own training subjects, and NISF++ on the SAX stack alone (ACDC/M&Ms-style study, no
LAX view); with labels also at ED/ES only on every slice (the common clinical annotation; SAX-only too), and
from intensities with the opt-in label-intensity consistency term (:mod:`..nisf.consistency`); (1b) the
same test hearts at three frames that carry no label in the ED/ES-only rows (mid-systole, diastole;
:mod:`.nisf_between`), with the nearest ED/ES annotation and every-frame label resampling beside; (2) per slice type in-plane Dice and NCC/PSNR/SSIM of the model's
slices against the given ones; (3) motion correction:
residual misalignment (common offset removed), NCC and label Dice along slice intersections, before
and after; (4) held-out 4CH view; (5) ablation (inference switches: motion correction / intensity
scaling / PSF / slice-intersection consistency off); (6) speed and peak memory.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import replace
from typing import Dict, List

import numpy as np
import torch

from ..metrics import ncc
from ..nisf import FitConfig, NISFConfig, fit_subject, train_nisf
from ..nisf.evaluation import CLASS_NAMES, LEVELS, frame_errors_deg, inplane_scores, resample_sax_stack
from ..phantom.cmr import CMRConfig, simulate_cine
from ..training import describe_device, load_config_json, select_device
from . import nisf_between as between
from .nisf_scores import SEG_METRICS, held_out_view, merge_scores, motion_scores, segmentation
from .common import (add_family_arguments, benchmark_parser, format_table, machine_description, protocol_from_args,
                     cross_family_first, write_json)

CONSISTENCY_WEIGHT = 10.0
CONSISTENT = f"NISF++ (intensities only), + label-intensity consistency {CONSISTENCY_WEIGHT:g} (opt-in, off)"


def _log(message: str) -> None:
    print(f"[nisf benchmark {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _summary(method: str, values: Dict[str, List[float]], **extra) -> Dict:
    row = {"method": method, **extra}
    for key, series in values.items():
        series = np.asarray(series, float)
        row[key] = float(series.mean()) if series.size else float("nan")
        row[f"{key}_std"] = float(series.std()) if series.size else float("nan")
    return row


def _text_rows(rows: List[Dict], keys: List[str], label: str = "method") -> List[Dict]:
    out = []
    for row in rows:
        text = {"test_set": row["test_set"]} if "test_set" in row else {}
        text[label] = row[label]
        for key in keys:
            value = row.get(key)
            if value is None or not np.isfinite(value):
                text[key] = "-"
            else:
                text[key] = f"{value:.3g} +/- {row.get(f'{key}_std', 0.0):.2g}"
        for key, value in row.items():
            if key not in text and not key.endswith("_std") and key not in keys:
                text[key] = value
        out.append(text)
    return out


def configs(args, device: torch.device):
    """(CMR acquisition, NISF++ config, evaluation phases as frame indices count) for the run."""
    if args.quick:
        cmr = CMRConfig(n_frames=10, matrix=96)
        config = NISFConfig(steps=800, slices_per_step=12, points_per_slice=192)
        config.psf = replace(config.psf, samples=2)
        config.fit = FitConfig(steps=300, slices_per_step=12, points_per_slice=192)
    elif device.type == "cuda":
        cmr = CMRConfig(n_frames=25)
        config = NISFConfig.paper()
    else:
        cmr = CMRConfig(n_frames=25, matrix=128)
        config = NISFConfig()
    if args.config:
        config = load_config_json(NISFConfig, args.config)
    if args.steps:
        config.steps = args.steps
    if getattr(args, "fit_steps", None):
        config.fit = replace(config.fit, steps=args.fit_steps)
    return cmr, config


def acquisition_ranges(cmr: CMRConfig):
    """Per-subject protocol ranges that keep the run's size: the run's frame count, at most its matrix
    (FOV = matrix x pixel), pixels from 1.6 mm at the quick 96 matrix (FOV >= 154 mm); the rest as drawn
    by default (slices, prescription error, misalignment, contrast, bias, noise)."""
    from dataclasses import replace as _replace

    from ..phantom.acquisition import AcquisitionRanges

    ranges = AcquisitionRanges().with_frames(cmr.n_frames)
    low = max(1.2, 150.0 / cmr.matrix)
    return _replace(ranges, max_matrix=cmr.matrix, pixel_mm=(low, max(2.4, low + 0.4)))


def simulate(protocol, cmr: CMRConfig, hearts, indices):
    """Cine studies of ``hearts`` (cohort ``indices``), each with its own misalignments, and with the
    protocol's randomised acquisition (pose and CMR protocol) when it has one."""
    ranges = acquisition_ranges(cmr) if protocol.acquisition == "randomised" else None
    sims = []
    for heart, index in zip(hearts, indices):
        subject_cmr, _, _ = protocol.acquire(heart, index, cmr, None, ranges)
        sims.append(simulate_cine(heart, subject_cmr, seed=1000 + index))  # own misalignments
    return sims


def labels_at_ed_es(study):
    """A copy of ``study`` whose every slice (SAX and LAX) keeps its labels at ED and ES only: the common
    clinical annotation (ACDC, M&Ms, UK Biobank contours)."""
    keep = sorted({int(study.ed_frame or 0), int(study.es_frame if study.es_frame is not None else 0)})
    slices = [replace(s, labelled_frames=[f for f in keep if f in set(s.labelled_frames or [])])
              if s.labels is not None else s for s in study.slices]
    return replace(study, slices=slices)


def eval_frames(sim, quick: bool) -> List[int]:
    n, es = sim.study.n_frames, sim.study.es_frame
    frames = [0, es] if quick else sorted({0, es, n // 5, (3 * n) // 5, (4 * n) // 5})
    return frames


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=None, help="training subjects (default 6, quick 6)")
    parser.add_argument("--test", type=int, default=None, help="held-out subjects per test set (default 4, quick 2)")
    parser.add_argument("--steps", type=int, default=None, help="override training steps")
    parser.add_argument("--fit-steps", type=int, default=None,
                        help="override the steps of each test-subject fit (a smoke run of the pipeline)")
    parser.add_argument("--config", help="NISFConfig JSON spec")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-encoding-ablation", action="store_true",
                        help="skip training a second model with the paper's 7x7x7 spatial bands")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared CPU, several threads stall each other)")
    add_family_arguments(parser)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.train = args.train or 6
    args.test = args.test or (2 if args.quick else 4)
    device = select_device(args.device)
    torch.manual_seed(args.seed)
    cmr, config = configs(args, device)
    start = time.perf_counter()
    protocol = protocol_from_args(args, args.train, args.test)
    _log(f"simulating {len(protocol.all_subjects())} subjects ({protocol.header()})")
    train_hearts = protocol.train_hearts
    train_sims = simulate(protocol, cmr, train_hearts, protocol.train_indices)
    test_sets = [(t, t.hearts, simulate(protocol, cmr, t.hearts, t.indices)) for t in protocol.test_sets]
    _log(f"training on {args.train} subjects, {config.steps} steps ({describe_device(device)})")
    t0 = time.perf_counter()
    trained = train_nisf([s.study for s in train_sims], config, device=device)
    train_s = time.perf_counter() - t0
    seg: Dict = {}  # (test set label, method) -> scores
    seg_between: Dict = {}  # test set label -> method -> scores at frames without ED/ES labels
    inplane: List[Dict] = []
    motion: List[Dict] = []
    frames_rows: List[Dict] = []
    ablation: Dict = {}
    held: List[Dict] = []
    speed = {"fit_s": [], "fit_frozen_s": [], "sample_frame_s": []}
    motion_frozen: List[Dict] = []
    levels: List[Dict] = []  # where the wrong voxels lie along the long axis, per method/frame/class
    motion_consistent: List[Dict] = []  # the opt-in label-intensity consistency term (off by default)
    inplane_frozen: List[Dict] = []
    n_ablate = 1 if args.quick else args.test
    encoding = None
    if not args.no_encoding_ablation:  # the paper's encoding: 7 bands on every axis, z included
        paper_bands = replace(config, network=replace(config.network, spatial_frequencies=(7, 7, 7)))
        _log(f"training the encoding ablation (spatial bands {paper_bands.network.spatial_frequencies})")
        encoding = train_nisf([s.study for s in train_sims], paper_bands, device=device)
    n_reference = 1 if args.quick else min(3, args.train)
    training_label = f"training subjects ({protocol.train_family})"
    for index in range(n_reference):  # the models on their own training subjects: between-plane accuracy
        heart, sim = train_hearts[index], train_sims[index]
        frames = eval_frames(sim, args.quick)
        grid = heart.bounding_grid(1.25)
        truth = heart.label_volumes(*grid, [f / sim.study.n_frames for f in frames])
        bands = "x".join(str(v) for v in config.network.spatial_frequencies)
        merge_scores(seg.setdefault((training_label, f"NISF++ training subjects, bands {bands} (reference)"), {}),
               segmentation(trained.subject_fit(index), heart, sim, frames, grid, truth))
        if encoding is not None:
            merge_scores(seg.setdefault((training_label, "NISF++ training subjects, bands 7x7x7 (paper)"), {}),
                   segmentation(encoding.subject_fit(index), heart, sim, frames, grid, truth))
        for method, interpolation in (("training subjects, SAX labels nearest", "nearest"),):
            labels = resample_sax_stack(sim.study, *grid, frames, labels=True, interpolation=interpolation)
            merge_scores(seg.setdefault((training_label, method), {}), segmentation(None, heart, sim, frames, grid, truth, labels))
    for test_set, hearts, sims in test_sets:
        label = test_set.label
        for number, (heart, sim) in enumerate(zip(hearts, sims)):
            _log(f"{label}: test subject {number + 1}/{len(hearts)}: {heart.subject_id} ({heart.params.kind})")
            frames = eval_frames(sim, args.quick)
            grid = heart.bounding_grid(1.25)
            truth = heart.label_volumes(*grid, [f / sim.study.n_frames for f in frames])
            for method, interpolation in (("SAX labels, nearest (SimpleITK)", "nearest"),
                                          ("SAX labels, linear (SimpleITK)", "linear")):
                labels = resample_sax_stack(sim.study, *grid, frames, labels=True, interpolation=interpolation)
                where = [] if interpolation == "linear" else None
                merge_scores(seg.setdefault((label, method), {}), segmentation(None, heart, sim, frames, grid, truth, labels,
                                                                               levels=where))
                levels.extend({"test_set": label, "method": method, **row} for row in where or [])
            t0 = time.perf_counter()
            fit = fit_subject(trained, sim.study)
            speed["fit_s"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            where = []
            fit_scores = segmentation(fit, heart, sim, frames, grid, truth, levels=where)
            levels.extend({"test_set": label, "method": "NISF++ (intensities only)", **row} for row in where)
            speed["sample_frame_s"].append((time.perf_counter() - t0) / len(frames))
            merge_scores(seg.setdefault((label, "NISF++ (intensities only)"), {}), fit_scores)
            frozen = replace(config.fit, lr_network=0.0)  # the previous method, same run: network frozen
            t0 = time.perf_counter()
            previous = fit_subject(trained, sim.study, frozen)
            speed["fit_frozen_s"].append(time.perf_counter() - t0)
            merge_scores(seg.setdefault((label, "NISF++ (intensities only), network frozen (previous)"), {}),
                         segmentation(previous, heart, sim, frames, grid, truth))
            motion_frozen.append({"test_set": label, "subject": heart.subject_id, **motion_scores(previous, sim)})
            consistent = fit_subject(trained, sim.study, replace(config.fit, label_consistency_weight=CONSISTENCY_WEIGHT))
            where = []
            merge_scores(seg.setdefault((label, CONSISTENT), {}),
                         segmentation(consistent, heart, sim, frames, grid, truth, levels=where))
            levels.extend({"test_set": label, "method": CONSISTENT, **row} for row in where)
            motion_consistent.append({"test_set": label, "subject": heart.subject_id, **motion_scores(consistent, sim)})
            inplane_frozen.extend({"test_set": label, **row} for row in inplane_scores(previous, sim.study))
            merge_scores(seg.setdefault((label, "NISF++ (+ test labels), network frozen (previous)"), {}),
                         segmentation(fit_subject(trained, sim.study, frozen, use_labels=True), heart, sim, frames,
                                      grid, truth))
            motion.append({"test_set": label, "subject": heart.subject_id, **motion_scores(fit, sim)})
            frames_rows.append({"test_set": label, "subject": heart.subject_id, "frame": "intensities only "
                                f"(RV side: {fit.subject.frame.rv_from})",
                                **frame_errors_deg(fit.subject.frame.axes_ras, heart.local_to_ras)})
            inplane.extend({"test_set": label, **row} for row in inplane_scores(fit, sim.study))
            with_labels = fit_subject(trained, sim.study, use_labels=True)
            where = []
            merge_scores(seg.setdefault((label, "NISF++ (+ test labels: SAX all frames, LAX ED/ES)"), {}),
                   segmentation(with_labels, heart, sim, frames, grid, truth, levels=where))
            levels.extend({"test_set": label, "method": "NISF++ (+ test labels)", **row} for row in where)
            ed_es = fit_subject(trained, labels_at_ed_es(sim.study), use_labels=True)  # the common annotation
            where = []
            merge_scores(seg.setdefault((label, "NISF++ (+ test labels at ED/ES only, every view)"), {}),
                         segmentation(ed_es, heart, sim, frames, grid, truth, levels=where))
            levels.extend({"test_set": label, "method": "NISF++ (+ labels at ED/ES)", **row} for row in where)
            frames_rows.append({"test_set": label, "subject": heart.subject_id, "frame": "with labels",
                                **frame_errors_deg(with_labels.subject.frame.axes_ras, heart.local_to_ras)})
            sax_only = replace(sim.study, slices=list(sim.study.sax))  # an ACDC/M&Ms-style study: no LAX
            sax_fit = fit_subject(trained, sax_only)
            merge_scores(seg.setdefault((label, "NISF++ SAX only (intensities only)"), {}),
                   segmentation(sax_fit, heart, sim, frames, grid, truth))
            frames_rows.append({"test_set": label, "subject": heart.subject_id, "frame": "SAX only, intensities "
                                f"only (RV side: {sax_fit.subject.frame.rv_from})",
                                **frame_errors_deg(sax_fit.subject.frame.axes_ras, heart.local_to_ras)})
            sax_labels = fit_subject(trained, sax_only, use_labels=True)
            merge_scores(seg.setdefault((label, "NISF++ SAX only (+ SAX labels)"), {}),
                   segmentation(sax_labels, heart, sim, frames, grid, truth))
            sax_ed_es = fit_subject(trained, labels_at_ed_es(sax_only), use_labels=True)  # ACDC / M&Ms annotation
            merge_scores(seg.setdefault((label, "NISF++ SAX only (+ SAX labels at ED/ES only)"), {}),
                         segmentation(sax_ed_es, heart, sim, frames, grid, truth))
            unlabelled = between.score_subject(seg_between.setdefault(label, {}), heart, sim, grid,
                                               {between.INTENSITIES: fit, between.ALL_SAX: with_labels,
                                                between.ED_ES_EVERY_VIEW: ed_es, between.ED_ES_SAX_ONLY: sax_ed_es})
            _log(f"{label}: {heart.subject_id} scored at frames without ED/ES labels {unlabelled} "
                 f"(ED {sim.study.ed_frame}, ES {sim.study.es_frame})")
            if number < n_ablate:
                ablation.setdefault((label, "full model"), {k: [] for k in SEG_METRICS + ["mm_after"]})
                merge_scores(ablation[(label, "full model")], {**fit_scores, "mm_after": [motion[-1]["mm_after"]]})
                variant = fit_subject(trained, sim.study, replace(config.fit, intersection_weight=0.0))
                merge_scores(ablation.setdefault((label, "no intersection consistency"), {}),
                       {**segmentation(variant, heart, sim, frames, grid, truth),
                        "mm_after": [motion_scores(variant, sim)["mm_after"]]})
                for name, switch in (("no motion correction", {"motion_correction": False}),
                                     ("no intensity scaling", {"intensity_scaling": False}),
                                     ("no PSF", {"psf_enabled": False})):
                    variant = fit_subject(trained, sim.study, **switch)
                    merge_scores(ablation.setdefault((label, name), {}),
                           {**segmentation(variant, heart, sim, frames, grid, truth),
                            "mm_after": [motion_scores(variant, sim)["mm_after"]]})
                if encoding is not None:
                    variant = fit_subject(encoding, sim.study)
                    merge_scores(ablation.setdefault((label, "spatial bands 7x7x7 (paper encoding)"), {}),
                           {**segmentation(variant, heart, sim, frames, grid, truth),
                            "mm_after": [motion_scores(variant, sim)["mm_after"]]})
                held.append({"test_set": label, **held_out_view(trained, sim)})
    order = protocol.labels
    seg_rows = cross_family_first([_summary(method, values, test_set=label) for (label, method), values in seg.items()], order)
    print(f"machine: {machine_description()}; device: {describe_device(device)}; train {args.train} / test "
          f"{args.test} subjects per test set; CMR {cmr.n_frames} frames, {cmr.pixel_mm} mm pixels"
          f"{' (protocol randomised per subject, matrix <= %d)' % cmr.matrix if protocol.acquisition == 'randomised' else ''}"
          f"; {config.steps} training steps (network {config.network.layers}x{config.network.hidden}, latent "
          f"{config.network.latent_dim}, PSF K={config.psf.samples}); fit {config.fit.steps} steps")
    print(protocol.header())
    print(format_table(_text_rows(seg_rows, SEG_METRICS), ["test_set", "method"] + SEG_METRICS,
                       title="(1) 3D segmentation vs analytic labels, 1.25 mm isotropic grid "
                             "(mean +/- std over subjects x phases)"))
    between_rows = cross_family_first([_summary(method, values, test_set=label) for label, methods in seg_between.items()
                                       for method, values in sorted(methods.items(),
                                                                    key=lambda kv: between.sort_key({"method": kv[0]}))],
                                      order)
    print()
    print(format_table(_text_rows(between_rows, SEG_METRICS), ["test_set", "method"] + SEG_METRICS,
                       title="(1b) the same test hearts at frames WITHOUT labels in the ED/ES-only rows (mid-systole, "
                             "1/3 and 2/3 of diastole): Dice / HD95 (mm), mean +/- std over subjects x frames"))
    type_rows = []
    for label in order:
        for suffix, source in (("", inplane), (" (frozen, previous)", inplane_frozen)):
            rows_of_set = [r for r in source if r["test_set"] == label]
            for t in sorted({r["type"] for r in rows_of_set}):
                type_rows.append(_summary(t + suffix, {k: [r[k] for r in rows_of_set if r["type"] == t
                                                           and np.isfinite(r[k])]
                                                       for k in ("dice", "ncc", "psnr", "ssim")}, test_set=label))
    print()
    print(format_table(_text_rows(type_rows, ["dice", "ncc", "psnr", "ssim"]),
                       ["test_set", "method", "dice", "ncc", "psnr", "ssim"],
                       title="(2) NISF++ (intensities only) on the input slices, per slice type: in-plane label Dice "
                             "vs given labels, NCC / PSNR (dB) / SSIM vs observed"))
    frame_keys = ["x_to_rv_deg", "z_to_apex_deg"]
    frame_summary = []
    for label in order:
        for kind in dict.fromkeys(r["frame"] for r in frames_rows if r["test_set"] == label):
            chosen = [r for r in frames_rows if r["test_set"] == label and r["frame"] == kind]
            frame_summary.append(_summary(kind, {k: [r[k] for r in chosen] for k in frame_keys}, test_set=label,
                                          flipped=sum(r["x_to_rv_deg"] > 90.0 or r["z_to_apex_deg"] > 90.0
                                                      for r in chosen)))
    print()
    print(format_table(_text_rows(frame_summary, frame_keys), ["test_set", "method"] + frame_keys + ["flipped"],
                       title="(0) standardised frame vs the heart's true axes (deg; flipped = subjects with x or z "
                             "more than 90 deg off)"))
    motion_keys = [k for k in motion[0] if k not in ("subject", "test_set")]
    motion_rows = [_summary(name, {k: [m[k] for m in rows if m["test_set"] == label] for k in motion_keys},
                            test_set=label) for label in order
                   for name, rows in (("NISF++", motion), (CONSISTENT, motion_consistent),
                                      ("NISF++, network frozen (previous)", motion_frozen))]
    print()
    print(format_table(_text_rows(motion_rows, motion_keys), ["test_set", "method"] + motion_keys,
                       title="(3) motion correction: residual misalignment (mm at slice centre, deg; common offset "
                             "removed), NCC and label Dice along slice intersections"))
    held_keys = [k for k in held[0] if k != "test_set"] if held else []
    held_rows = [_summary("held-out 4CH", {k: [h[k] for h in held if h["test_set"] == label] for k in held_keys},
                          test_set=label) for label in order if any(h["test_set"] == label for h in held)]
    if held_rows:
        print()
        print(format_table(_text_rows(held_rows, held_keys), ["test_set", "method"] + held_keys,
                           title="(4) held-out view: fit without the 4CH, predict it (labels Dice, intensity NCC) vs "
                                 "SAX stack resampled onto it"))
    ablation_rows = cross_family_first([_summary(name, values, test_set=label)
                                    for (label, name), values in ablation.items()], order)
    print()
    ablation_keys = SEG_METRICS[:3] + ["mm_after"]
    print(format_table(_text_rows(ablation_rows, ablation_keys), ["test_set", "method"] + ablation_keys,
                       title=f"(5) ablation ({n_ablate} test subject(s) per test set): switches at inference, and a "
                             "model trained with the paper's 7x7x7 spatial bands; Dice and residual misalignment (mm)"))
    level_keys = [f"{level}_ml" for level in LEVELS] + ["base_shift_mm"]
    level_rows = [_summary(f"{method}: {name}", {k: [r[k] for r in levels if r["test_set"] == label and r["method"] == method
                                                  and r["class"] == name and np.isfinite(r[k])] for k in level_keys},
                           test_set=label)
                  for label in order for method in dict.fromkeys(r["method"] for r in levels)
                  for name in CLASS_NAMES.values()]
    print()
    print(format_table(_text_rows(level_rows, level_keys), ["test_set", "method"] + level_keys,
                       title="(7) where the wrong voxels lie along the true long axis: volume (ml) of false positives + "
                             "negatives beyond the true base, in the basal / mid / apical third of the class, beyond the "
                             "apex; base_shift_mm = predicted minus true basal-most height (negative: past the base)"))
    grid_voxels = int(np.prod(test_sets[0][1][-1].bounding_grid(1.25)[1]))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    speed_row = {"method": "NISF++", "train_s": train_s, "train_s_per_step": train_s / max(config.steps, 1),
                 "fit_s": float(np.mean(speed["fit_s"])), "fit_frozen_s": float(np.mean(speed["fit_frozen_s"])),
                 "sample_s_per_frame": float(np.mean(speed["sample_frame_s"])),
                 "full_4d_s": float(np.mean(speed["sample_frame_s"])) * cmr.n_frames, "grid_voxels": grid_voxels,
                 "peak_rss_gb": peak_gb,
                 "peak_cuda_gb": torch.cuda.max_memory_allocated() / 1024**3 if device.type == "cuda" else float("nan"),
                 "total_s": time.perf_counter() - start}
    print()
    print(format_table([speed_row], title=f"(6) speed and memory ({describe_device(device)}; full 4D = "
                                          f"{cmr.n_frames} frames of the 1.25 mm grid)"))
    if args.json:
        write_json(args.json, seg_rows, {"quick": args.quick, "seed": args.seed, "train": args.train, "test": args.test,
                                         "cmr": cmr.to_dict(), "device": describe_device(device),
                                         "machine": machine_description(), **protocol.config()},
                   between_frames=between_rows, slice_types=type_rows, slices=inplane, motion=motion_rows, motion_subjects=motion,
                   frames=frame_summary, frame_subjects=frames_rows,
                   held_out_view=held_rows,
                   ablation=ablation_rows, speed=[speed_row], levels=level_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
