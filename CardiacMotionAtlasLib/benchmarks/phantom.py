"""Phantom plausibility report and simulator speed.

    python -m CardiacMotionAtlasLib.benchmarks.phantom [--subjects N] [--family F] [--quick] [--json PATH]

``--family``: one phantom family (``ellipsoidal``, ``lofted``, ``mixed``) or ``all`` (default: every
family of :data:`~..phantom.families.FAMILY_NAMES`, one set of tables each).

Table 1: per subject, volumes, EF, LV mass, wall thickening, longitudinal shortening, base descent,
torsion, endocardial inward motion, myocardial volume drift and the ED-ES myocardium chamfer distance,
all *measured* from the phantom's material points and meshes, with the expected adult ranges beside.
Table 2: label-map volumes (sampled at 1.5 mm) against the analytic volumes.
Table 3: wall time of one realistic CMR study (SAX stack + 3 LAX, 50 frames) and one CT phase pair
at 1.5 mm, against the naive evaluation (every frame re-evaluates the static surroundings) in the same run.
"""

from __future__ import annotations

import time
from typing import Dict, List

import numpy as np

from ..phantom.cmr import CMRConfig, simulate_cine
from ..phantom.ct import CTConfig, ct_grid, simulate_ct
from ..phantom.families import FAMILY_CHOICES, FAMILY_NAMES, make_heart
from ..phantom.heart import PhantomHeart
from ..phantom.plausibility import NORMAL_RANGES, plausibility_rows
from .common import benchmark_parser, format_table, machine_description, mean_std, write_json

PLAUSIBILITY_COLUMNS = ["subject", "kind"] + list(NORMAL_RANGES) + ["ed_es_chamfer_mm", "out_of_range"]


def label_volume_rows(hearts: List[PhantomHeart], spacing_mm: float) -> List[Dict]:
    rows = []
    for heart in hearts:
        matrix, shape = heart.bounding_grid(spacing_mm)
        voxel_ml = spacing_mm**3 / 1000.0
        truth = heart.clinical_indices()
        row = {"subject": heart.subject_id}
        for phase_name, phase, lv_key, rv_key in (("ED", 0.0, "LVEDV", "RVEDV"), ("ES", heart.es_phase, "LVESV", "RVESV")):
            labels = heart.label_volume(matrix, shape, phase)
            row[f"LV_{phase_name}_err_pct"] = 100 * ((labels == 1).sum() * voxel_ml / truth[lv_key] - 1)
            row[f"RV_{phase_name}_err_pct"] = 100 * ((labels == 3).sum() * voxel_ml / truth[rv_key] - 1)
            row[f"myo_{phase_name}_err_pct"] = 100 * ((labels == 2).sum() * voxel_ml * 1.05 / truth["LVM"] - 1)
        rows.append(row)
    return rows


def _naive_ct_tissue(heart: PhantomHeart, phases, config: CTConfig) -> List[np.ndarray]:
    """Baseline: pull every voxel back through the motion law at every phase (no culling of the
    voxels that cannot hold heart tissue, no reuse of the static surroundings)."""
    from ..geometry.affine import apply_affine

    matrix, shape = ct_grid(heart, config)
    nz, ny, nx = shape
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    points = apply_affine(matrix, np.stack([i, j, k], -1).reshape(-1, 3).astype(float))
    return [heart.tissue_near(points, phase, heart.tissue_background(points)).reshape(shape) for phase in phases]


