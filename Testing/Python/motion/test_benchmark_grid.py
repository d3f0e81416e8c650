"""The motion benchmarks' SAX grid options (--pixel-mm / --frames / --matrix)."""

from __future__ import annotations

import torch

from CardiacMotionAtlasLib.benchmarks.common import add_family_arguments, benchmark_parser
from CardiacMotionAtlasLib.benchmarks.motion import acquisition_ranges, add_grid_arguments, configs


def _args(argv):
    parser = benchmark_parser("grid")
    add_grid_arguments(parser)
    add_family_arguments(parser)
    args = parser.parse_args(argv)
    args.large, args.steps = False, None
    return args


def test_default_grid_is_unchanged_and_a_finer_one_keeps_the_field_of_view():
    cmr, _ = configs(_args(["--quick"]), torch.device("cpu"))
    assert (cmr.pixel_mm, cmr.n_frames, cmr.matrix) == (4.0, 10, 32)
    fine, _ = configs(_args(["--quick", "--pixel-mm", "2.5", "--frames", "20"]), torch.device("cpu"))
    assert (fine.pixel_mm, fine.n_frames, fine.matrix) == (2.5, 20, 51)
    ranges = acquisition_ranges(fine)
    assert ranges.pixel_mm == (2.5, 2.5) and ranges.max_matrix == 51
    explicit, _ = configs(_args(["--pixel-mm", "2.0", "--matrix", "48"]), torch.device("cpu"))
    assert explicit.matrix == 48
