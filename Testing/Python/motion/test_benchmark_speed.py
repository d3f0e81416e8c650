"""The UK Biobank-sized timing benchmark (benchmarks.motion_speed), at a tiny size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from CardiacMotionAtlasLib.benchmarks import motion_speed


def test_speed_benchmark_times_each_variant_on_one_study(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert motion_speed.main(["--frames", "6", "--pixel-mm", "4", "--matrix", "32", "--sax", "4",
                              "--variants", "new,previous", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["method"] for r in rows] == [motion_speed.LABELS["new"], motion_speed.LABELS["previous"]]
    for row in rows:
        assert row["seconds"] > 0 and row["peak_rss_gib"] > 0
        assert 0 < row["LVEF"] < 100 and np.isfinite(row["LVESV"])
    printed = capsys.readouterr().out
    assert "6 frames" in printed and "4.00 mm pixels" in printed and "seconds" in printed


def test_speed_benchmark_refuses_an_unknown_variant():
    with pytest.raises(SystemExit):
        motion_speed.main(["--variants", "new,fast"])
