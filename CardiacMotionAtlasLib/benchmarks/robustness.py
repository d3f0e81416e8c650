"""Robustness of the readers (issue 19): valid, broken and hostile inputs per reader, each read in a worker
process with a per-input timeout and peak-memory probe.

``python -m CardiacMotionAtlasLib.benchmarks.robustness [--quick] [--json PATH] [--baseline REV]``

Per reader (NIfTI, NRRD, MetaImage, DICOM cine folders, study folders, VTP/PLY/VTK/STL meshes) it prints
the inputs tried, refusals (library errors), reads, correct reads (valid inputs read back equal to what
was written), silent accepts (named bad inputs read without an error), crashes (any non-library
exception, or a dead worker), hangs (no answer within ``--timeout`` s: the worker is killed) and the
peak resident memory (MB, Linux ``VmHWM`` reset before every input). Inputs are the named cases of
issue 19 (rows 1-7 and ``info /dev/null``), valid controls, and random mutations (truncation, bit
flips, overwrites, header values; a DICOM folder's files deleted, cut or of another subject).

The baseline is the same inputs read by the library of another revision (``--baseline``, default the
tree before issue 19; ``none`` skips it), extracted with ``git archive`` into a temporary folder.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .common import benchmark_parser, format_table, machine_description, write_json
from . import robustness_cases as cases_mod

HIGH_MEMORY_MB = 400.0
"""A named case's verdict shows its peak memory above this (the worker's imports take about 230 MB)."""
DEFAULT_BASELINE = "49bc8f5"
"""The last revision before issue 19's reader checks."""

WORKER = r'''
import inspect, json, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError

def peak_mb():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass

def reader(kind):
    if kind == "nifti":
        from CardiacMotionAtlasLib.io.nifti import read_nifti
        return read_nifti
    if kind in ("nrrd", "metaimage"):
        from CardiacMotionAtlasLib.io.itk_images import read_itk_image
        return read_itk_image
    if kind == "dicom":
        from CardiacMotionAtlasLib.io.dicom import read_dicom_cine
        return read_dicom_cine
    if kind == "study":
        from CardiacMotionAtlasLib.io.layouts import read_study
        return read_study
    from CardiacMotionAtlasLib.io.meshes import read_mesh
    return read_mesh

def correct(result, reference):
    if not reference:
        return None
    if "npy" in reference:
        expected = np.load(reference["npy"])
        got = result.vertices[0] if reference.get("mesh") else result.array
        return bool(got.shape == expected.shape and np.allclose(got, expected, atol=1e-3))
    ok = len(result.slices) == reference["n_slices"] and result.n_frames == reference["n_frames"]
    if "dropped" in reference:
        ok = ok and len(result.metadata.get("dropped", [])) == reference["dropped"]
    return bool(ok)

print(json.dumps({"ready": True, "peak_mb": peak_mb()}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    function = reader(job["reader"])
    accepted = inspect.signature(function).parameters
    kwargs = {k: v for k, v in job["kwargs"].items() if k in accepted}
    reset_peak()
    answer = {"outcome": "read", "message": "", "correct": None}
    try:
        answer["correct"] = correct(function(job["path"], **kwargs), job["reference"])
    except CardiacMotionAtlasError as error:
        answer.update(outcome="refused", message=str(error)[:400])
    except BaseException as error:
        answer.update(outcome="crash", message=(type(error).__name__ + ": " + str(error))[:400])
    answer["peak_mb"] = peak_mb()
    print(json.dumps(answer), flush=True)
'''


