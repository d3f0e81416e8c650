"""Implicit networks, batched evaluation (section 2 of :mod:`.scale`): NDF template, warper and full ``F``,
the NISF++ MLP; FLOPs, fraction of the matmul rate, per-point loop baseline, bfloat16, ``torch.compile`` and
the chunk-size sweep around the automatic choice."""

from __future__ import annotations

import copy
import time
from typing import Dict, List, Tuple

import torch

from .scale_measure import (Row, activation_bytes_per_point, auto_chunk, count_flops, matmul_gflops, measure,
                            run_chunked)


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
        reference = run_chunked(lambda *x: fn(module, *x), inputs, chunk, out.clone())

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
        seconds, std, peak = measure(lambda: run_chunked(lambda *x: fn(module, *x), loop_inputs, 1, loop_out), device,
                                     repeats=2)
        baseline = row("per-point Python loop", seconds, std, peak, loop_n, "float32", chunk=1)
        rows.append(baseline)
        seconds, std, peak = measure(lambda: run_chunked(lambda *x: fn(module, *x), inputs, chunk, out), device, repeats)
        rows.append(row(f"batched, auto chunk", seconds, std, peak, n, "float32", chunk=chunk))
        fp32_rate = rows[-1]["points_per_s"]

        if peaks.get("bfloat16"):
            half = copy.deepcopy(module).to(torch.bfloat16)
            half_inputs = [x.to(torch.bfloat16) for x in inputs]
            out16 = torch.empty(out.shape, device=device, dtype=torch.bfloat16)
            try:
                seconds, std, peak = measure(lambda: run_chunked(lambda *x: fn(half, *x), half_inputs, chunk, out16),
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
                run_chunked(lambda *x: fn(compiled, *x), inputs, chunk, out)
                compile_s = time.perf_counter() - start
                seconds, std, peak = measure(lambda: run_chunked(lambda *x: fn(compiled, *x), inputs, chunk, out), device,
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
                seconds, _, peak = measure(lambda: run_chunked(lambda *x: fn(module, *x), inputs, size, out), device,
                                           repeats=2)
                sweep.append({"section": "chunk sweep", "case": name, "chunk": size, "auto": size == chunk,
                              "points_per_s": n / seconds, "peak_mb": peak,
                              "relative_to_auto": (n / seconds) / fp32_rate})
    return rows, sweep
