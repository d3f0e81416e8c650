"""Speed against the hardware limit: ``python -m CardiacMotionAtlasLib.benchmarks.scale [--quick] [--json PATH]``.

Everything below is measured in one run, on one device (``--device``, CUDA when present) with one thread
count (``--threads``, default 1: the machines this runs on in CI are shared), and printed as tables with
mean +/- std over repeats:

1. **Limit**: the machine's matrix-multiply GFLOP/s (float32 and bfloat16, same threads, best of repeats).
2. **Implicit networks, batched evaluation** (NDF template ``T``, NDF warper ``D1`` through its ODE, the full
   ``F = T(D1(p), D2(t))``, the NISF++ MLP; default network sizes): matmul FLOPs counted with
   ``torch.utils.flop_counter``, achieved GFLOP/s and its fraction of the measured matmul rate, points per
   second; a per-point Python loop as the naive baseline; bfloat16 next to float32 with its error;
   ``torch.compile`` (full run only; compile time reported); the chunk size chosen automatically for a
   memory budget (``--memory-mb``) and a sweep around it.
3. **Mesh extraction for a full cycle** (a briefly trained atlas): the library's path (template marched once,
   tracked, carried by the inverse flow) next to marching cubes of ``F`` through the forward ODE per frame;
   fixed-step RK4 next to adaptive dopri5 for the inverse flow.
4. **NISF++ 4D sampling of a full grid**: the library's ``sample_grid`` next to all phases in one forward
   per chunk, and bfloat16 (label agreement).
5. **Atlas fitting per subject**: fixed-step RK4 (the default) next to adaptive dopri5 and to bfloat16 autocast.
6. **Motion inference per sequence** (CardioMorphNet, default network on the tiny phantom cine): posterior
   samples (16, the default, next to 2) and bfloat16 autocast.

Peak memory: CUDA's ``max_memory_allocated``, or on CPU the peak resident-set growth sampled every ms during
the first run (it misses sub-millisecond transients: for the network rows ``activation_mb_est``, the chunk
times the estimated activation bytes per point, is the budgeted figure).
"""

from __future__ import annotations

import copy
import gc
import math
import threading
import time
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from .common import benchmark_parser, format_table, machine_description, write_json

Row = Dict[str, object]


# --------------------------------------------------------------------------------------------- measuring
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mmap_threshold(value: int) -> None:
    """glibc ``mallopt(M_MMAP_THRESHOLD, value)``: with a small threshold every tensor buffer is mapped and
    unmapped on its own, so the resident set follows live memory (no-op where glibc is absent)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, int(value))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory (MB) used inside the ``with`` block: CUDA allocator peak, or on CPU the peak growth of
    the resident set sampled every ms (buffers of 64 KiB and more mapped individually meanwhile, so memory
    cached by the allocator from earlier work does not hide the peak)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = float("nan")

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        import psutil

        _mmap_threshold(64 * 1024)
        self._process = psutil.Process()
        self._base = self._process.memory_info().rss
        self._peak = self._base
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.is_set():
                self._peak = max(self._peak, self._process.memory_info().rss)
                self._stop.wait(0.001)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
            return
        self._peak = max(self._peak, self._process.memory_info().rss)
        self._stop.set()
        self._thread.join()
        _mmap_threshold(32 * 2**20)  # back to glibc's largest dynamic threshold for the timings
        self.peak_mb = (self._peak - self._base) / 2**20


def measure(fn: Callable[[], object], device: torch.device, repeats: int = 3, warmup: int = 1
            ) -> Tuple[float, float, float]:
    """(mean s, std s, peak MB) of ``fn()`` over ``repeats`` timed runs after ``warmup`` runs; the peak
    memory comes from the first run (the warm-up, or the first timed run without warm-up)."""
    times = []
    for index in range(warmup + repeats):
        if index == 0:
            with PeakMemory(device) as memory:
                start = time.perf_counter()
                fn()
                _sync(device)
                elapsed = time.perf_counter() - start
        else:
            start = time.perf_counter()
            fn()
            _sync(device)
            elapsed = time.perf_counter() - start
        if index >= warmup:
            times.append(elapsed)
    return float(np.mean(times)), float(np.std(times)), memory.peak_mb


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 4096, k: int = 512, repeats: int = 7) -> float:
    """Best measured GFLOP/s of an ``(n, k) @ (k, k)`` matrix multiply (``2 n k^2`` FLOPs)."""
    a = torch.randn(n, k, device=device).to(dtype)
    b = torch.randn(k, k, device=device).to(dtype)
    best = math.inf
    for _ in range(repeats + 2):
        _sync(device)
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        _sync(device)
        best = min(best, (time.perf_counter() - start) / 4)
    return 2.0 * n * k * k / best / 1e9


def count_flops(fn: Callable[[], object]) -> int:
    """Matrix-multiply FLOPs (``mm``, ``addmm``, ``bmm``, ...: 2 per multiply-add) of one call."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            fn()
    return int(counter.get_total_flops())


