"""Regenerate the method screenshots in ``Resources/Screenshots/`` (offscreen, slicer-core + EGL, no Qt).

    python Resources/make_screenshots.py            # from results/demo/ when present (15 s), else tiny models
    python Resources/make_screenshots.py --results results/demo --out Resources/Screenshots
    python Resources/make_screenshots.py --tiny     # always tiny models (4.5 min measured on 2 shared CPU cores)

The method output folders are found under ``--results`` by their files (atlas fit, NISF++, CardioMorphNet,
CT synthesis: see ``CardiacMotionAtlasLib.mrml.render_method_scenes``); a method without one there is run
with tiny models through the Slicer module's Logic. Each folder is loaded with the module's loaders and
rendered as the module shows it (``atlas_ED/ES``, ``motion_dvf_glyphs``, ``motion_uncertainty_mesh``,
``motion_uncertainty_slice``, ``nisf_segmentation_slice``, ``synth_flow_slice``, ``<method>_volume_curve``),
every picture checked (not empty, heart in view, colours where the scalars are) before it is kept: the
PNG files are written into a temporary folder and moved into ``--out`` only when every check passed.
The phantom-subject screenshots (``overview``, ``mesh_ED/ES``, ...) come from
``python -m CardiacMotionAtlasLib.mrml.render_phantom Resources/Screenshots --realistic``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results" / "demo",
                        help="main-job output tree to take the method outputs from (default: results/demo)")
    parser.add_argument("--out", type=Path, default=ROOT / "Resources" / "Screenshots")
    parser.add_argument("--tiny", action="store_true", help="ignore --results: tiny models for every method")
    parser.add_argument("--size", type=int, nargs=2, default=(480, 400), metavar=("WIDTH", "HEIGHT"))
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(ROOT))
    from CardiacMotionAtlasLib.mrml.render import offscreen_rendering_problem
    from CardiacMotionAtlasLib.mrml.render_method_scenes import (METHODS, find_method_outputs, render_method_folders,
                                                                 tiny_method_outputs)

    problem = offscreen_rendering_problem()
    if problem is not None:
        print(f"make_screenshots: {problem}", file=sys.stderr)
        return 2
    found = {} if args.tiny or not args.results.is_dir() else find_method_outputs(args.results)
    for method, folder in found.items():
        print(f"{method}: {folder}")
    with tempfile.TemporaryDirectory(prefix="screenshots-") as work:
        work = Path(work)
        missing = [m for m in METHODS if m not in found]
        if missing:
            print(f"tiny models for: {', '.join(missing)}")
            found.update(tiny_method_outputs(work / "tiny", missing))
        staging = work / "png"
        numbers = render_method_folders(found, staging, study_root=None if args.tiny else args.results,
                                        size=args.size)
        args.out.mkdir(parents=True, exist_ok=True)
        for png in sorted(staging.glob("*.png")):
            target = args.out / png.name
            shutil.copyfile(png, target.with_suffix(".png.tmp"))
            os.replace(target.with_suffix(".png.tmp"), target)
            print(f"wrote {target}")
    for method, values in numbers.items():
        print(method + ": " + ", ".join(f"{k} {v:.3g}" for k, v in values.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
