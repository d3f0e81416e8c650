"""Generative CT motion (systole-conditioned CVAE) on held-out phantom subjects.

    python -m CardiacMotionAtlasLib.benchmarks.synthesis [--quick] [--large | --tiny] [--json PATH] [--device auto]
        [--train N] [--test M] [--samples K] [--threads T] [--baselines previous,standard-normal,amplitude,prior-clip,amplitude-prior-clip,pooled,amplitude-pooled | --no-baseline-cvae]
        [--train-family ellipsoidal] [--test-family lofted] [--acquisition randomised]

Leave-subjects-out across phantom families (:func:`.common.build_protocol`): ``--train`` hearts of the
training family (ES/ED CT on the working grid with their exact flows) train the PWC flow estimator
(whose pyramid is then frozen) and the CVAE; two test sets of ``--test`` hearts each are only
evaluated, every table reporting both: hearts of ``--test-family`` (cross-family, first) and held-out
hearts of the training family (in-family). With ``--acquisition randomised`` each heart is posed in
the scanner and its CT contrast (blood HU, RV enhancement), noise and PSF are drawn per subject; the
working grid (axial, ``working_voxel_mm``) is the method's and stays fixed. Flows follow the synthesis convention ``ED(p) = ES(p + w(p))`` (working-grid voxels;
mm = voxels x working_voxel_mm). Endpoint errors are pooled over voxels (mean +/- std, as the paper's
0.56 +/- 0.58 voxels) inside the heart (ED labels > 0) and over the whole working cube.

CVAEs trained on the same pairs with the same steps: the product's (learned prior p(z | frame), free
bits, motion-scale augmentation, local-volume det J loss, tiled latent, conditional U-Net decoder with
coarse-to-fine flow heads, implied-volume term ``index_weight``) and the baselines it replaced
(``--baselines``): ``previous`` (the earlier defaults: no implied-volume term, :func:`previous_config`)
and ``standard-normal`` (KL to N(0, I), the plain decoder, none of these); beside them, on request,
``amplitude`` (the opt-in LVEF latent coordinate, :func:`amplitude_config`), ``prior-clip`` and
``amplitude-prior-clip`` (the default / the LVEF coordinate with the prior's own gradient clip,
``SynthConfig.prior_grad_clip``), ``pooled`` and ``amplitude-pooled`` (the prior head on global
averages alone, ``SynthConfig.prior_pooled_only``); ``--no-baseline-cvae`` skips all. Tables: (1) reconstruction EPE of test flows through each CVAE
(posterior mean) and its prior mean, against zero flow, the trained estimator and SimpleITK demons; (2)
the generators (CVAE samples from their priors, random smooth B-spline fields scaled to the training
flows' RMS, and the true flows): diversity (mean pairwise EPE of ``--samples`` samples per ES frame),
latent-line smoothness, negative-Jacobian fraction, myocardial volume change and LV EF implied by the
warped labels, against the cohort's; (2b) per held-out subject its true LVEF (analytic, and implied by
the true flow through the same label warping) beside the implied LVEF of its samples (mean [min, max]);
(2c) over the subjects of each test set and pooled: Pearson correlation and mean absolute error of the
samples' mean implied LVEF against the true LVEF, with a constant (training cohort mean) as the
baseline, and the spread of implied LVEF over one subject's samples against the cohort's range, beside
each CVAE's prior-mean flow (``z = 0``, one decode per subject: the conditioning without sampling noise;
at 3465335, quick: lofted Pearson / MAE samples vs prior mean 0.84 / 13.0 vs 0.82 / 13.0 for the default,
0.60 / 12.3 vs 0.67 / 12.1 for the LVEF coordinate; reverse 0.42 / 22.5 vs 0.40 / 22.5 and 0.60 / 15.8 vs
0.53 / 15.4: the error is the prior mean's, not the draws'); (3)
usefulness: the same flow estimator trained on the real training pairs alone, plus CVAE-generated pairs,
or plus B-spline pairs, evaluated on the held-out ground-truth pairs, in the same run; (4) speed, memory.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import replace
from typing import Dict

import numpy as np
import torch

from ..phantom.ct import simulate_ct
from ..synthesis import SynthConfig
from ..synthesis.data import annotate_flow_demons, random_bspline_flow, stack_pairs
from ..synthesis.sample import generate, make_latents, sample_flows
from ..synthesis.train import estimate_flow, train_cvae, train_flow_estimator
from ..synthesis.data import acquired_pair, concat_pairs, generated_pair_tensors
from ..synthesis.indices import conditioning_summary
from ..geometry.warp import warp
from ..training import describe_device, select_device
from .synthesis_scores import (AMPLITUDE_CLIP_NAME, AMPLITUDE_NAME, AMPLITUDE_POOLED_NAME, POOLED_NAME, PRIOR_CLIP_NAME,
                               BASELINE_NAME, CVAE_NAME, PREVIOUS_NAME, endpoint_error, estimator_epe, flow_stats, label_stats,
                               score_row, subject_rows, text_rows)
from .common import (add_family_arguments, benchmark_parser, format_table, machine_description, protocol_from_args,
                     cross_family_first, write_json)


def _log(message: str) -> None:
    print(f"[synthesis benchmark {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def configs(args) -> SynthConfig:
    if args.large:
        return replace(SynthConfig.large(), seed=args.seed)
    if args.tiny:  # smoke runs and tests only: 16^3 x 8 mm, a few steps
        return replace(SynthConfig.tiny(), seed=args.seed)
    config = SynthConfig(seed=args.seed)
    if args.quick:
        config = replace(config, estimator_steps=120, cvae_steps=300, checkpoint_every=0)
    return config


def baseline_config(config: SynthConfig) -> SynthConfig:
    """The CVAE as it was before its conditional prior: KL to N(0, I), no free bits, no hybrid prior
    reconstruction, no motion-scale augmentation, the plain decoder with a position-specific latent map,
    the cube-averaged endpoint error alone (as in the earlier runs; steps and networks the same)."""
    return replace(config, decoder_frame_skips=False, coarse_to_fine_flow=False, motion_balanced=False, index_weight=0.0,
                   conditional_prior=False, kl_free_nats=0.0, prior_recon_weight=0.0, jacobian_weight=0.0,
                   tiled_latent=False, amplitude_latent=False, amplitude_lvef=False,
                   augment=replace(config.augment, motion_scale=0.0))


def previous_config(config: SynthConfig) -> SynthConfig:
    """The CVAE of the previous version (session 7's defaults): the conditional U-Net decoder with
    coarse-to-fine flow heads, motion scaling +-40 %, without the implied-volume term (index_weight 0)."""
    return replace(config, index_weight=0.0)


def amplitude_config(config: SynthConfig) -> SynthConfig:
    """The default with the opt-in LVEF latent coordinate (``amplitude_latent``, ``amplitude_lvef``) and
    motion scaling +-25 %, as measured on the dev hearts (:class:`~CardiacMotionAtlasLib.synthesis.SynthConfig`)."""
    return replace(config, amplitude_latent=True, amplitude_lvef=True, augment=replace(config.augment, motion_scale=0.25))


PRIOR_CLIP = 0.75
"""``prior_grad_clip`` of the ``prior-clip`` baselines (the shared clip's value, applied to the prior alone)."""


def prior_clip_config(config: SynthConfig) -> SynthConfig:
    """The default with the conditional prior's parameters clipped on their own gradient norm."""
    return replace(config, prior_grad_clip=PRIOR_CLIP)


def amplitude_clip_config(config: SynthConfig) -> SynthConfig:
    """:func:`amplitude_config` with the conditional prior's own gradient clip."""
    return prior_clip_config(amplitude_config(config))


def pooled_config(config: SynthConfig) -> SynthConfig:
    """The default with the prior head on the global channel averages alone (``prior_pooled_only``)."""
    return replace(config, prior_pooled_only=True)


def amplitude_pooled_config(config: SynthConfig) -> SynthConfig:
    """:func:`amplitude_config` with the prior head on the global channel averages alone."""
    return pooled_config(amplitude_config(config))


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--large", action="store_true", help="SynthConfig.large() (GPU)")
    parser.add_argument("--tiny", action="store_true", help="SynthConfig.tiny() (smoke runs and tests, no results)")
    parser.add_argument("--train", type=int, default=None, help="training subjects (default 12, quick 6)")
    parser.add_argument("--test", type=int, default=None, help="held-out subjects per test set (default 8)")
    parser.add_argument("--samples", type=int, default=None, help="samples per ES frame (default 8, quick 4)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--baselines", default="previous,standard-normal",
                        help="CVAEs trained in the same run beside the default: 'previous' (the earlier defaults: no implied-volume term), "
                             "'amplitude' (opt-in LVEF latent coordinate), 'prior-clip' / 'amplitude-prior-clip' (the prior's own "
                             "gradient clip, without / with the LVEF coordinate), 'pooled' / 'amplitude-pooled' (prior head on global "
                             "averages alone), 'standard-normal' "
                             "(N(0, I) prior, no free bits, no motion scaling), comma-separated")
    parser.add_argument("--no-baseline-cvae", action="store_true", help="no baseline CVAE")
    add_family_arguments(parser)
    args = parser.parse_args(argv)
    baselines = [] if args.no_baseline_cvae else [b.strip() for b in args.baselines.split(",") if b.strip()]
    known = {"previous", "standard-normal", "amplitude", "prior-clip", "amplitude-prior-clip", "pooled", "amplitude-pooled"}
    if set(baselines) - known:
        parser.error(f"--baselines: unknown {sorted(set(baselines) - known)}; expected any of {', '.join(sorted(known))}")
    if args.threads:
        torch.set_num_threads(args.threads)
    n_train = args.train or (6 if args.quick else 12)
    n_test = args.test or 8  # >= 3 per set: a Pearson correlation over the set's subjects (4 moved it by ~0.5 between runs)
    n_samples = args.samples or (4 if args.quick else 8)
    device = select_device(args.device)
    config = configs(args).validate()
    wall = time.time()
    h = config.working_voxel_mm

    protocol = protocol_from_args(args, n_train, n_test)
    _log(f"simulating {n_train} + {sum(len(t.hearts) for t in protocol.test_sets)} phantom subjects on a "
         f"{config.working_size}^3 x {h} mm working grid ({protocol.header()})")
    train_pairs = [acquired_pair(heart, index, protocol, config, seed=args.seed)
                   for heart, index in zip(protocol.train_hearts, protocol.train_indices)]
    test_sets = [(t, [acquired_pair(heart, index, protocol, config, seed=args.seed)
                      for heart, index in zip(t.hearts, t.indices)]) for t in protocol.test_sets]
    train_data = stack_pairs(train_pairs, config, device)

    _log(f"training the flow estimator ({config.estimator_steps} steps) = pyramid pre-training")
    start = time.perf_counter()
    estimator_a = train_flow_estimator(train_data, config, device=device)
    estimator_step_s = (time.perf_counter() - start) / max(config.estimator_steps, 1)
    _log(f"training the CVAE ({config.cvae_steps} steps, pyramid frozen)")
    start = time.perf_counter()
    trained = train_cvae(train_data, estimator_a, config, device=device)
    cvae_step_s = (time.perf_counter() - start) / max(config.cvae_steps, 1)
    model = trained.model
    cvaes = [(CVAE_NAME, trained)]
    for key, name, make in (("previous", PREVIOUS_NAME, previous_config), ("amplitude", AMPLITUDE_NAME, amplitude_config),
                            ("prior-clip", PRIOR_CLIP_NAME, prior_clip_config),
                            ("amplitude-prior-clip", AMPLITUDE_CLIP_NAME, amplitude_clip_config),
                            ("pooled", POOLED_NAME, pooled_config), ("amplitude-pooled", AMPLITUDE_POOLED_NAME, amplitude_pooled_config),
                            ("standard-normal", BASELINE_NAME, baseline_config)):
        if key in baselines:
            _log(f"training the baseline {name} ({config.cvae_steps} steps)")
            cvaes.append((name, train_cvae(train_data, estimator_a, make(config), device=device)))
    bound = config.flow_clip_mm / h

    # (1) reconstruction ---------------------------------------------------------------------------
    recon_rows = []
    for test_set, test_pairs in test_sets:
        _log(f"reconstruction, {test_set.label}")
        test_data = stack_pairs(test_pairs, config, device)
        candidates = []
        for label, cvae in cvaes:
            with torch.no_grad():
                features = cvae.model.condition(test_data.es)
                mu, _ = cvae.model.cvae.encode(test_data.flow, test_data.es, features)
                prior_mu, _ = cvae.model.cvae.prior(test_data.es, features)
                recon = torch.clamp(cvae.model.cvae.decode(mu, test_data.es, features), -bound, bound).cpu().numpy()
                prior = torch.clamp(cvae.model.cvae.decode(prior_mu, test_data.es, features), -bound, bound).cpu().numpy()
            candidates += [(f"{label}: reconstruction (posterior mean)", recon), (f"{label}: prior mean", prior)]
        truths = test_data.flow.cpu().numpy()
        demons = np.stack([annotate_flow_demons(p.ed, p.es) for p in test_pairs])
        estimated = estimate_flow(estimator_a, test_data.ed, test_data.es).cpu().numpy()
        for name, flows in candidates + [("flow estimator (ED, ES) -> w", estimated), ("SimpleITK demons (ED, ES)", demons),
                                         ("zero flow", np.zeros_like(truths))]:
            epe = [endpoint_error(f, t) for f, t in zip(flows, truths)]
            heart = np.concatenate([e[p.labels_ed > 0] for e, p in zip(epe, test_pairs)])
            grid = np.concatenate([e.ravel() for e in epe])
            recon_rows.append({"test_set": test_set.label,
                               **score_row("reconstruction", name, epe_heart_vox=heart, epe_heart_mm=heart * h,
                                      epe_grid_vox=grid, epe_grid_mm=grid * h)})

    # (2) generators ---------------------------------------------------------------------------------
    rms_vox = float(torch.sqrt((train_data.flow ** 2).sum(1).mean()))
    unit = random_bspline_flow((config.working_size,) * 3, 1.0, np.random.default_rng(0))
    amplitude = rms_vox / float(np.sqrt((unit ** 2).sum(0).mean()))
    rng = np.random.default_rng(args.seed + 99)
    cohort = [label_stats(p.labels_es, p.labels_ed) for p in train_pairs]
    cohort_ef = np.array([c["lvef"] for c in cohort])
    lo, hi = cohort_ef.min(), cohort_ef.max()
    analytic_ef = [heart.clinical_indices()["LVEF"] for heart in protocol.train_hearts]
    gen_rows, cond_rows, per_subject_rows = [], [], []
    pooled_truth, pooled_samples = [], {}
    sample_times = []
    for test_set, test_pairs in test_sets:
        _log(f"sampling {n_samples} flows per held-out ES frame (CVAE, B-spline), {test_set.label}")
        generators = {**{f"{label} samples": [] for label, _ in cvaes}, "random B-spline fields": [],
                      "true flows (phantom)": []}
        line_steps = {label: [] for label, _ in cvaes}
        line_rough = {label: [] for label, _ in cvaes}
        prior_means = {f"{label} prior mean (z = 0)": [] for label, _ in cvaes}  # conditioning without sampling noise
        for index, pair in enumerate(test_pairs):
            latents = make_latents("random", n_samples, config.latent_dim, seed=args.seed + index)
            heart = pair.labels_ed > 0
            for label, cvae in cvaes:
                start = time.perf_counter()
                flows = sample_flows(cvae, torch.as_tensor(pair.es), latents)
                ed = warp(torch.as_tensor(pair.es, device=device)[None, None].expand(n_samples, 1, -1, -1, -1), flows)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if cvae is trained:
                    sample_times.append((time.perf_counter() - start) / n_samples)
                del ed
                generators[f"{label} samples"].append(flow_stats(flows.cpu().numpy(), pair, config))
                mean_flow = sample_flows(cvae, torch.as_tensor(pair.es), torch.zeros(1, config.latent_dim))
                prior_means[f"{label} prior mean (z = 0)"].append(flow_stats(mean_flow.cpu().numpy(), pair, config))
                line = sample_flows(cvae, torch.as_tensor(pair.es), make_latents("line", 9, config.latent_dim, seed=index))
                line = line.cpu().numpy()
                steps = np.array([endpoint_error(line[i + 1], line[i])[heart].mean() for i in range(len(line) - 1)])
                line_steps[label].append(steps.mean())
                line_rough[label].append(steps.std() / max(steps.mean(), 1e-12))
            bspline = np.stack([random_bspline_flow(pair.es.shape, amplitude, rng) for _ in range(n_samples)])
            generators["random B-spline fields"].append(flow_stats(bspline, pair, config))
            generators["true flows (phantom)"].append(flow_stats(pair.flow_vox[None], pair, config))
        truth = [heart.clinical_indices()["LVEF"] for heart in test_set.hearts]
        per_subject_rows += subject_rows(test_set, test_pairs, truth, generators)
        pooled_truth += truth
        for name, per_subject in list(generators.items()) + list(prior_means.items()):
            if name != "random B-spline fields":
                pooled_samples.setdefault(name, []).extend(s["lvef"] for s in per_subject)
                cond_rows.append({"test_set": test_set.label, "method": name, "n_subjects": len(truth),
                                  **conditioning_summary(truth, [s["lvef"] for s in per_subject], (lo, hi))})
        cond_rows.append({"test_set": test_set.label, "method": "training cohort mean LVEF (constant)",
                          "n_subjects": len(truth), "mae_pct": float(np.mean(np.abs(np.mean(analytic_ef) - np.asarray(truth)))),
                          "bias_pct": float(np.mean(np.mean(analytic_ef) - np.asarray(truth)))})
        for name, per_subject in generators.items():
            merged = {key: sum((s[key] for s in per_subject), []) for key in per_subject[0]}
            efs = np.asarray(merged["lvef"])
            label = name[:-len(" samples")] if name.endswith(" samples") else None
            gen_rows.append({"test_set": test_set.label,
                             **score_row("generators", name, diversity_vox=merged["diversity"],
                                    diversity_mm=[d * h for d in merged["diversity"]],
                                    line_step_vox=line_steps.get(label, []),
                                    line_roughness=line_rough.get(label, []),
                                    neg_jac_pct=merged["neg_jac"], myo_change_pct=merged["myo_change"], lvef_pct=efs,
                                    ef_in_cohort_range_pct=float(100.0 * np.mean((efs >= lo) & (efs <= hi))))})
    for name, sample_ef in pooled_samples.items():
        cond_rows.append({"test_set": "all held-out subjects", "method": name, "n_subjects": len(pooled_truth),
                          **conditioning_summary(pooled_truth, sample_ef, (lo, hi))})
    training_label = f"training ({protocol.train_family})"
    gen_rows.append({"test_set": training_label,
                     **score_row("generators", "cohort (training ES/ED labels)", lvef_pct=cohort_ef,
                            myo_change_pct=[c["myo_change"] for c in cohort], ef_in_cohort_range_pct=100.0)})
    gen_rows.append({"test_set": training_label, **score_row("generators", "cohort (analytic LVEF)", lvef_pct=analytic_ef)})

    # (3) usefulness ---------------------------------------------------------------------------------
    per_subject = max(1, n_samples // 2)
    _log(f"usefulness: estimators trained with {per_subject} extra generated pairs per training subject")
    cvae_flows, bspline_flows, es_list = [], [], []
    for index, pair in enumerate(train_pairs):
        latents = make_latents("random", per_subject, config.latent_dim, seed=1000 + index)
        cvae_flows.append(sample_flows(trained, torch.as_tensor(pair.es), latents))
        bspline_flows.append(torch.as_tensor(np.stack([random_bspline_flow(pair.es.shape, amplitude, rng)
                                                       for _ in range(per_subject)]), device=device))
        es_list.append(train_data.es[index:index + 1].expand(per_subject, -1, -1, -1, -1))
    es_all = torch.cat(es_list)
    noise_hu = 20.0  # the phantom CT's default noise level (CTConfig.noise_hu)
    generated = generated_pair_tensors(es_all, torch.cat(cvae_flows), config, noise_hu, args.seed + 1)
    bspline_pairs = generated_pair_tensors(es_all, torch.clamp(torch.cat(bspline_flows).float(), -bound, bound), config,
                                     noise_hu, args.seed + 2)
    useful_rows = []
    runs = [("real pairs only", None, n_train),
            ("real + CVAE-generated pairs", concat_pairs(train_data, generated, masks_optional=True), n_train + len(generated)),
            ("real + random B-spline pairs", concat_pairs(train_data, bspline_pairs, masks_optional=True), n_train + len(bspline_pairs)),
            ("CVAE-generated pairs only", generated, len(generated)),
            ("random B-spline pairs only", bspline_pairs, len(bspline_pairs))]
    for name, data, n_pairs in runs:
        estimator = estimator_a if data is None else train_flow_estimator(data, config, device=device, description=name)
        for test_set, test_pairs in test_sets:
            result = estimator_epe(estimator, test_pairs, config, device)
            useful_rows.append({"test_set": test_set.label,
                                **score_row("usefulness", name, n_pairs=n_pairs, epe_heart_vox=result["heart"],
                                       epe_heart_mm=result["heart"] * h, epe_grid_vox=result["grid"],
                                       subject_epe_heart_vox=result["subject_heart"])})
    order = protocol.labels
    recon_rows, gen_rows, useful_rows, cond_rows, per_subject_rows = (
        cross_family_first(r, order) for r in (recon_rows, gen_rows, useful_rows, cond_rows, per_subject_rows))

    # (4) speed ------------------------------------------------------------------------------------------
    from ..phantom.ct import CTConfig

    speed_heart = protocol.test_sets[0].hearts[0]
    full = simulate_ct(speed_heart, [speed_heart.es_phase], CTConfig(), seed=args.seed)
    start = time.perf_counter()
    generate(trained, full.image, labels=full.labels.array[0], n=2)
    full_s = (time.perf_counter() - start) / 2
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    speed_rows = [
        score_row("speed", "CVAE training step", value=1000 * cvae_step_s, unit=f"ms (batch {config.batch_size})"),
        score_row("speed", "flow estimator training step", value=1000 * estimator_step_s, unit=f"ms (batch {config.batch_size})"),
        score_row("speed", "samples per second (working grid, flow + warp)", value=1.0 / np.mean(sample_times), unit="1/s"),
        score_row("speed", f"annotated sample on a {full.image.shape_zyx[0]}^3 x 1.5 mm CT frame", value=full_s,
             unit="s (flow, frame and labels)"),
        score_row("speed", "peak resident memory", value=peak_mb, unit="MB"),
    ]
    if device.type == "cuda":
        speed_rows.append(score_row("speed", "peak CUDA memory", value=torch.cuda.max_memory_allocated(device) / 2**20, unit="MB"))
    wall = time.time() - wall

    print(f"Generative CT motion benchmark: {n_train} training / {n_test} held-out phantom subjects per test set, "
          f"{n_samples} samples per frame; working grid {config.working_size}^3 x {h} mm; device "
          f"{describe_device(device)}; {machine_description()}; torch threads {torch.get_num_threads()}")
    print(protocol.header())
    print("EPE: per voxel, pooled over held-out subjects (mean +/- std); heart = ED labels > 0; 1 voxel = "
          f"{h} mm. Paper (Zuler et al.): reconstruction mEPE 0.56 +/- 0.58 voxels.\n")
    print(format_table(text_rows(recon_rows, ["epe_heart_vox", "epe_heart_mm", "epe_grid_vox", "epe_grid_mm"]),
                       title="(1) Reconstruction of held-out ES->ED flows"))
    print()
    print(format_table(text_rows(gen_rows, ["diversity_vox", "diversity_mm", "line_step_vox", "line_roughness", "neg_jac_pct",
                                        "myo_change_pct", "lvef_pct", "ef_in_cohort_range_pct"]),
                       title=f"(2) Generators on held-out ES frames (training cohort label-LVEF range {lo:.1f}-{hi:.1f} %)"))
    print()
    print(format_table(text_rows(per_subject_rows, ["subject", "true_lvef_pct", "true_flow_lvef_pct"]
                             + [k for k in per_subject_rows[0] if k.endswith("_samples")]),
                       title="(2b) Conditioning per held-out subject: true LVEF (analytic; implied by the true flow's "
                             "warped labels) vs implied LVEF of its samples, mean [min, max] (%)"))
    print()
    print(format_table(text_rows(cond_rows, ["n_subjects", "pearson", "mae_pct", "bias_pct", "spread_pct", "spread_of_cohort",
                                         "in_cohort_range_pct"]),
                       title=f"(2c) Conditioning: samples' mean implied LVEF vs true LVEF over held-out subjects "
                             f"(Pearson, MAE %, bias = mean signed error %, < 0: under-contraction); spread = max - min over one subject's samples (%), and as a fraction "
                             f"of the training cohort's label-LVEF range {lo:.1f}-{hi:.1f} %"))
    print()
    print(format_table(text_rows(useful_rows, ["n_pairs", "epe_heart_vox", "epe_heart_mm", "epe_grid_vox"]),
                       title="(3) Usefulness: the same flow estimator trained on ..., tested on held-out GT pairs"))
    print()
    print(format_table([{"item": r["method"], "value": f"{r['value']:.3g}", "unit": r["unit"]} for r in speed_rows],
                       title="(4) Speed and memory"))
    print(f"\nwall time {wall:.0f} s")
    if args.json:
        write_json(args.json, recon_rows + gen_rows + cond_rows + per_subject_rows + useful_rows + speed_rows,
                   {"synth": _plain_config(config), "train": n_train, "test": n_test,
                    "samples": n_samples, "seed": args.seed, "quick": args.quick, "device": str(device),
                    "wall_s": wall, "machine": machine_description(), **protocol.config()})
    return 0


def _plain_config(config: SynthConfig) -> Dict:
    from ..training import config_to_dict

    return config_to_dict(config)


if __name__ == "__main__":
    raise SystemExit(main())
