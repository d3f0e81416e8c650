"""Spatiotemporal Neural Diffeomorphic Flow atlas on held-out phantom subjects.

    python -m CardiacMotionAtlasLib.benchmarks.atlas [--quick] [--large] [--json PATH] [--device D]
        [--train-family ellipsoidal] [--test-family lofted] [--acquisition randomised]

Trains the atlas on a phantom cohort of the training family (SDF samples of its exact myocardium meshes,
canonical frames from its ED label maps; with ``--acquisition randomised`` every heart in its own pose in
the scanner) and reports two test sets (:func:`.common.build_protocol`), every table with both:
hearts of ``--test-family`` (cross-family, first) and held-out hearts of the training family
(in-family). It fits the held-out subjects from all frames / ED+ES / ED alone (networks frozen) and
compares, in the same run, with baselines that see the same frames (:mod:`..atlas.baselines`):
the ED mesh held static, the training cohort's mean canonical motion applied to the ED mesh, and (ED+ES,
all frames) the observed frames' SDFs blended linearly in time. Ablations and diagnostics in the same run:
the atlas fitted with the plain cohort-mean prior instead of the shape-to-motion prior (ED+ES, ED alone),
without the ES timing term (ED+ES), and the cohort mean motion applied to the atlas' own fitted ED mesh
(ED alone: motion vs ED-fit error). The ``ED_chamfer_mm`` column is the error at the ED frame itself
(observed in every setting: how well the atlas represents the observed shape); ``atlas, codes only``
is the same fit before its residual-warp stage (:mod:`..atlas.residual`; the code-level ablations are
codes-only fits too). ``ES_phase_err``: the recovered ES phase ``D2^-1(t'_ES)``
(:func:`..atlas.timing.recovered_es_phase`) against the true one (fraction of the cycle). From ED alone
a second table states the prediction's spread: ES phase and LVEF with the training cohort's standard
deviation (:func:`..atlas.timing.prediction_spread`) next to the truth. ``atlas (ours)`` fits, from
frames beyond ED, a time-varying residual warp that sets the subject's own contraction amplitude
(:mod:`..atlas.residual`, ``FitConfig.motion_residual``), and its meshes follow the template motion with
the basal rim relaxed onto the template's level set (``MeshConfig.material_relax_iterations``, session 9);
``atlas, previous template motion (no rim relaxation)`` is the same fit meshed as in session 8 (the
previous default, measured in the same run). ``--with-offset`` adds ``atlas + transmural offset (opt-in)``
(all frames, ED+ES: ``FitConfig.transmural_offset=True``, default off: it measured worse on held-out
training-family hearts in session 8). From all frames, ``atlas (ours)`` takes its ES timing target from
the observed frames' LV blood-pool volumes (``FitConfig.observed_timing``, session 10, a hinge outside
0.05 of the cycle); ``atlas, previous all-frames fit (no observed-volume timing)`` is the previous
default in the same run, and a printed line per heart gives the volume estimate, the truth and both fits' ES.

1. Surfaces: chamfer and HD95 (mm, mean +/- std over subjects x withheld frames; point-to-surface
   distances from area-uniform samples), the same at ES, LV volume-curve error (ml) and EF error
   (percentage points), both against the same cavity measurement on the ground-truth meshes.
2. Correspondence against the phantom's material points: over the cycle (ED material points) and
   across subjects (the phantom's ring parameterisation as ground truth). The atlas' meshes follow the
   template motion learned from the training subjects' material trajectories
   (:mod:`..atlas.material_tracking`); the SDF-only tracking of :mod:`..atlas.meshing` is reported beside it.
3. Topology and diffeomorphism checks. 4. Speed and memory (ratios measured in the same run).
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import replace
from typing import Dict, List

import numpy as np
import torch

from ..atlas.baselines import cohort_mean_motion, sdf_blend_meshes
from ..atlas.config import AtlasConfig, FitConfig, MeshConfig
from ..atlas.evaluation import d1_jacobian_determinant, d2_folds, lv_cavity_volume_ml, temporal_correspondence_error
from ..atlas.fit import fit_subject
from ..atlas.material_tracking import material_template_motion
from ..atlas.meshing import extract_template_mesh, subject_mesh_sequence, track_template
from ..atlas.residual import motion_residual_jacobian_determinant, residual_jacobian_determinant
from ..atlas.sampling import subject_from_phantom
from ..atlas.timing import prediction_spread, recovered_es_phase
from ..atlas.train import train_atlas
from ..data.mesh_sequence import MeshSequence
from ..metrics import mesh_topology
from ..training.device import describe_device, select_device
from ..training.seeding import seed_everything
from .atlas_scores import SETTINGS, Scores, cross_subject_rows, frames_of
from .common import (add_family_arguments, benchmark_parser, format_table, machine_description, mean_std,
                     protocol_from_args, write_json)

PREVIOUS_METHOD = "atlas, previous template motion (no rim relaxation)"
"""Session 8's default: the same fit meshed with the template motion without its rim relaxation
(``MeshConfig.material_relax_iterations=0``, :func:`..atlas.material_tracking.relax_on_level_set`)."""


def sizes(quick: bool, large: bool) -> Dict:
    if large:
        return dict(train=16, held=4, frames=13, atlas=AtlasConfig.large(), fit=FitConfig(steps=400), spread_samples=16,
                    mesh=MeshConfig(resolution=96, tracking_steps=64), samples=8000, grid_mm=1.5, cycle=25)
    if quick:
        return dict(train=6, held=2, frames=8, atlas=AtlasConfig.quick(), mesh=MeshConfig(resolution=56, tracking_steps=24),
                    fit=FitConfig(steps=120, points_per_frame=800), samples=3000, grid_mm=2.0, cycle=25, spread_samples=8)
    return dict(train=12, held=3, frames=10, atlas=AtlasConfig(), fit=FitConfig(steps=120, points_per_frame=500), spread_samples=8,
                mesh=MeshConfig(resolution=56, tracking_steps=24), samples=3000, grid_mm=2.0, cycle=25)


def speed_rows(atlas, fitted, motion, size, fit_seconds, cycle_seconds, train_s, template_s, material_s) -> List[Dict]:
    device = atlas.device
    n = 20000
    points, phases = torch.rand(n, 3, device=device) * 1.6 - 0.8, torch.rand(n, device=device)
    codes = fitted.shape_code[None].to(device), fitted.time_code[None].to(device)

    def timed(fn, repeat=3):
        fn()
        start = time.perf_counter()
        for _ in range(repeat):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / repeat

    with torch.no_grad():
        full = timed(lambda: atlas.module(points, phases, *codes))
        plain = timed(lambda: atlas.module.template(points, phases))
    step_points = size["atlas"].points_per_frame * size["atlas"].frames_per_subject * size["train"]
    p, t = points[:step_points].clone().requires_grad_(True), phases[:step_points]

    def step(with_flow: bool):
        out = atlas.module(p, t, *codes)[0] if with_flow else atlas.module.template(p, t)
        out.sum().backward()

    step_full, step_plain = timed(lambda: step(True)), timed(lambda: step(False))
    resolution = size["mesh"].resolution
    axis = np.linspace(-1, 1, resolution)
    grid = torch.from_numpy(np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3).astype(np.float32)).to(device)
    start = time.perf_counter()
    with torch.no_grad():
        for chunk in torch.split(grid, 65536):
            atlas.module(chunk, torch.zeros(len(chunk), device=device), *codes)
    naive_frame = time.perf_counter() - start
    cycle = size["cycle"]
    rows = [
        {"task": "training step (fwd+bwd), plain T MLP alone in the same run", "seconds": atlas.training_seconds_per_step,
         "baseline_s": step_plain, "ratio": step_full / step_plain},
        {"task": f"evaluate F on {n} points (ODE D1 + D2 + T) vs plain T", "seconds": full, "baseline_s": plain,
         "ratio": full / plain},
        {"task": "training, total", "seconds": train_s, "baseline_s": None, "ratio": None},
        *({"task": f"fit one subject, {SETTINGS.get(s, s)}", "seconds": float(np.mean(v)), "baseline_s": None, "ratio": None}
          for s, v in fit_seconds.items() if v),
        {"task": f"template: march once ({resolution}^3) + track {size['mesh'].tracking_steps} phases",
         "seconds": template_s, "baseline_s": None, "ratio": None},
        {"task": f"template material motion from {atlas.module.n_subjects} training subjects' trajectories "
                 f"({motion.n_steps} phases)", "seconds": material_s, "baseline_s": None, "ratio": None},
        {"task": f"subject meshes, full cycle ({cycle} phases) vs marching F per frame ({resolution}^3, 1 frame x {cycle})",
         "seconds": float(np.mean(cycle_seconds)), "baseline_s": naive_frame * cycle,
         "ratio": naive_frame * cycle / float(np.mean(cycle_seconds))},
        {"task": "peak memory (MB): process RSS" + (", CUDA allocated" if device.type == "cuda" else ""),
         "seconds": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
         "baseline_s": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None, "ratio": None},
    ]
    return rows


def evaluate_test_set(test_set, atlas, size, grid, midpoints, train_hearts, motion, sdf_motion, normal_motion,
                      fit_seconds, checks, cycle_seconds, previous_motion=None, with_offset: bool = False) -> Dict:
    """Fit and score every held-out heart of one test set (methods and baselines on the same hearts).
    Returns its surface rows, correspondence rows, true LVEFs and the last fit."""
    scores = Scores(size["samples"], test_set.label)
    temporal: Dict[str, List[float]] = {}
    ed_atlas, ed_truth, ed_faces, frames_used = [], [], [], []
    spread_rows: List[Dict] = []
    last_fit = None
    config = atlas.config
    for heart, index in zip(test_set.hearts, test_set.indices):
        data = subject_from_phantom(heart, np.sort(np.append(grid, heart.es_phase)), config.sampling, seed=100 + index)
        es = float(heart.es_phase)
        phases = np.concatenate([[0.0], np.sort(np.append(midpoints, es))])  # ED, then the evaluation phases
        truth_mesh = heart.mesh_sequence("myocardium", phases)
        frame = data.frame.with_extent_factor(atlas.extent_factor)
        subject = {"truth": frames_of(truth_mesh), "frame": frame, "phases": phases[1:],
                   "es_index": int(np.argmin(np.abs(phases[1:] - es))),
                   "observed": {"ed_es": (0.0, es), "ed": (0.0,)}, "es_phase": es}
        subject["curve"] = np.array([lv_cavity_volume_ml(v, f, frame) for v, f in subject["truth"]])
        static = [subject["truth"][0]] * len(phases)
        mean_motion = cohort_mean_motion(train_hearts, atlas.frames, truth_mesh.vertices[0], truth_mesh.faces, frame, phases)
        for setting in SETTINGS:
            observed = data.select([data.frame_index(p) for p in grid]) if setting == "all" else data
            fitted = fit_subject(atlas, observed, setting, size["fit"])
            fit_seconds[setting].append(fitted.seconds)
            mesh = subject_mesh_sequence(atlas, fitted, phases, motion, size["mesh"])
            es_fitted = recovered_es_phase(atlas, fitted)
            scores.add(setting, "atlas (ours)", frames_of(mesh), subject, es_fitted)
            previous_mesh = None
            if previous_motion is not None:  # the same fit, meshed with session 8's template motion (no rim relaxation)
                previous_mesh = subject_mesh_sequence(atlas, fitted, phases, previous_motion, size["mesh"])
                scores.add(setting, PREVIOUS_METHOD, frames_of(previous_mesh), subject, es_fitted)
            if with_offset and setting != "ed":  # the opt-in transmural offset (FitConfig.transmural_offset; default off, it
                # measured worse on held-out training-family hearts), same run, same hearts
                variant = fit_subject(atlas, observed, setting, replace(size["fit"], transmural_offset=True))
                fit_seconds[f"{setting} (transmural offset)"].append(variant.seconds)
                checks["offset_mm"].append(max(float(w.abs().max()) if w is not None else 0.0
                                               for w in (variant.offset, variant.motion_offset)) * frame.scale_mm)
                scores.add(setting, "atlas + transmural offset (opt-in)",
                           frames_of(subject_mesh_sequence(atlas, variant, phases, motion, size["mesh"])), subject,
                           recovered_es_phase(atlas, variant))
            # the same fit before its residual stage (the codes are frozen during it)
            codes_only = replace(fitted, residual=None, motion_residual=None, offset=None, motion_offset=None)
            scores.add(setting, "atlas, codes only (no residual warp)",
                       frames_of(subject_mesh_sequence(atlas, codes_only, phases, motion, size["mesh"])), subject, es_fitted)
            checks["jacobian"].append(float(d1_jacobian_determinant(atlas, fitted.shape_code).min()))
            if fitted.residual is not None:
                checks["residual_jacobian"].append(float(motion_residual_jacobian_determinant(
                    fitted.residual, fitted.motion_residual).min() if fitted.motion_residual is not None
                    else residual_jacobian_determinant(fitted.residual).min()))
            checks["folds"] += d2_folds(atlas, fitted.time_code)["folds"]
            checks["codes"] += 1
            ablation_fit = replace(size["fit"], residual_steps=0)  # code-level ablations: compare with codes only
            if setting == "ed_es":
                ablation = fit_subject(atlas, observed, setting, replace(ablation_fit, time_prior=False))
                fit_seconds["ed_es (no timing prior)"].append(ablation.seconds)
                scores.add(setting, "atlas codes only, no timing prior",
                           frames_of(subject_mesh_sequence(atlas, ablation, phases, motion, size["mesh"])), subject,
                           recovered_es_phase(atlas, ablation))
            if setting == "all":  # the previous default: no timing target from the observed frames
                untimed = fit_subject(atlas, observed, setting, replace(size["fit"], observed_timing=False))
                fit_seconds["all (no observed timing)"].append(untimed.seconds)
                scores.add(setting, "atlas, previous all-frames fit (no observed-volume timing)",
                           frames_of(subject_mesh_sequence(atlas, untimed, phases, motion, size["mesh"])), subject,
                           recovered_es_phase(atlas, untimed))
                estimate = observed.observed_es_phase()
                print(f"{test_set.label} {heart.subject_id}: ES from the observed volumes {estimate:.3f} (true {es:.3f}); "
                      f"recovered {es_fitted:.3f}, previous {recovered_es_phase(atlas, untimed):.3f}", flush=True)
            if setting != "all":
                plain = fit_subject(atlas, observed, setting, ablation_fit, use_shape_prior=False)
                if setting == "ed":
                    fit_seconds["ed (plain prior)"].append(plain.seconds)
                scores.add(setting, "atlas codes only, plain prior (no shape prior)",
                           frames_of(subject_mesh_sequence(atlas, plain, phases, motion, size["mesh"])), subject,
                           recovered_es_phase(atlas, plain))
            if setting == "ed":
                spread = prediction_spread(atlas, fitted, motion, size["mesh"], n_samples=size["spread_samples"],
                                           seed=index)
                curve = subject["curve"]  # the truth's LVEF by the same cavity measurement as the atlas'
                true_ef = 100.0 * (curve[0] - curve[subject["es_index"] + 1]) / curve[0]
                spread_rows.append({"test_set": test_set.label, "subject": heart.subject_id,
                                    "true_ES": es, "atlas_ES": f"{spread['es_phase_mean']:.3f} +/- {spread['es_phase_sd']:.3f}",
                                    "ES_in_2sd": bool(abs(es - spread["es_phase_mean"]) <= 2 * spread["es_phase_sd"]),
                                    "true_LVEF_mesh": true_ef, "true_LVEF_labels": heart.clinical_indices()["LVEF"],
                                    "atlas_LVEF": f"{spread['lvef_mean']:.1f} +/- {spread['lvef_sd']:.1f}",
                                    "LVEF_in_2sd": bool(abs(true_ef - spread["lvef_mean"]) <= 2 * spread["lvef_sd"])})
            if setting == "ed":
                on_atlas = cohort_mean_motion(train_hearts, atlas.frames, mesh.vertices[0], mesh.faces, frame, phases)
                scores.add(setting, "cohort mean motion on the atlas' ED mesh", frames_of(on_atlas), subject)
            scores.add(setting, "static ED mesh", static, subject)
            scores.add(setting, "cohort mean motion", frames_of(mean_motion), subject)
            if setting != "ed":
                blend_phases = grid if setting == "all" else subject["observed"]["ed_es"]
                scores.add(setting, "SDF blend of observed frames",
                           sdf_blend_meshes(heart, blend_phases, phases, size["grid_mm"]), subject)
            if setting == "all":
                normal = subject_mesh_sequence(atlas, fitted, phases, normal_motion, size["mesh"])
                tracked = subject_mesh_sequence(atlas, fitted, phases, sdf_motion, size["mesh"])
                previous_rows = [] if previous_mesh is None else [
                    ("atlas, cohort material motion, previous (no rim relaxation)", previous_mesh)]
                for name, sequence in (("atlas, cohort material motion in template space (ours)", mesh), *previous_rows,
                                       ("atlas, SDF tracking: smooth tangential transport", tracked),
                                       ("atlas, SDF tracking: normal motion only (closest point)", normal),
                                       ("cohort mean motion on the true ED mesh", mean_motion),
                                       ("no motion (ED mesh held still)", MeshSequence(np.stack([v for v, _ in static]), truth_mesh.faces, phases))):
                    temporal.setdefault(name, []).append(temporal_correspondence_error(sequence, heart.positions)[1:].mean())
                ed_atlas.append(mesh.vertices[0])
                ed_truth.append(truth_mesh.vertices[0])
                ed_faces.append(truth_mesh.faces)
                frames_used.append(frame)
                start = time.perf_counter()
                subject_mesh_sequence(atlas, fitted, np.arange(size["cycle"]) / size["cycle"], motion, size["mesh"])
                cycle_seconds.append(time.perf_counter() - start)
                last_fit = fitted
    corr_rows = [{"test_set": test_set.label, "correspondence": f"over the cycle (all frames fit): {name}",
                  "error_mm": mean_std(values)} for name, values in temporal.items()]
    corr_rows += [{"test_set": test_set.label, **row}
                  for row in cross_subject_rows({"atlas": ed_atlas}, ed_truth, ed_faces, frames_used)]
    return {"rows": scores.rows(), "correspondence": corr_rows, "last_fit": last_fit, "spread": spread_rows,
            "true_ef": [heart.clinical_indices()["LVEF"] for heart in test_set.hearts]}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument("--large", action="store_true", help="GPU-sized networks and cohort")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--with-offset", action="store_true",
                        help="also fit the opt-in transmural offset (FitConfig.transmural_offset; off by default, "
                             "measured in session 8)")
    add_family_arguments(parser)
    args = parser.parse_args(argv)
    device, size, wall = select_device(args.device), sizes(args.quick, args.large), time.perf_counter()
    seed_everything(args.seed)
    n_train, n_frames = size["train"], size["frames"]
    protocol = protocol_from_args(args, n_train, size["held"])
    train_hearts = protocol.train_hearts
    grid, midpoints = np.arange(n_frames) / n_frames, (np.arange(n_frames) + 0.5) / n_frames
    print(f"machine: {machine_description()}; device {describe_device(device)}; load average {os.getloadavg()[0]:.1f}")
    print(protocol.header())
    print(f"cohort: {n_train} training + {size['held']} held-out phantom subjects per test set, {n_frames} frames per "
          "cycle observed")

    config = replace(size["atlas"], seed=args.seed, checkpoint_every=0)
    start = time.perf_counter()
    train_data = [subject_from_phantom(h, grid, config.sampling, seed=i) for i, h in enumerate(train_hearts)]
    data_s, start = time.perf_counter() - start, time.perf_counter()
    atlas = train_atlas(train_data, config, device=device)
    train_s, start = time.perf_counter() - start, time.perf_counter()
    template_mesh = extract_template_mesh(atlas, 0.0, size["mesh"])
    sdf_motion = track_template(atlas, size["mesh"], template_mesh)
    template_s, start = time.perf_counter() - start, time.perf_counter()
    motion = material_template_motion(atlas, sdf_motion, [h.positions for h in train_hearts], size["mesh"])
    material_s = time.perf_counter() - start
    previous_motion = material_template_motion(atlas, sdf_motion, [h.positions for h in train_hearts],
                                               replace(size["mesh"], material_relax_iterations=0))
    normal_motion = track_template(atlas, replace(size["mesh"], smoothing_iterations=0), template_mesh)
    prior = atlas.shape_motion_prior
    print(f"data {data_s:.0f} s, training {train_s:.0f} s ({atlas.training_seconds_per_step:.3f} s/step, shape-to-motion "
          f"prior included), template march + tracking {template_s:.1f} s ({len(motion.faces)} faces), template "
          f"material motion {material_s:.1f} s")
    if prior is not None:
        print(f"shape-to-motion prior: ridge alpha {prior.alpha:.3g}, leave-one-out explained code variance "
              f"{100 * prior.explained:.0f} %")
    print()

    fit_seconds: Dict[str, List[float]] = {"all": [], "all (no observed timing)": [], "all (transmural offset)": [], "ed_es": [],
                                           "ed_es (transmural offset)": [], "ed_es (no timing prior)": [], "ed": [], "ed (plain prior)": []}
    checks = {"jacobian": [], "residual_jacobian": [], "folds": 0, "codes": 0, "offset_mm": []}
    cycle_seconds: List[float] = []
    results = [evaluate_test_set(test_set, atlas, size, grid, midpoints, train_hearts, motion, sdf_motion,
                                 normal_motion, fit_seconds, checks, cycle_seconds, previous_motion, args.with_offset)
               for test_set in protocol.test_sets]
    last_fit = results[-1]["last_fit"]
    rows = sum((r["rows"] for r in results), [])  # cross-family first (the protocol's order)
    columns = ["test_set", "setting", "method", "chamfer_mm", "hd95_mm", "ES_chamfer_mm", "ES_hd95_mm", "volume_err_ml",
               "EF_err_pct", "ED_chamfer_mm", "ES_phase_err"]
    print(format_table(rows, columns, title="Held-out subjects: withheld frames (mean +/- std over subjects x frames; "
                                            "ES columns: the ES frame, observed in ED+ES; ED_chamfer: the observed "
                                            "ED frame; ES_phase_err: |recovered - true ES phase|, "
                                            "fraction of the cycle)"))
    spread_rows = sum((r["spread"] for r in results), [])
    print()
    print(format_table(spread_rows, title="ED alone: the atlas' ES phase and LVEF (%) +/- the training cohort's sd "
                                          "(atlas.timing.prediction_spread); true LVEF from the ground-truth meshes "
                                          "by the same cavity measurement (and from the label maps)"))
    true_ef = "; ".join(f"{t.label}: {', '.join(f'{v:.0f} %' for v in r['true_ef'])}"
                        for t, r in zip(protocol.test_sets, results))
    print(f"paper (UK Biobank): chamfer 1.03 / 1.24 / 1.36 mm, HD95 2.40 / 2.91 / 3.25 mm (all / ED+ES / ED); "
          f"true LVEF of the held-out subjects: {true_ef}; volumes and EF are "
          "measured from myocardium meshes by SAX-slice filling, errors against the same measurement on the "
          "ground-truth meshes")
    corr_rows = sum((r["correspondence"] for r in results), [])
    print()
    print(format_table(corr_rows, title="Correspondence vs the phantom's material points (mm, mean over vertices)"))
    topology = mesh_topology((motion.vertices[0], motion.faces))
    topo_rows = [
        {"check": "template mesh (shared by every subject and frame): closed / manifold / oriented",
         "value": f"{topology.is_closed} / {topology.is_manifold} / {topology.is_consistently_oriented}"},
        {"check": "Euler characteristic (2 = sphere) / components", "value": f"{topology.euler_characteristic} / {topology.n_components}"},
        {"check": "vertices / faces", "value": f"{topology.n_vertices} / {topology.n_faces}"},
        {"check": f"min det Jacobian of D1 on a 24^3 grid over [-1,1]^3 ({checks['codes']} fitted codes, both test sets)",
         "value": f"{min(checks['jacobian']):.3f}"},
        {"check": "folded phase steps of D2 (2001-point grid, all fitted codes)", "value": str(checks["folds"])},
        {"check": "opt-in transmural offset: max |w0|, |w1| control value (mm; meshes keep the template's faces)",
         "value": f"{max(checks['offset_mm']):.2f}" if checks["offset_mm"] else "-"},
        {"check": "min det Jacobian of the residual warps on a 24^3 grid over [-1,1]^3 (time-varying ones at "
                  "m = 0, 0.25, .., 1)",
         "value": f"{min(checks['residual_jacobian']):.3f}" if checks["residual_jacobian"] else "-"},
        {"check": "template SDF tracking: cycle closure error (mm)",
         "value": f"{sdf_motion.closure_error * atlas.mean_scale_mm:.3f}"},
        {"check": "template material motion: cycle closure error (mm)",
         "value": f"{motion.closure_error * atlas.mean_scale_mm:.3f}"},
        {"check": "template surface level (mm; > 0: outward offset that closed a perforated wall)",
         "value": f"{motion.level * atlas.mean_scale_mm:.2f}"},
    ]
    print()
    print(format_table(topo_rows, title="Topology and diffeomorphism checks"))
    speed = speed_rows(atlas, last_fit, motion, size, fit_seconds, cycle_seconds, train_s, template_s, material_s)
    print()
    print(format_table(speed, title=f"Speed ({describe_device(device)}; seconds unless stated; ratio = baseline/ours "
                                     "or ours/plain)"))
    print(f"\ntotal wall time {time.perf_counter() - wall:.0f} s")
    if args.json:
        write_json(args.json, rows, {"quick": args.quick, "large": args.large, "seed": args.seed,
                                     "device": str(device), "machine": machine_description(),
                                     "train_subjects": n_train, "held_out": size["held"], "frames": n_frames,
                                     "shape_prior": None if prior is None else {"alpha": prior.alpha,
                                                                                "explained": prior.explained},
                                     **protocol.config()},
                   correspondence=corr_rows, topology=topo_rows, speed=speed, ed_alone_spread=spread_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
