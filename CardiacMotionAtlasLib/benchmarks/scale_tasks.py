"""Whole tasks of the speed benchmark (sections 3-6 of :mod:`.scale`): atlas cycle meshes and fitting,
NISF++ 4D grid sampling, CardioMorphNet inference; each next to its baseline, measured in the same run."""

from __future__ import annotations

import copy
import time
from dataclasses import replace
from typing import Dict, List, Tuple

import numpy as np
import torch

from .scale_measure import Row, activation_bytes_per_point, auto_chunk, measure


# --------------------------------------------------------------------------------------------- atlas
def _trained_atlas(device: torch.device, quick: bool):
    """A briefly trained atlas (enough for a closed template surface) on three phantom subjects."""
    from ..atlas.config import AtlasConfig, SamplingConfig
    from ..atlas.sampling import subject_from_phantom
    from ..atlas.train import train_atlas
    from ..phantom.heart import PhantomHeart

    config = replace(AtlasConfig.tiny() if quick else AtlasConfig.quick(), steps=150 if quick else 250,
                     template_warmup_steps=100, sampling=SamplingConfig(samples_per_frame=3000))
    hearts = [PhantomHeart.from_seed(0, index) for index in range(4)]
    subjects = [subject_from_phantom(h, np.arange(6) / 6, config.sampling, seed=i) for i, h in enumerate(hearts[:3])]
    held = subject_from_phantom(hearts[3], np.sort(np.append(np.arange(6) / 6, hearts[3].es_phase)), config.sampling,
                                seed=3)
    start = time.perf_counter()
    atlas = train_atlas(subjects, config, device=device)
    return atlas, held, time.perf_counter() - start


def _naive_cycle_meshes(atlas, fitted, phases: np.ndarray, resolution: int, batch: int) -> List[int]:
    """Baseline: per frame, ``F(p, t, c)`` on a ``resolution^3`` grid of the subject's canonical box (every
    grid point through the forward ODE) and marching cubes; no correspondence between frames."""
    from skimage.measure import marching_cubes

    axis = np.linspace(-1.0, 1.0, resolution, dtype=np.float32)
    grid = torch.from_numpy(np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)).to(atlas.device)
    code_p, code_t = fitted.shape_code[None].to(atlas.device), fitted.time_code[None].to(atlas.device)
    counts = []
    with torch.no_grad():
        for phase in phases:
            values = torch.empty(len(grid), device=atlas.device)
            for start in range(0, len(grid), batch):
                chunk = grid[start:start + batch]
                t = torch.full((len(chunk),), float(phase), device=atlas.device)
                values[start:start + batch] = atlas.module(chunk, t, code_p, code_t)[0]
            volume = values.reshape(resolution, resolution, resolution).cpu().numpy()
            if volume.min() < 0 < volume.max():
                counts.append(len(marching_cubes(volume, 0.0)[0]))
            else:
                counts.append(0)
    return counts


