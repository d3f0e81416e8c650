"""The reader-robustness benchmark: its worker harness counts hangs and crashes honestly, and on this tree
every named case of issue 19 ends as expected with no crash, hang or silent accept."""

import json
import textwrap

import pytest

from CardiacMotionAtlasLib.benchmarks.robustness import WORKER, Tally, Worker, main, verdict
from CardiacMotionAtlasLib.benchmarks.robustness_cases import READERS, Case


def _fake_library(root, body):
    """A library tree whose ``read_nifti`` runs ``body`` (to exercise the harness)."""
    package = root / "CardiacMotionAtlasLib"
    (package / "io").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "io" / "__init__.py").write_text("")
    (package / "errors.py").write_text("class CardiacMotionAtlasError(Exception):\n    pass\n")
    (package / "io" / "nifti.py").write_text(
        "import os, time\nfrom ..errors import CardiacMotionAtlasError\n\n"
        f"def read_nifti(path):\n{textwrap.indent(body, '    ')}\n")
    script = root / "worker.py"
    script.write_text(WORKER)
    return Worker(str(root), str(script))


@pytest.mark.parametrize("body, outcome, message", [
    ("time.sleep(60)", "hang", "no answer in 3 s"),
    ("raise ValueError('boom')", "crash", "ValueError: boom"),
    ("os._exit(3)", "crash", "worker died (exit 3)"),
    ("raise CardiacMotionAtlasError(path + ': bad')", "refused", "x.nii: bad"),
])
def test_worker_reports_hangs_crashes_and_refusals(tmp_path, body, outcome, message):
    worker = _fake_library(tmp_path, body)
    case = Case("nifti", "probe", tmp_path / "x.nii", "refuse", [str(tmp_path / "x.nii")])
    try:
        answer = worker.run(case, timeout=3.0)
        assert answer["outcome"] == outcome
        assert message in answer["message"]
        if outcome == "hang":  # the hung worker was killed; the next input gets a fresh one
            assert worker.process is None
            assert worker.run(case, timeout=3.0)["outcome"] == "hang"
    finally:
        worker.stop()


def test_tally_and_verdict_classify_answers():
    bad = Case("nifti", "bad", "b.nii", "refuse", ["b.nii"])
    tally = Tally()
    tally.add(bad, {"outcome": "read", "message": "", "correct": None, "peak_mb": 300.0})
    tally.add(bad, {"outcome": "refused", "message": "other.nii: broken", "correct": None, "peak_mb": 900.0})
    tally.add(bad, {"outcome": "hang", "message": "no answer", "correct": None, "peak_mb": None})
    assert (tally.inputs, tally.silent, tally.unnamed, tally.hangs, tally.peak_mb) == (3, 1, 1, 1, 900.0)
    assert verdict(bad, {"outcome": "refused", "message": "b.nii: x", "peak_mb": 1245.0}) == "refused, 1245 MB peak"
    assert verdict(bad, {"outcome": "refused", "message": "c.nii: x", "peak_mb": 200.0}) == "refused (file not named)"


def test_quick_benchmark_on_this_tree_meets_every_named_expectation(tmp_path, capsys):
    out = tmp_path / "robustness.json"
    assert main(["--quick", "--baseline", "none", "--fuzz", "3", "--timeout", "60", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {row["reader"]: row for row in result["rows"]}
    assert set(rows) == set(READERS)
    for row in rows.values():
        assert row["crashes"] == 0 and row["hangs"] == 0 and row["silent_accepts"] == 0, row
        assert row["unnamed_refusals"] == 0, row
        assert row["peak_mb"] < 500, row
    for case in result["named_cases"]:
        expected = "refused" if case["expected"] == "refuse" else "read (correct)"
        assert case["this tree"] == expected, case
    labels = {case["case"] for case in result["named_cases"]}
    assert {"row 1: one slice's frames truncated", "row 2: two patients in one folder", "row 5: data file is a FIFO",
            "row 6: 1 MB .nii.gz declaring 1 GiB", "info /dev/null"} <= labels
    assert "Named cases" in capsys.readouterr().out