@dataclass
class Worker:
    """A reader process for one library tree, restarted after a hang or a death."""

    lib_root: str
    script: str
    process: Optional[subprocess.Popen] = None
    baseline_mb: float = 0.0

    def start(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        self.process = subprocess.Popen([sys.executable, self.script, self.lib_root], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        line = self._line(120.0)
        self.baseline_mb = json.loads(line)["peak_mb"] if line else float("nan")

    def _line(self, timeout: float) -> Optional[str]:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        return self.process.stdout.readline() if ready else None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait()
        self.process = None

    def run(self, case: "cases_mod.Case", timeout: float) -> Dict:
        if self.process is None or self.process.poll() is not None:
            self.start()
        job = {"reader": case.reader, "path": str(case.path), "kwargs": case.kwargs, "reference": case.reference}
        started = time.perf_counter()
        try:
            self.process.stdin.write(json.dumps(job) + "\n")
            self.process.stdin.flush()
            line = self._line(timeout)
        except (BrokenPipeError, OSError):
            line = ""
        if line is None:
            self.stop()
            return {"outcome": "hang", "message": f"no answer in {timeout:g} s", "correct": None, "peak_mb": None}
        if not line:
            try:
                code = self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                code = None
            self.stop()
            return {"outcome": "crash", "message": f"worker died (exit {code})", "correct": None, "peak_mb": None}
        answer = json.loads(line)
        answer["seconds"] = time.perf_counter() - started
        return answer


@dataclass
class Tally:
    inputs: int = 0
    refused: int = 0
    read: int = 0
    correct: int = 0
    silent: int = 0
    unnamed: int = 0
    crashes: int = 0
    hangs: int = 0
    peak_mb: float = 0.0
    problems: List[str] = field(default_factory=list)

    def add(self, case: "cases_mod.Case", answer: Dict) -> None:
        self.inputs += 1
        outcome = answer["outcome"]
        self.refused += outcome == "refused"
        self.read += outcome == "read"
        self.correct += bool(answer.get("correct"))
        self.crashes += outcome == "crash"
        self.hangs += outcome == "hang"
        if case.expect == "refuse" and outcome == "read":
            self.silent += 1
        if outcome == "refused" and case.names and not any(n in answer["message"] for n in case.names):
            self.unnamed += 1
        if answer.get("peak_mb") is not None:
            self.peak_mb = max(self.peak_mb, float(answer["peak_mb"]))
        if outcome in ("crash", "hang"):
            self.problems.append(f"{case.label}: {answer['message'][:160]}")


def verdict(case: "cases_mod.Case", answer: Dict) -> str:
    """One word for a named case: refused (naming the file or not), read (correct or not), crash, hang."""
    outcome = answer["outcome"]
    peak = answer.get("peak_mb")
    memory = f", {peak:.0f} MB peak" if peak is not None and peak > HIGH_MEMORY_MB else ""
    if outcome == "refused":
        named = not case.names or any(n in answer["message"] for n in case.names)
        return "refused" + ("" if named else " (file not named)") + memory
    if outcome == "read":
        return "read" + {True: " (correct)", False: " (WRONG)", None: ""}[answer.get("correct")] + memory
    return outcome


def extract_tree(revision: str, into: Path) -> Optional[Path]:
    """``CardiacMotionAtlasLib`` of ``revision`` (git archive) under ``into``; None if git cannot."""
    repo = Path(__file__).resolve().parents[2]
    try:
        data = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", revision, "CardiacMotionAtlasLib"],
                              capture_output=True, check=True, timeout=120).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    archive = into / "baseline.tar"
    archive.write_bytes(data)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree"


def run_version(lib_root: Path, cases: List["cases_mod.Case"], script: str, timeout: float) -> List[Dict]:
    worker = Worker(str(lib_root), script)
    try:
        return [worker.run(case, timeout) for case in cases]
    finally:
        worker.stop()


def main(argv: Optional[List[str]] = None) -> int:
    parser = benchmark_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE,
                        help=f"git revision whose readers are the baseline (default {DEFAULT_BASELINE}; 'none')")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per input before it counts as a hang")
    parser.add_argument("--fuzz", type=int, default=None, help="random mutations per reader (quick 20, else 150)")
    args = parser.parse_args(argv)
    n_fuzz = args.fuzz if args.fuzz is not None else (20 if args.quick else 150)
    timeout = args.timeout or (10.0 if args.quick else 30.0)
    work = Path(tempfile.mkdtemp(prefix="cma_robustness_"))
    try:
        started = time.perf_counter()
        cases = cases_mod.build_cases(work / "inputs", np.random.default_rng(args.seed), n_fuzz)
        script = work / "worker.py"
        script.write_text(WORKER)
        versions = [("this tree", Path(__file__).resolve().parents[2])]
        if args.baseline.lower() != "none":
            tree = extract_tree(args.baseline, work)
            if tree is None:
                print(f"baseline {args.baseline}: git archive failed, baseline skipped")
            else:
                versions.insert(0, (f"io @ {args.baseline}", tree))
        answers = {name: run_version(root, cases, str(script), timeout) for name, root in versions}
        rows, problems = [], {}
        for reader in cases_mod.READERS:
            for name, _ in versions:
                tally = Tally()
                for case, answer in zip(cases, answers[name]):
                    if case.reader == reader:
                        tally.add(case, answer)
                if tally.inputs:
                    rows.append({"method": name, "reader": reader, "inputs": tally.inputs, "refused": tally.refused,
                                 "read": tally.read, "correct_reads": tally.correct, "silent_accepts": tally.silent,
                                 "unnamed_refusals": tally.unnamed, "crashes": tally.crashes, "hangs": tally.hangs,
                                 "peak_mb": round(tally.peak_mb, 1)})
                    problems.setdefault(name, []).extend(tally.problems)
        named = [{"case": case.label, "reader": case.reader, "expected": case.expect,
                  **{name: verdict(case, answers[name][i]) for name, _ in versions}}
                 for i, case in enumerate(cases) if case.named]
        columns = ["reader", "method", "inputs", "refused", "read", "correct_reads", "silent_accepts",
                   "unnamed_refusals", "crashes", "hangs", "peak_mb"]
        print(format_table(rows, columns, title=f"Reader robustness ({machine_description()}; {n_fuzz} mutations per "
                                                f"reader, {timeout:g} s per input)"))
        print()
        print(format_table(named, ["case", "reader", "expected"] + [n for n, _ in versions], title="Named cases"))
        for name, items in problems.items():
            for item in items[:12]:
                print(f"  {name}: {item}")
        elapsed = time.perf_counter() - started
        print(f"\n{len(cases)} inputs per version, {elapsed:.0f} s")
        if args.json:
            write_json(args.json, rows, {"quick": args.quick, "seed": args.seed, "fuzz_per_reader": n_fuzz,
                                         "timeout_s": timeout, "baseline": args.baseline,
                                         "machine": machine_description(), "seconds": elapsed},
                       named_cases=named, problems=problems)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