def bench_atlas(device: torch.device, quick: bool, repeats: int, budget_mb: float) -> Tuple[List[Row], Dict]:
    from ..atlas.config import FitConfig, MeshConfig
    from ..atlas.fit import fit_subject
    from ..atlas.meshing import subject_mesh_sequence, track_template

    atlas, held, train_s = _trained_atlas(device, quick)
    rows: List[Row] = []
    fit_config = FitConfig(steps=40 if quick else 100)
    # atlas fitting per subject: fixed-step RK4 (the default) vs adaptive dopri5 vs bfloat16 autocast
    fits = {}
    variants = [("rk4", None, "fixed-step rk4, float32 (library default)"), ("dopri5", None, "adaptive dopri5"),
                ("rk4", torch.bfloat16, "fixed-step rk4, bfloat16 autocast")]
    for method, autocast, label in variants:
        atlas.module.spatial.method = method
        result = {}

        def run_fit():
            if autocast is None:
                result["fit"] = fit_subject(atlas, held, "all", fit_config)
            else:
                with torch.autocast(device.type, dtype=autocast):
                    result["fit"] = fit_subject(atlas, held, "all", fit_config)

        seconds, std, peak = measure(run_fit, device, repeats=2 if label.endswith("default)") else 1, warmup=0)
        fits[label] = result["fit"]
        rows.append({"section": "atlas fit", "case": f"{held.subject_id}, {fit_config.steps} steps, all frames",
                     "method": label, "time_s": seconds, "time_std_s": std, "peak_mb": peak,
                     "sdf_error_mm": result["fit"].sdf_error_mm})
    atlas.module.spatial.method = "rk4"
    for row in rows[-3:]:
        row["speedup_vs_baseline"] = rows[-2]["time_s"] / row["time_s"]  # baseline: adaptive dopri5

    mesh_config = MeshConfig(resolution=40 if quick else 48, tracking_steps=24 if quick else 48)
    phases = np.arange(10 if quick else 20) / (10 if quick else 20)
    fitted = fits[variants[0][2]]
    motion = {}
    seconds, std, peak = measure(lambda: motion.__setitem__("m", track_template(atlas, mesh_config)), device, repeats=1,
                                 warmup=0)
    rows.append({"section": "mesh cycle", "case": f"template tracking (once per atlas), {mesh_config.resolution}^3",
                 "method": "march once + track", "time_s": seconds, "time_std_s": std, "peak_mb": peak,
                 "vertices": int(len(motion["m"].vertices[0]))})
    meshes = {}
    for method in ("rk4", "dopri5"):
        atlas.module.spatial.method = method

        def run_cycle():
            meshes[method] = subject_mesh_sequence(atlas, fitted, phases, motion=motion["m"], config=mesh_config)

        seconds, std, peak = measure(run_cycle, device, repeats=repeats if method == "rk4" else 1, warmup=0)
        rows.append({"section": "mesh cycle", "case": f"subject, {len(phases)} frames",
                     "method": ("tracked template + inverse flow, rk4 (library)" if method == "rk4"
                                else "tracked template + inverse flow, dopri5"),
                     "time_s": seconds, "time_std_s": std, "peak_mb": peak})
    atlas.module.spatial.method = "rk4"
    difference = np.abs(meshes["rk4"].vertices - meshes["dopri5"].vertices).max()
    rows[-1]["max_vertex_difference_mm"] = float(difference)
    library_s = rows[-2]["time_s"]
    resolution = mesh_config.resolution
    counts = {}
    chunk = auto_chunk(3 * 4 * max(atlas.config.template_hidden, atlas.config.velocity_hidden * 4), budget_mb)
    seconds, std, peak = measure(lambda: counts.__setitem__("c", _naive_cycle_meshes(atlas, fitted, phases, resolution,
                                                                                       chunk)),
                                 device, repeats=1, warmup=0)
    rows.append({"section": "mesh cycle", "case": f"subject, {len(phases)} frames",
                 "method": f"marching cubes of F through the ODE per frame ({resolution}^3, baseline)",
                 "time_s": seconds, "time_std_s": std, "peak_mb": peak,
                 "note": "no correspondence between frames"})
    for row in rows[-3:]:
        row["speedup_vs_baseline"] = seconds / row["time_s"]
    return rows, {"atlas_training_s": train_s, "atlas_config": "tiny" if quick else "quick",
                  "library_cycle_s": library_s}


# --------------------------------------------------------------------------------------------- NISF++
def _nisf_fit(device: torch.device, quick: bool):
    """A NISF++ model with the default network, briefly trained (timing does not depend on the weights;
    the bfloat16 label agreement does, a little) and a fitted phantom subject."""
    from ..nisf import NISFConfig, fit_subject, train_nisf
    from ..phantom.cmr import CMRConfig, simulate_cine
    from ..phantom.heart import PhantomHeart

    heart = PhantomHeart.from_seed(0, 0)
    study = simulate_cine(heart, CMRConfig.tiny(), seed=1).study
    config = NISFConfig()
    config.steps = 20 if quick else 60
    config.fit = replace(config.fit, steps=5)
    trained = train_nisf([study], config, device=device)
    return fit_subject(trained, study, config.fit)


