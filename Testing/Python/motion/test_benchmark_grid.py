"""The motion benchmarks' SAX grid options (--pixel-mm / --frames / --matrix / --train-frames)."""

from __future__ import annotations

import torch

from CardiacMotionAtlasLib.benchmarks.common import add_family_arguments, benchmark_parser
from CardiacMotionAtlasLib.benchmarks.motion import acquisition_ranges, add_grid_arguments, configs
from CardiacMotionAtlasLib.motion import MotionConfig


def _args(argv):
    parser = benchmark_parser("grid")
    add_grid_arguments(parser)
    add_family_arguments(parser)
    args = parser.parse_args(argv)
    args.large, args.steps = False, None
    return args


def test_default_grid_is_the_issues_and_the_session_8_grid_stays_reachable():
    cmr, config = configs(_args(["--quick"]), torch.device("cpu"))
    assert (cmr.pixel_mm, cmr.n_frames, cmr.matrix) == (2.5, 20, 64)  # <= 2.5 mm, >= 20 frames, 160 mm
    session9, _ = configs(_args(["--quick", "--fov-mm", "128"]), torch.device("cpu"))
    assert session9.matrix == 51
    assert config.train_frames == MotionConfig().train_frames
    old, _ = configs(_args(["--quick", "--pixel-mm", "4", "--frames", "10", "--fov-mm", "128", "--train-frames", "0"]),
                     torch.device("cpu"))
    assert (old.pixel_mm, old.n_frames, old.matrix) == (4.0, 10, 32)
    ranges = acquisition_ranges(cmr)
    assert ranges.pixel_mm == (2.5, 2.5) and ranges.max_matrix == 64 and ranges.fov_mm == (160.0, 160.0)
    explicit, subset = configs(_args(["--pixel-mm", "2.0", "--matrix", "48", "--train-frames", "6"]), torch.device("cpu"))
    assert explicit.matrix == 48 and subset.train_frames == 6