def activation_bytes_per_point(module: nn.Module, call: Callable[[], object], n_points: int) -> int:
    """Estimated peak activation bytes per point in a no-grad forward: three times the widest layer output
    (input, output and one temporary alive together), from forward hooks on every leaf module."""
    widest = [0]

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() >= 1 and output.shape[0] == n_points:
            widest[0] = max(widest[0], output[0].numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            call()
    finally:
        for handle in handles:
            handle.remove()
    return max(3 * widest[0], 64)


def auto_chunk(bytes_per_point: int, budget_mb: float, low: int = 1024, high: int = 1 << 20) -> int:
    """Points per chunk: the largest power of two whose activations fit ``budget_mb``, within
    ``[low, high]``."""
    fit = max(1, int(budget_mb * 2**20 // max(bytes_per_point, 1)))
    return int(min(high, max(low, 2 ** int(math.floor(math.log2(fit))))))


def default_memory_budget_mb(device: torch.device) -> float:
    """Activation budget per chunk: on CPU one core's L2 cache (activations that stay cache-resident beat
    bigger matrix multiplies, see the chunk sweep), on CUDA a quarter of the free memory (at most 2 GB)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return min(2048.0, free / 4 / 2**20)
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as handle:
            text = handle.read().strip().upper()
        value = float(text.rstrip("KMG"))
        return value / 1024 if text.endswith("K") else value * (1024 if text.endswith("G") else 1)
    except (OSError, ValueError):
        return 2.0


def _chunked(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], chunk: int,
             out: torch.Tensor) -> torch.Tensor:
    n = inputs[0].shape[0]
    with torch.no_grad():
        for start in range(0, n, chunk):
            value = fn(*(x[start:start + chunk] for x in inputs))
            out[start:start + chunk] = value if value.dim() == out.dim() else value.reshape(out[start:start + chunk].shape)
    return out


# --------------------------------------------------------------------------------------------- networks
def _network_cases(device: torch.device, generator: torch.Generator):
    """(name, module, fn(module, *inputs) -> (N,) or (N, k), inputs builder(n, dtype), output width)."""
    from ..atlas.config import AtlasConfig
    from ..atlas.model import NeuralDiffeomorphicAtlas
    from ..nisf.config import NetworkConfig
    from ..nisf.network import NISFNetwork

    config = AtlasConfig()
    atlas = NeuralDiffeomorphicAtlas(config, 1).to(device).eval()
    with torch.no_grad():  # non-zero velocities (the trained case; zero-initialised heads are the identity)
        for block in atlas.spatial.blocks:
            block.out.weight.normal_(0.0, 0.05, generator=generator)
    nisf = NISFNetwork(NetworkConfig()).to(device).eval()
    latent = torch.randn(NetworkConfig().latent_dim, generator=generator).to(device) * 0.01
    shape_code, time_code = atlas.shape_codes[:1].detach(), atlas.time_codes[:1].detach()

    def points(n, dtype):
        p = (torch.rand(n, 3, generator=generator) * 2 - 1).to(device=device, dtype=dtype)
        t = torch.rand(n, generator=generator).to(device=device, dtype=dtype)
        return p, t

    return [
        ("NDF template T", atlas.template, lambda m, p, t: m(p, t), points, 1),
        ("NDF warper D1 (rk4 ODE)", atlas.spatial, lambda m, p, t: m(p, shape_code.to(p.dtype))[0], points, 3),
        ("NDF F = T(D1, D2)", atlas,
         lambda m, p, t: m(p, t, shape_code.to(p.dtype), time_code.to(p.dtype))[0], points, 1),
        ("NISF++ MLP", nisf, lambda m, p, t: m(p, t, latent.to(p.dtype))[1], points, 4),
    ]


def bench_networks(device: torch.device, quick: bool, budget_mb: float, peaks: Dict[str, float],
                   use_compile: bool, repeats: int) -> Tuple[List[Row], List[Row]]:
    generator = torch.Generator().manual_seed(0)
    rows: List[Row] = []
    sweep: List[Row] = []
    for name, module, fn, make_inputs, width in _network_cases(device, generator):
        heavy = "D1" in name or "F =" in name
        n = (1 << 14 if quick else 1 << 16) if heavy else (1 << 16 if quick else 1 << 18)
        loop_n = 16 if heavy else 64
        inputs = make_inputs(n, torch.float32)
        probe = 4096
        flops_per_point = count_flops(lambda: fn(module, *(x[:probe] for x in inputs))) / probe
        per_point_bytes = activation_bytes_per_point(module, lambda: fn(module, *(x[:probe] for x in inputs)), probe)
        chunk = auto_chunk(per_point_bytes, budget_mb)
        out = torch.empty((n, width) if width > 1 else (n,), device=device)
        reference = _chunked(lambda *x: fn(module, *x), inputs, chunk, out.clone())

        def row(method: str, seconds: float, std: float, peak: float, points: int, dtype: str, **extra) -> Row:
            rate = points / seconds
            gflops = flops_per_point * rate / 1e9
            limit = peaks[dtype]
            chunk_ = extra.get("chunk", 1)
            return {"section": "networks", "case": name, "method": method, "dtype": dtype,
                    "time_s": seconds, "time_std_s": std, "peak_mb": peak, "points_per_s": rate,
                    "activation_mb_est": chunk_ * per_point_bytes / 2**20,
                    "gflops": gflops, "matmul_gflops": limit, "fraction_of_matmul": gflops / limit,
                    "flops_per_point": flops_per_point, **extra}

        loop_inputs = [x[:loop_n] for x in inputs]
        loop_out = torch.empty((loop_n, width) if width > 1 else (loop_n,), device=device)
        seconds, std, peak = measure(lambda: _chunked(lambda *x: fn(module, *x), loop_inputs, 1, loop_out), device,
                                     repeats=2)
        baseline = row("per-point Python loop", seconds, std, peak, loop_n, "float32", chunk=1)
        rows.append(baseline)
        seconds, std, peak = measure(lambda: _chunked(lambda *x: fn(module, *x), inputs, chunk, out), device, repeats)
        rows.append(row(f"batched, auto chunk", seconds, std, peak, n, "float32", chunk=chunk))
        fp32_rate = rows[-1]["points_per_s"]

        if peaks.get("bfloat16"):
            half = copy.deepcopy(module).to(torch.bfloat16)
            half_inputs = [x.to(torch.bfloat16) for x in inputs]
            out16 = torch.empty(out.shape, device=device, dtype=torch.bfloat16)
            try:
                seconds, std, peak = measure(lambda: _chunked(lambda *x: fn(half, *x), half_inputs, chunk, out16),
                                             device, repeats)
                error = (out16.float() - reference).abs().max().item()
                rows.append(row("batched bfloat16", seconds, std, peak, n, "bfloat16", chunk=chunk,
                                max_abs_error=error))
            except (RuntimeError, TypeError) as failure:  # an op without a bfloat16 kernel on this device
                rows.append({"section": "networks", "case": name, "method": "batched bfloat16",
                             "note": f"unsupported: {type(failure).__name__}"})
        if use_compile and not heavy:
            try:
                start = time.perf_counter()
                compiled = torch.compile(module)
                _chunked(lambda *x: fn(compiled, *x), inputs, chunk, out)
                compile_s = time.perf_counter() - start
                seconds, std, peak = measure(lambda: _chunked(lambda *x: fn(compiled, *x), inputs, chunk, out), device,
                                             repeats)
                rows.append(row("torch.compile", seconds, std, peak, n, "float32", chunk=chunk, compile_s=compile_s))
            except Exception as failure:  # no compiler toolchain: report, do not fail the benchmark
                rows.append({"section": "networks", "case": name, "method": "torch.compile",
                             "note": f"unavailable: {type(failure).__name__}"})
        for row_ in rows:
            if row_.get("case") == name and "points_per_s" in row_:
                row_["speedup_vs_loop"] = row_["points_per_s"] / baseline["points_per_s"]
        if not name.startswith("NDF warper"):  # chunk sweep around the automatic choice
            sizes = {1024, 4096, 16384, chunk} if heavy else {1024, 4096, 16384, 65536, chunk, min(n, 262144)}
            for size in sorted(sizes):
                seconds, _, peak = measure(lambda: _chunked(lambda *x: fn(module, *x), inputs, size, out), device,
                                           repeats=2)
                sweep.append({"section": "chunk sweep", "case": name, "chunk": size, "auto": size == chunk,
                              "points_per_s": n / seconds, "peak_mb": peak,
                              "relative_to_auto": (n / seconds) / fp32_rate})
    return rows, sweep


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
                                        largest_component=False).labels.array

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


# --------------------------------------------------------------------------------------------- main
NETWORK_COLUMNS = ["case", "method", "dtype", "chunk", "time_s", "points_per_s", "gflops", "fraction_of_matmul",
                   "speedup_vs_loop", "activation_mb_est", "peak_mb", "max_abs_error", "compile_s"]
SWEEP_COLUMNS = ["case", "chunk", "auto", "points_per_s", "relative_to_auto", "peak_mb"]
TASK_COLUMNS = ["case", "method", "time", "speedup_vs_baseline", "peak_mb", "voxels_per_s", "sdf_error_mm",
                "max_vertex_difference_mm", "label_agreement", "note"]


def _with_time(rows: List[Row]) -> List[Row]:
    out = []
    for row in rows:
        row = dict(row)
        if "time_s" in row:
            row["time"] = f"{row['time_s']:.3g} +/- {row.get('time_std_s', 0.0):.2g} s"
        out.append(row)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda[:N]")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for every measurement")
    parser.add_argument("--memory-mb", type=float, help="activation memory budget per chunk (MB; default: one "
                                                         "core's L2 cache on CPU, a quarter of free memory on CUDA)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow to compile on CPU)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["networks", "atlas", "nisf", "motion"],
                        help="sections to skip")
    args = parser.parse_args(argv)

    from ..training.device import describe_device, select_device

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = select_device(args.device)
    budget_mb = args.memory_mb if args.memory_mb is not None else default_memory_budget_mb(device)
    started = time.perf_counter()
    repeats = 2 if args.quick else 3
    peaks = {"float32": matmul_gflops(device, torch.float32)}
    try:
        peaks["bfloat16"] = matmul_gflops(device, torch.bfloat16)
    except RuntimeError:
        peaks["bfloat16"] = 0.0
    print(f"scale benchmark on {describe_device(device)}, {machine_description()}, torch {torch.__version__}, "
          f"{args.threads} thread(s){', quick' if args.quick else ''}")
    print(f"measured matmul limit: float32 {peaks['float32']:.1f} GFLOP/s, bfloat16 {peaks['bfloat16']:.1f} GFLOP/s "
          "((4096x512)@(512x512), best of repeats)\n")
    rows: List[Row] = [{"section": "limit", "method": f"matmul {dtype}", "gflops": value} for dtype, value in peaks.items()]
    extra: Dict[str, object] = {}
    if "networks" not in args.skip:
        network_rows, sweep = bench_networks(device, args.quick, budget_mb, peaks,
                                             use_compile=not (args.quick or args.no_compile), repeats=repeats)
        print(format_table(network_rows, NETWORK_COLUMNS, title="Implicit networks: batched evaluation (no grad)"))
        print()
        print(format_table(sweep, SWEEP_COLUMNS, title=f"Chunk size (auto for a {budget_mb:g} MB activation budget)"))
        print()
        rows += network_rows + sweep
    if "atlas" not in args.skip:
        atlas_rows, info = bench_atlas(device, args.quick, repeats, budget_mb)
        extra.update(info)
        print(format_table(_with_time(atlas_rows), TASK_COLUMNS,
                           title=f"Atlas: fitting per subject and mesh extraction for a full cycle "
                                 f"(atlas trained {info['atlas_training_s']:.0f} s, {info['atlas_config']} sizes)"))
        print()
        rows += atlas_rows
    if "nisf" not in args.skip:
        nisf_rows = bench_nisf(device, args.quick, repeats, peaks["bfloat16"] > 0, budget_mb)
        print(format_table(_with_time(nisf_rows), TASK_COLUMNS, title="NISF++: 4D sampling of a full grid (labels)"))
        print()
        rows += nisf_rows
    if "motion" not in args.skip:
        try:
            motion_rows = bench_motion(device, args.quick, repeats, peaks["bfloat16"] > 0)
        except ImportError as error:  # the motion package is optional here
            motion_rows = [{"section": "motion inference", "method": "-", "note": f"unavailable: {error}"}]
        print(format_table(_with_time(motion_rows), TASK_COLUMNS, title="CardioMorphNet: motion inference per sequence"))
        print()
        rows += motion_rows
    wall = time.perf_counter() - started
    print(f"wall time {wall:.0f} s")
    if args.json:
        write_json(args.json, rows, {"quick": args.quick, "threads": args.threads, "device": str(device),
                                     "memory_mb": budget_mb, "seed": args.seed, "wall_s": wall, **extra},
                   machine=machine_description())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