def _sample_all_phases(fit, ijk_to_ras: np.ndarray, shape_zyx, phases: np.ndarray, chunk: int,
                       dtype: torch.dtype = torch.float32) -> np.ndarray:
    """Candidate hot path: every phase of a chunk in one forward (one transfer per chunk, not per phase).
    Returns ``(t, z, y, x)`` uint8 labels (no largest-component clean-up)."""
    from ..geometry.affine import apply_affine

    nz, ny, nx = shape_zyx
    total = nz * ny * nx
    n_phases = len(phases)
    labels = np.zeros((n_phases, total), np.uint8)
    network = fit.network if dtype == torch.float32 else copy.deepcopy(fit.network).to(dtype)
    latent = fit.latent.to(dtype)
    limit = fit.config.roi_half_size * 1.05
    phase_tensor = torch.as_tensor(phases, dtype=dtype, device=fit.device)
    per_chunk = max(1, chunk // n_phases)
    with torch.no_grad():
        for start in range(0, total, per_chunk):
            flat = np.arange(start, min(start + per_chunk, total))
            k, rest = np.divmod(flat, nx * ny)
            j, i = np.divmod(rest, nx)
            points = fit.template_points(apply_affine(ijk_to_ras, np.stack([i, j, k], 1).astype(float)))
            inside = torch.nonzero(points.abs().max(dim=1).values <= limit).squeeze(1)
            if inside.numel() == 0:
                continue
            p = points[inside].to(dtype)
            all_points = p.repeat(n_phases, 1)
            all_phases = phase_tensor.repeat_interleave(len(p))
            logits = network(all_points, all_phases, latent)[1]
            classes = logits.argmax(dim=1).to(torch.uint8).reshape(n_phases, len(p)).cpu().numpy()
            labels[:, flat[inside.cpu().numpy()]] = classes
    return labels.reshape(n_phases, nz, ny, nx)


def bench_nisf(device: torch.device, quick: bool, repeats: int, has_bf16: bool, budget_mb: float) -> List[Row]:
    from ..nisf.sampling import sample_grid, standard_grid

    fit = _nisf_fit(device, quick)
    spacing = 3.0 if quick else 2.5
    ijk_to_ras, shape = standard_grid(fit, spacing)
    phases = np.arange(10 if quick else 20) / (10 if quick else 20)
    n = 4096
    inputs = (torch.zeros(n, 3, device=device), torch.zeros(n, device=device))
    chunk = auto_chunk(activation_bytes_per_point(fit.network, lambda: fit.network(*inputs, fit.latent), n), budget_mb)
    voxels = int(np.prod(shape)) * len(phases)
    case = f"{shape[0]}x{shape[1]}x{shape[2]} x {len(phases)} phases ({spacing} mm)"
    rows: List[Row] = []
    results = {}
    for size, what in ((fit.config.sample_chunk, "config default"), (chunk, "auto")):
        def run():
            results[size] = sample_grid(fit, ijk_to_ras, shape, phases, chunk=size, want_intensity=False,
                                        largest_component=False, coarse_to_fine=False).labels.array

        seconds, std, peak = measure(run, device, repeats=repeats, warmup=0)
        rows.append({"section": "nisf 4D grid", "case": case, "method": f"library sample_grid, chunk {size} ({what})",
                     "time_s": seconds, "time_std_s": std, "peak_mb": peak, "voxels_per_s": voxels / seconds})
    reference = results[fit.config.sample_chunk]
    variants = [(f"all phases per forward, chunk {4 * chunk}, float32", torch.float32)]
    if has_bf16:
        variants.append((f"all phases per forward, chunk {4 * chunk}, bfloat16", torch.bfloat16))
    for method, dtype in variants:
        out = {}
        seconds, std, peak = measure(lambda: out.__setitem__("l", _sample_all_phases(
            fit, ijk_to_ras, shape, phases, 4 * chunk, dtype)), device, repeats=repeats, warmup=0)
        agreement = float((out["l"] == reference).mean())
        rows.append({"section": "nisf 4D grid", "case": case, "method": method, "time_s": seconds,
                     "time_std_s": std, "peak_mb": peak, "voxels_per_s": voxels / seconds,
                     "label_agreement": agreement})
    base = rows[0]["time_s"]
    for row in rows:
        row["speedup_vs_baseline"] = base / row["time_s"]
    return rows


# --------------------------------------------------------------------------------------------- motion
def bench_motion(device: torch.device, quick: bool, repeats: int, has_bf16: bool) -> List[Row]:
    """CardioMorphNet inference per sequence (default network sizes; timing does not depend on the weights,
    so the model is not trained): posterior samples of the default config next to the minimum (2), and
    bfloat16 autocast next to float32 (indices compared)."""
    from ..motion import MotionConfig, estimate_motion, sequence_from_study, train_motion
    from ..phantom.cmr import CMRConfig, simulate_cine
    from ..phantom.heart import PhantomHeart

    # the tiny cine in both modes: the default-size cine takes over 10 minutes and 6 GB on one CPU thread
    study = simulate_cine(PhantomHeart.from_seed(0, 0), CMRConfig.tiny(), seed=1).study
    sequence = sequence_from_study(study)
    config = replace(MotionConfig(), steps=0, seg_steps=0)
    trained = train_motion([sequence], config, device=device)
    case = f"{sequence.n_frames} frames {tuple(sequence.shape_zyx)}"
    rows: List[Row] = []
    results = {}
    variants = [(config.posterior_samples, None), (2, None)]
    if has_bf16:
        variants.append((config.posterior_samples, torch.bfloat16))
    for samples, dtype in variants:
        def run():
            if dtype is None:
                results[(samples, dtype)] = estimate_motion(trained, sequence, samples=samples)
            else:
                with torch.autocast(device.type, dtype=dtype):
                    results[(samples, dtype)] = estimate_motion(trained, sequence, samples=samples)

        try:
            seconds, std, peak = measure(run, device, repeats=repeats, warmup=0)
        except (RuntimeError, TypeError) as failure:  # e.g. a bfloat16 tensor handed to numpy
            rows.append({"section": "motion inference", "case": case, "method": "bfloat16 autocast",
                         "note": f"unsupported: {type(failure).__name__}: {str(failure)[:60]}"})
            continue
        rows.append({"section": "motion inference", "case": case, "key": (samples, dtype),
                     "method": f"{samples} posterior samples, {'float32' if dtype is None else 'bfloat16 autocast'}",
                     "time_s": seconds, "time_std_s": std, "peak_mb": peak})
    reference = results[(config.posterior_samples, None)]
    for row in rows:
        key = row.pop("key", None)
        if key is None:
            continue
        row["speedup_vs_baseline"] = rows[0]["time_s"] / row["time_s"]
        diff = max(abs(results[key].indices[k] - reference.indices[k]) for k in reference.indices
                   if np.isfinite(reference.indices[k]))
        row["note"] = f"max index difference {diff:.3g}"
    return rows
