"""The cohort on disk, read back by the library's own readers, and the README's main job."""

import csv
import json

import numpy as np
import pytest

from CardiacMotionAtlasLib.cli.main import main
from CardiacMotionAtlasLib.io.displacement_io import read_displacement_field
from CardiacMotionAtlasLib.io.layouts import read_study
from CardiacMotionAtlasLib.io.meshes import read_mesh_sequence
from CardiacMotionAtlasLib.io.nifti import read_nifti
from CardiacMotionAtlasLib.phantom.cohort import SIDECAR, CohortConfig, cohort_hearts, write_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort")
    config = CohortConfig.tiny(1)
    folders = write_cohort(out, config)
    return config, folders[0], cohort_hearts(config)[0]


def test_study_reads_back_with_geometry(cohort):
    config, folder, heart = cohort
    study = read_study(folder)
    sidecar = json.loads((folder / SIDECAR).read_text())
    assert study.n_frames == config.cmr.n_frames and study.es_frame == sidecar["es_frame"]
    assert len(study.sax) == sum(1 for s in sidecar["slices"] if s["view"] == "SAX")
    for cine_slice, truth in zip(study.sax, [s for s in sidecar["slices"] if s["view"] == "SAX"]):
        assert np.allclose(cine_slice.image.ijk_to_ras, truth["nominal_ijk_to_ras"], atol=1e-3)
    assert {s.view for s in study.lax} == {"2CH", "3CH", "4CH"}


def test_ground_truth_files_match_the_model(cohort):
    config, folder, heart = cohort
    sidecar = json.loads((folder / SIDECAR).read_text())
    labels = read_nifti(folder / "ground_truth" / "labels_iso.nii.gz", labels=True)
    phase = sidecar["gt_phases"][1]
    expected = heart.label_volume(labels.ijk_to_ras, labels.shape_zyx, phase)
    assert np.array_equal(labels.array[1], expected)

    field = read_displacement_field(folder / "ground_truth" / "flow_ED_to_ES.nii.gz")
    shape = heart.shape
    eta = np.linspace(0.5, 1.6, 12)[:, None]
    phi = np.linspace(0, 2 * np.pi, 16, endpoint=False)[None]
    a, c = 0.5 * (shape.a_endo + shape.a_epi), 0.5 * (shape.c_endo + shape.c_epi)
    mid_wall = heart.to_ras(np.stack(np.broadcast_arrays(a * np.sin(eta) * np.cos(phi), a * np.sin(eta) * np.sin(phi),
                                                         c * np.cos(eta)), -1).reshape(-1, 3))
    carried = mid_wall + field.sample(mid_wall)
    truth = heart.positions(mid_wall, heart.es_phase)
    # 4 mm grid in the tiny cohort: trilinear interpolation error only (LPS<->RAS flip must be right)
    assert np.linalg.norm(carried - truth, axis=-1).mean() < 0.3
    assert np.linalg.norm(truth - mid_wall, axis=-1).mean() > 3.0

    meshes = read_mesh_sequence(sorted((folder / "ground_truth" / "meshes").glob("myocardium_*.vtp")))
    reference = heart.mesh_sequence("myocardium", sidecar["gt_phases"])
    assert np.array_equal(meshes.faces, reference.faces)
    assert np.abs(meshes.vertices - reference.vertices).max() < 1e-3


