"""The ``motion`` (CardioMorphNet) and ``synth`` (CT flow CVAE) pipelines end to end on a Dask cluster of
threads, with untrained / barely trained tiny models (the plumbing, not the accuracy, is under test)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from CardiacMotionAtlasLib.batch import ManifestEntry, read_record, run_batch
from CardiacMotionAtlasLib.batch.completion import SUBJECTS_DIR


@pytest.fixture(scope="module")
def ct_subject(tmp_path_factory):
    """One phantom subject with cine CMR and CT frames."""
    from CardiacMotionAtlasLib.phantom.cohort import CohortConfig, write_cohort

    torch.set_num_threads(1)
    return write_cohort(tmp_path_factory.mktemp("ct_cohort"), CohortConfig.tiny(1))[0]


def test_motion_pipeline(ct_subject, tmp_path):
    from CardiacMotionAtlasLib.io.layouts import read_study
    from CardiacMotionAtlasLib.motion import MotionConfig, sequence_from_study, train_motion

    model = tmp_path / "motion.pt"
    config = replace(MotionConfig.tiny(), steps=0, seg_steps=0)
    train_motion([sequence_from_study(read_study(ct_subject))], config, checkpoint_path=model, device="cpu")
    entries = [ManifestEntry("s1", ct_subject)]
    result = run_batch(entries, "motion", tmp_path / "out", processes=False,
                       options={"model": str(model), "samples": "2", "dvfs": "false"})
    assert result.count("done") == 1, [o.error for o in result.failed]
    results = result.outcomes[0].results
    assert results["LVEDV"] > 0 and results["displacement_std_mm"] >= 0
    folder = tmp_path / "out" / SUBJECTS_DIR / "s1"
    assert {"indices.json", "uncertainty.nii.gz", "warped_labels.nii.gz"} <= {p.name for p in folder.iterdir()}
    assert not (folder / "dvf").exists()  # dvfs=false
    assert json.loads((folder / "indices.json").read_text())["subject_id"]


def test_synth_pipeline(ct_subject, tmp_path):
    from CardiacMotionAtlasLib.phantom.cohort import CohortConfig, cohort_hearts
    from CardiacMotionAtlasLib.synthesis import SynthConfig, phantom_pairs, train_synthesis

    config = replace(SynthConfig.tiny(), estimator_steps=2, cvae_steps=2)
    train_synthesis(phantom_pairs(cohort_hearts(CohortConfig.tiny(1)), config), config, out_dir=tmp_path / "synth",
                    device="cpu")
    entries = [ManifestEntry("s1", ct_subject), ManifestEntry("no_ct", ct_subject, {"frame": "ct_missing.nii.gz"})]
    result = run_batch(entries, "synth", tmp_path / "out", processes=False,
                       options={"model": str(tmp_path / "synth" / "synth.pt"), "n": "2"})
    outcome = {o.subject: o for o in result.outcomes}
    assert outcome["s1"].status == "done" and outcome["s1"].results["pairs"] == 2, outcome["s1"].error
    # the phantom CT subject has labels beside its frame: each pair's implied LVEF is in the key results
    assert 0.0 <= outcome["s1"].results["implied_lvef_mean_pct"] <= 100.0
    assert outcome["no_ct"].status == "failed" and "ct_missing.nii.gz" in outcome["no_ct"].error
    record = read_record(tmp_path / "out", "s1")
    assert any(name.startswith("pair_001/") for name in record["files"])
