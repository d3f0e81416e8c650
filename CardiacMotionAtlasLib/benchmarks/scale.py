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

Modules: :mod:`.scale_measure` (timing, memory, FLOPs, chunk choice), :mod:`.scale_networks` (section 2),
:mod:`.scale_tasks` (sections 3-6); this one runs them and prints the tables.
"""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

import torch

from .common import benchmark_parser, format_table, machine_description, write_json
from .scale_measure import Row, default_memory_budget_mb, matmul_gflops
from .scale_networks import bench_networks
from .scale_tasks import bench_atlas, bench_motion, bench_nisf

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