def test_cohort_is_resumable_and_leaves_no_partial_files(tmp_path):
    config = CohortConfig.tiny(2)
    config.ct = None
    folders = write_cohort(tmp_path, config)
    stamp = (folders[0] / SIDECAR).stat().st_mtime_ns
    (folders[1] / SIDECAR).unlink()  # as if interrupted before the subject finished
    write_cohort(tmp_path, config)
    assert (folders[0] / SIDECAR).stat().st_mtime_ns == stamp  # complete subject skipped
    assert (folders[1] / SIDECAR).exists()
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_main_job_writes_report_indices_and_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--tiny", "--subjects", "2", "--no-ct", "--acquisition", "fixed",
                 "--progress", "none", "--stages"]) == 0
    assert (out / "report.md").read_text().startswith("# CardiacMotionAtlas")
    assert (out / "volume_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader((out / "indices.csv").open()))
    # 2 subjects of the training family (the last held out in-family) + 1 of the unseen family
    assert [(r["subject"], r["family"], r["role"]) for r in rows] == [
        ("phantom000", "ellipsoidal", "train"), ("phantom001", "ellipsoidal", "in-family"),
        ("lofted002", "lofted", "cross-family")]
    for row in rows:
        # disk summation of the simulated SAX labels recovers the analytic EF within a few points
        assert abs(float(row["LVEF_sax_labels"]) - float(row["LVEF_truth"])) < 6
        assert abs(float(row["LVEDV_meshes"]) - float(row["LVEDV_truth"])) < 0.02 * float(row["LVEDV_truth"])
    assert "results written to" in capsys.readouterr().out


def test_cli_reports_bad_input_with_the_path(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["info", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def _report_section(report: str, heading: str) -> str:
    start = report.index(heading)
    end = report.find("\n## ", start + 1)
    return report[start:] if end < 0 else report[start:end]


def test_main_job_method_stages_write_held_out_subject_outputs(tmp_path):
    from CardiacMotionAtlasLib.registry import list_models, resolve_checkpoint

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--tiny", "--subjects", "3", "--no-ct", "--progress", "none",
                 "--device", "cpu"]) == 0
    train, held = ["phantom000", "phantom001"], ["phantom002", "lofted003"]
    cohort = out / "cohort"
    # the default main job: randomised acquisitions, ellipsoidal training, one lofted (unseen) subject
    for subject, family in zip(train + held, ["ellipsoidal"] * 3 + ["lofted"]):
        sidecar = json.loads((cohort / subject / SIDECAR).read_text())
        assert sidecar["family"] == family and sidecar["acquisition"]["mode"] == "randomised"

    report = (out / "report.md").read_text()
    summary_table = _report_section(report, "## Held-out subjects: in-family vs cross-family")
    assert "in-family phantom002 (ellipsoidal)" in summary_table
    assert "cross-family lofted003 (lofted)" in summary_table
    for method in ("NDF atlas", "NISF++", "CardioMorphNet", "CT motion CVAE"):
        assert method in summary_table
    # every stage's section: a row for each held-out subject (in-family and cross-family) and its baseline
    for heading, baseline in (("## NDF atlas", "static ED mesh (baseline)"),
                              ("## NISF++", "given SAX labels, nearest (baseline"),
                              ("## CardioMorphNet", "disk summation of SAX labels"),
                              ("## Generative CT motion", "zero flow (baseline)")):
        section = _report_section(report, heading)
        assert "phantom002 (in-family, ellipsoidal)" in section, heading
        assert "lofted003 (cross-family, lofted)" in section, heading
        assert baseline in section, heading
    summary = json.loads((out / "held_out_summary.json").read_text())
    assert summary["train_subjects"] == train and summary["held_out"] == held
    roles = {(r["method"], r["subject"], r["role"]) for r in summary["rows"]}
    for method in ("NDF atlas (ED alone)", "NISF++ (intensities only)", "CardioMorphNet", "CT motion CVAE"):
        assert (method, "phantom002", "in-family") in roles and (method, "lofted003", "cross-family") in roles
    assert all(np.isfinite(r["value"]) and np.isfinite(r["baseline_value"]) for r in summary["rows"])

    # no held-out subject was trained on, by any stage
    atlas_fit = json.loads((out / "atlas" / "atlas_fit.json").read_text())
    nisf_fit = json.loads((out / "nisf" / "nisf_reconstruction.json").read_text())
    motion = json.loads((out / "motion" / "summary.json").read_text())
    synth = json.loads((out / "synth" / "summary.json").read_text())
    assert atlas_fit["train_subject_ids"] == train and nisf_fit["train_subject_ids"] == train
    assert motion["train_subjects"] == train and synth["training_subjects"] == train
    for record in (atlas_fit, nisf_fit, synth):
        assert [h["subject"] for h in record["held_out"]] == held
    assert [h["subject_id"] for h in motion["held_out"]] == held
    models = list_models(out / "models.json")
    assert {m.method for m in models.values()} == {"atlas", "nisf", "motion", "synth"}
    for model in models.values():
        trained_on = model.source.split("acquisition: ")[1].split(")")[0].split(", ")
        assert trained_on == train and not set(held) & set(trained_on), model.source

    # motion: DVFs readable as displacement fields on each held-out subject's SAX grid, indices with bounds
    for entry in motion["held_out"]:
        assert entry["refine_steps"] == 0  # the study gives ED/ES labels: the svf trajectory, no chain refinement
        dvfs = sorted((out / "motion" / entry["subject_id"] / "dvf").glob("ed_to_frame*.nii.gz"))
        fields = [p for p in dvfs if "uncertainty" not in p.name]
        assert fields and np.isfinite(read_displacement_field(fields[-1]).vectors).all()
        low, high = entry["index_bounds95"]["LVEF"]
        assert np.isfinite([low, high, entry["indices"]["LVEF"]]).all() and low <= high
        assert np.isfinite(entry["disk_summation_indices"]["LVEF"])
    for subject in held:
        # atlas: a full cycle of meshes for the held-out subject, one shared vertex set and face list
        meshes = read_mesh_sequence(out / "atlas" / subject / "meshes")
        assert meshes.n_frames == 25 and np.isfinite(meshes.vertices).all()
        assert np.linalg.norm(meshes.vertices - meshes.vertices[:1], axis=-1).max() > 0.5  # it moves (mm)
        # NISF++: 4D labels on the subject's ground-truth grid and phases
        truth = read_nifti(cohort / subject / "ground_truth" / "labels_iso.nii.gz", labels=True)
        labels = read_nifti(out / "nisf" / subject / "labels.nii.gz", labels=True)
        assert labels.array.shape == truth.array.shape
        assert np.allclose(labels.ijk_to_ras, truth.ijk_to_ras, atol=1e-4)
        assert set(np.unique(labels.array)) <= {0, 1, 2, 3} and (labels.array == 2).any()
    assert atlas_fit["setting"] == "ed"
    assert nisf_fit["held_out"][0]["nisf"]["dice_LV"] > 0.5
    # the trained models are registered with their checksums
    assert resolve_checkpoint(out / "models.json", "phantom-atlas-tiny", "atlas") == (out / "atlas" / "atlas.pt")
    assert resolve_checkpoint(out / "models.json", "phantom-nisf-tiny", "nisf") == (out / "nisf" / "nisf.pt")
    # synth: annotated CT pairs of each held-out subject, flow and frames on one grid
    assert synth["held_out_subject"] == "phantom002"
    for entry in synth["held_out"]:
        assert len(entry["pairs"]) == 3
        for sample in entry["pairs"]:
            assert f"/pairs/{entry['subject']}/" in sample["folder"]
            generated = read_nifti(sample["files"]["generated"])
            assert sample["annotation_max_error_hu"] < 1e-2
            assert np.isfinite(generated.array).all() and generated.n_frames == 1


def test_main_job_cohort_design(tmp_path):
    """Which families train and which subject is held out cross-family (no simulation of the stages)."""
    from CardiacMotionAtlasLib.main_job.synthetic_cohort import default_test_family, held_out_summary_lines

    assert default_test_family("ellipsoidal") == "lofted" and default_test_family("lofted") == "ellipsoidal"
    assert default_test_family("mixed") in ("ellipsoidal", "lofted")
    entries = [{"subject": "phantom005", "family": "ellipsoidal", "role": "in-family"},
               {"subject": "lofted006", "family": "lofted", "role": "cross-family"}]
    rows = [{"method": "m", "metric": "err mm", "entry": e, "value": v, "baseline": b, "baseline_name": "base"}
            for e, v, b in zip(entries, (1.0, 3.0), (2.0, 2.5))]
    lines = held_out_summary_lines(rows, ["phantom005", "lofted006"])
    header = next(line for line in lines if line.startswith("| method"))
    assert header.index("in-family phantom005") < header.index("cross-family lofted006")
    assert "| m | err mm | base | 1.00 | 2.00 | 3.00 | 2.50 |" in lines
