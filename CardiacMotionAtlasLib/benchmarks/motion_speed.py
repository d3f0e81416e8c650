"""CardioMorphNet estimate time of a UK Biobank-sized study, the previous and the new default side by side
in one run.

    python -m CardiacMotionAtlasLib.benchmarks.motion_speed [--threads 1] [--model PATH] [--frames 50]
        [--pixel-mm 1.8] [--matrix 144] [--sax 10] [--variants new,previous] [--json PATH]

The study: one phantom heart imaged like UK Biobank (SAX only, ``--sax`` slices of 8 mm every 10 mm,
``--frames`` frames, ``--pixel-mm`` pixels, ``--matrix`` x ``--matrix``: 50 frames, 1.8 mm, 144x144 by
default), labels at ED and ES only. The model: ``--model`` (a trained checkpoint, applied with
``check_grid=False`` since the time does not depend on the grid it was trained at), else
:meth:`~..motion.MotionConfig.tiny` trained briefly on the study itself (the weights do not change the
work done). Each variant is one :func:`~..motion.estimate_motion` call (posterior samples and
trajectory as the model's config says): ``new`` (the default), ``previous`` (the session 9 default: the
svf fit's weights per voxel of the network's grid, ``svf_regularisation="network"``) and optionally
``chain`` (the refined frame-to-frame chain, the session 6 default). Printed: seconds per estimate, the
process's peak resident memory after it (GiB), and the LVEF / LVESV each gives (the same study, so the
variants can be compared).
"""

from __future__ import annotations

import resource
import sys
import time
from typing import Dict, List

import torch

from ..motion import MotionConfig, estimate_motion, load_motion, sequence_from_study, train_motion
from ..phantom.cmr import CMRConfig, simulate_cine
from ..phantom.heart import PhantomHeart
from ..training import describe_device, select_device
from .common import benchmark_parser, format_table, machine_description, write_json

VARIANTS = {"new": {}, "previous": dict(svf_regularisation="network"), "chain": dict(trajectory="chain")}
LABELS = {"new": "CardioMorphNet, svf trajectory, fit weights in mm (new default)",
          "previous": "CardioMorphNet, svf trajectory, fit weights per voxel (session 9 default)",
          "chain": "CardioMorphNet, refined frame-to-frame chain (session 6 default)"}


def _log(message: str) -> None:
    print(f"[motion speed {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ukbb_sequence(frames: int, pixel_mm: float, matrix: int, sax: int, seed: int):
    """A UK Biobank-sized SAX cine of one phantom heart as a motion sequence (labels at ED and ES)."""
    heart = PhantomHeart.from_seed(seed, 0)
    config = CMRConfig(n_frames=frames, pixel_mm=pixel_mm, matrix=matrix, min_sax=sax, max_sax=sax, lax_views=(),
                       misalignment_mm=0.0, misalignment_deg=0.0)
    return sequence_from_study(simulate_cine(heart, config, seed=seed).study, ed_es_only=True)


def peak_rss_gib() -> float:
    """The process's peak resident memory so far (GiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def time_variants(trained, sequence, names: List[str]) -> List[Dict]:
    """One estimate per variant name of :data:`VARIANTS`: ``[{method, seconds, peak_rss_gib, LVEF, LVESV}]``."""
    rows = []
    for name in names:
        _log(f"estimating with {name}")
        t0 = time.perf_counter()
        estimate = estimate_motion(trained, sequence, check_grid=False, **VARIANTS[name])
        seconds = time.perf_counter() - t0
        rows.append({"method": LABELS[name], "seconds": seconds, "peak_rss_gib": peak_rss_gib(),
                     "LVEF": float(estimate.indices["LVEF"]), "LVESV": float(estimate.indices["LVESV"])})
    return rows


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="a trained CardioMorphNet checkpoint (else a tiny one)")
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--pixel-mm", type=float, default=1.8)
    parser.add_argument("--matrix", type=int, default=144)
    parser.add_argument("--sax", type=int, default=10)
    parser.add_argument("--variants", default="new,previous", help=f"comma-separated subset of {','.join(VARIANTS)}")
    args = parser.parse_args(argv)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    torch.set_num_threads(max(args.threads, 1))
    device = select_device(args.device)
    start = time.perf_counter()
    sequence = ukbb_sequence(args.frames, args.pixel_mm, args.matrix, args.sax, args.seed)
    _log(f"study: {sequence.n_frames} frames, {sequence.shape_zyx} voxels, {float(sequence.spacing[0]):.2f} mm pixels")
    if args.model:
        trained = load_motion(args.model, device)
    else:
        trained = train_motion([sequence], MotionConfig.tiny().with_changes(seg_steps=2, steps=2), device=device,
                               calibrate=False)
    rows = time_variants(trained, sequence, names)
    total_s = time.perf_counter() - start
    print(f"machine: {machine_description()}; device: {describe_device(device)}, {torch.get_num_threads()} thread(s); "
          f"study {sequence.n_frames} frames, {float(sequence.spacing[0]):.2f} mm pixels, {sequence.shape_zyx} (z, y, x); "
          f"model {args.model or 'tiny (untrained weights)'}; total {total_s:.0f} s")
    print(format_table([{k: (f"{v:.2f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows],
                       ["method", "seconds", "peak_rss_gib", "LVEF", "LVESV"],
                       title="CardioMorphNet estimate of a UK Biobank-sized study: seconds per estimate, peak "
                             "resident memory (GiB, the process so far), LVEF (%) and LVESV (ml)"))
    if args.json:
        write_json(args.json, rows, {"frames": args.frames, "pixel_mm": args.pixel_mm, "matrix": args.matrix,
                                     "sax": args.sax, "model": args.model, "threads": torch.get_num_threads(),
                                     "machine": machine_description(), "total_s": total_s})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