def speed_rows(heart: PhantomHeart, quick: bool) -> List[Dict]:
    cmr = CMRConfig(n_frames=25 if quick else 50, min_sax=13)  # the issue's realistic study: 13 SAX + 3 LAX
    ct = CTConfig()
    rows = []
    start = time.perf_counter()
    sim = simulate_cine(heart, cmr)
    cmr_s = time.perf_counter() - start
    n_sax = len(sim.study.sax)
    rows.append({"task": f"CMR study ({n_sax} SAX + {len(sim.study.lax)} LAX, {cmr.n_frames} frames, {cmr.matrix}^2)",
                 "seconds": cmr_s, "baseline_s": None, "speed-up": None})
    phases = [heart.es_phase, 0.0]
    start = time.perf_counter()
    simulated = simulate_ct(heart, phases, ct)
    ct_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = _naive_ct_tissue(heart, phases, ct)
    naive_s = time.perf_counter() - start
    from ..phantom.tissues import LABEL_OF_TISSUE

    identical = all(np.array_equal(LABEL_OF_TISSUE[t], simulated.labels.array[f]) for f, t in enumerate(naive))
    rows.append({"task": f"CT ES+ED pair, {ct.voxel_mm} mm, {int(ct.fov_mm / ct.voxel_mm)}^3"
                         f" (labels identical to baseline: {identical})",
                 "seconds": ct_s, "baseline_s": naive_s, "speed-up": naive_s / ct_s})
    start = time.perf_counter()
    matrix, shape = ct_grid(heart, ct)
    heart.displacement_field(matrix, shape, heart.es_phase, 0.0)
    rows.append({"task": "exact ES->ED flow on the CT grid", "seconds": time.perf_counter() - start,
                 "baseline_s": None, "speed-up": None})
    return rows


def family_hearts(family: str, seed: int, n: int) -> List:
    """``n`` hearts of ``family``; the last ones forced to each abnormal phenotype (shown at least once)."""
    kinds = [None] * n
    for index, kind in enumerate(("reduced_ef", "hypertrophy", "dilated")):
        if n > 3 + index:
            kinds[n - 1 - index] = kind
    return [make_heart(family, seed, i, kinds[i]) for i in range(n)]


def family_report(family: str, args, n: int) -> Dict:
    """Print the three tables for one family; returns their rows."""
    hearts = family_hearts(family, args.seed, n)
    rows = plausibility_rows(hearts)
    print(format_table(rows, PLAUSIBILITY_COLUMNS,
                       title=f"Phantom plausibility, family {family} (measured from material points and meshes)"))
    print("normal ranges (phantom.plausibility; abnormal phenotypes have their own): "
          + "; ".join(f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in NORMAL_RANGES.items()))
    outside = [f"{r['subject']} ({r['out_of_range']})" for r in rows if r["out_of_range"]]
    print(f"in range for their phenotype: {len(rows) - len(outside)}/{len(rows)}" + (f"; outside: {', '.join(outside)}" if outside else ""))
    normals = [r for r in rows if r["kind"] == "normal"]
    if normals:
        print("normal subjects: " + "; ".join(f"{k} {mean_std([r[k] for r in normals])}" for k in NORMAL_RANGES))
    label_rows = label_volume_rows(hearts[: 2 if args.quick else 4], 1.5)
    print()
    print(format_table(label_rows, title=f"Label-map volumes at 1.5 mm vs analytic volumes (% error), family {family}"))
    print()
    speed = speed_rows(hearts[0], args.quick)
    print(format_table(speed, title=f"Simulator speed, family {family} ({hearts[0].subject_id}; wall time, s; CT "
                                    "baseline = every voxel pulled back through the motion law, labels only)"))
    print()
    for row in label_rows + speed:
        row["family"] = family
    return {"rows": rows, "label_volumes": label_rows, "speed": speed}


def main(argv=None) -> int:
    parser = benchmark_parser(__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=None, help="subjects per family (default 10, quick 4)")
    parser.add_argument("--family", choices=FAMILY_CHOICES + ("all",), default="all",
                        help="phantom family (default all: each of " + ", ".join(FAMILY_NAMES) + ")")
    args = parser.parse_args(argv)
    n = args.subjects or (4 if args.quick else 10)
    families = list(FAMILY_NAMES) if args.family == "all" else [args.family]
    print(f"machine: {machine_description()}; families: {', '.join(families)}; {n} subjects each, seed {args.seed}")
    print()
    reports = {family: family_report(family, args, n) for family in families}
    expected = {"subject": "expected (normal)", "kind": "", **{k: f"{lo:g}-{hi:g}" for k, (lo, hi) in NORMAL_RANGES.items()}}
    if args.json:
        write_json(args.json, sum((r["rows"] for r in reports.values()), []),
                   {"subjects": n, "seed": args.seed, "quick": args.quick, "families": families,
                    "machine": machine_description()},
                   expected=expected, label_volumes=sum((r["label_volumes"] for r in reports.values()), []),
                   speed=sum((r["speed"] for r in reports.values()), []))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
