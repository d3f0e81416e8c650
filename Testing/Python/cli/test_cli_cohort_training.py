"""Training on a user's own cohort through the CLI: every method (tiny presets) trains on a small phantom
cohort written in the ACDC layout (ACDC label convention: 1 RV, 2 myocardium, 3 LV) with a manifest, and
is applied to the held-out patient; the phantom's own UK Biobank-style layout works for every ``train``.

Checks that could fail: the labels are read in the right convention (the LV blood pool is enclosed by
the myocardium and has the phantom's LV volume), subject ids are the study folders' names, the
manifest's test subject is never trained on, and each model trains and applies.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.cli.main import main
from CardiacMotionAtlasLib.geometry.affine import apply_affine
from CardiacMotionAtlasLib.io.label_conventions import label_anatomy
from CardiacMotionAtlasLib.io.layout_acdc import write_acdc_study
from CardiacMotionAtlasLib.io.layout_common import sax_volume, stack_slices
from CardiacMotionAtlasLib.io.layouts import read_study
from CardiacMotionAtlasLib.phantom.cohort import CohortConfig, cohort_hearts, subject_acquisition, write_cohort

FAMILY = "lofted"
N_SUBJECTS = 4
CPU = ["--device", "cpu", "--progress", "none"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def acdc(tmp_path_factory):
    """``patient001..004`` in the ACDC layout, simulated as ``write_cohort`` would (tiny cohort config),
    and a manifest holding ``patient004`` out."""
    root = tmp_path_factory.mktemp("acdc")
    config = CohortConfig.tiny(N_SUBJECTS)
    config.family = FAMILY
    config.ct = None
    from CardiacMotionAtlasLib.phantom.cmr import simulate_cine

    hearts = cohort_hearts(config)
    names = [f"patient{i + 1:03d}" for i in range(N_SUBJECTS)]
    for index, (heart, name) in enumerate(zip(hearts, names)):
        cmr, _, _ = subject_acquisition(heart, config, index)
        write_acdc_study(simulate_cine(heart, cmr, seed=config.seed).study, root / name, group="NOR")
    manifest = root / "manifest.csv"
    manifest.write_text("subject,path,split\n" + "".join(f"{n},{n},{'test' if n == names[-1] else 'train'}\n"
                                                          for n in names))
    return {"root": root, "hearts": dict(zip(names, hearts)), "manifest": manifest, "train": names[:-1],
            "test": names[-1]}


def _check_acdc_labels_are_read_in_the_acdc_convention(acdc):
    for name, heart in acdc["hearts"].items():
        study = read_study(acdc["root"] / name)
        assert study.metadata["label_convention"] == "acdc"
        labels = np.concatenate([s.labels.array for s in study.sax], axis=1)
        matrix, _, _ = stack_slices(study.sax)
        voxel_ml = float(abs(np.linalg.det(matrix[:3, :3]))) / 1000.0
        for frame in (study.ed_frame, study.es_frame):
            anatomy = label_anatomy(labels[frame])
            assert anatomy["background_1"] < 0.15 < 0.4 < anatomy["background_3"]  # LV inside the myocardium ring
            phase = float(study.sax[0].image.phases[frame])
            lv_ml, rv_ml = (np.count_nonzero(labels[frame] == k) * voxel_ml for k in (1, 3))
            assert lv_ml == pytest.approx(float(heart.lv_volume_ml(phase)), rel=0.1), (name, frame)
            assert rv_ml == pytest.approx(float(heart.rv_volume_ml(phase)), rel=0.12), (name, frame)


def _centroid(labels, frame: int, label: int) -> np.ndarray:
    """RAS mm centroid of ``label`` in frame ``frame`` of a label sequence."""
    k, j, i = np.nonzero(np.asarray(labels.array[frame]) == label)
    return apply_affine(labels.ijk_to_ras, np.stack([i, j, k], axis=1).astype(float)).mean(axis=0)


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_every_method_trains_on_acdc_and_applies_to_the_held_out_patient(acdc, tmp_path, capsys):
    """One test for the whole ACDC cohort, so that it is simulated once (pytest-xdist would build a
    module fixture once per worker)."""
    _check_acdc_labels_are_read_in_the_acdc_convention(acdc)
    _check_bare_acdc_label_map_needs_its_convention(acdc, tmp_path / "bare", capsys)
    _check_every_method(acdc, tmp_path, capsys)


def _check_every_method(acdc, tmp_path, capsys):
    from CardiacMotionAtlasLib.atlas.fit import FittedSubject
    from CardiacMotionAtlasLib.atlas.model import Atlas
    from CardiacMotionAtlasLib.io.meshes import read_mesh_sequence
    from CardiacMotionAtlasLib.nisf import load_nisf

    manifest, test, train = str(acdc["manifest"]), acdc["test"], acdc["train"]
    held = acdc["root"] / test

    # atlas: train (report first), then fit the held-out patient from ED + ES
    atlas_dir = tmp_path / "atlas"
    assert main(["atlas", "train", "--manifest", manifest, "--preset", "tiny", "--steps", "40", "--out",
                 str(atlas_dir), *CPU]) == 0
    printed = capsys.readouterr().out
    assert "atlas train: 4 studies (3 train, 1 test)" in printed
    assert all(f"{name}  {'test ' if name == test else 'train'}  acdc    acdc" in printed for name in acdc["hearts"])
    assert printed.index("atlas train:") < printed.index("sampling the SDFs")  # the report comes first
    assert Atlas.load(atlas_dir / "atlas.pt", device="cpu").subject_ids == train
    record = json.loads((atlas_dir / "cohort.json").read_text())
    assert record["train"] == train and record["test"] == [test]
    fit_dir = tmp_path / "fit"
    assert main(["atlas", "fit", "--atlas", str(atlas_dir / "atlas.pt"), "--labels", str(held), "--setting", "ed_es",
                 "--steps", "15", "--phases", "4", "--out", str(fit_dir), *CPU]) == 0
    assert "fit preset tiny (the atlas' configuration)" in capsys.readouterr().out
    curve = json.loads((fit_dir / "volume_curve.json").read_text())
    assert curve["subject"] == test and curve["sdf_error_mm"] < 5.0
    meshes = read_mesh_sequence(fit_dir / "meshes")
    assert meshes.vertices.shape[0] == 4  # one vertex set over the cycle (dense correspondence)
    # the fit sits on the patient's myocardium, its canonical x axis towards the patient's RV (labels 3/1 of
    # the ACDC files swapped into the product's 1/3: read the other way, x would point at the LV blood pool)
    labels = sax_volume(read_study(held).sax, labels=True)
    myocardium, rv = (_centroid(labels, 0, k) for k in (2, 3))
    assert np.linalg.norm(meshes.vertices[0].mean(axis=0) - myocardium) < 10.0
    frame = FittedSubject.load(fit_dir / f"{test}_codes.pt", "cpu").frame
    towards_rv = (rv - frame.origin_ras) / np.linalg.norm(rv - frame.origin_ras)
    assert frame.axes_ras[:, 0] @ towards_rv > 0.9

    # NISF++: train, then reconstruct the held-out patient's 4D labels
    nisf = tmp_path / "nisf.pt"
    assert main(["nisf", "train", "--manifest", manifest, "--preset", "tiny", "--steps", "10", "--out", str(nisf),
                 "--threads", "1", *CPU]) == 0
    assert [s.subject_id for s in load_nisf(nisf, device="cpu").subjects] == train
    recon = tmp_path / "recon"
    assert main(["nisf", "reconstruct", "--model", str(nisf), "--study", str(held), "--steps", "5", "--spacing", "4",
                 "--out", str(recon), *CPU]) == 0
    from CardiacMotionAtlasLib.io.nifti import read_nifti

    assert read_nifti(recon / "labels.nii.gz", labels=True).array.shape[0] == 8

    # CardioMorphNet: train on ED/ES labels (main job's grid reduction), estimate the held-out motion
    motion = tmp_path / "motion.pt"
    assert main(["motion", "train", "--manifest", manifest, "--preset", "tiny", "--steps", "2", "--seg-steps", "2",
                 "--out", str(motion), *CPU]) == 0
    printed = capsys.readouterr().out
    assert f"on 3 studies (factor 1, crop 36, frames 8): {', '.join(train)}" in printed
    estimate = tmp_path / "estimate"
    assert main(["motion", "estimate", "--model", str(motion), "--study", str(held), "--samples", "2",
                 "--refine-steps", "0", "--out", str(estimate), *CPU]) == 0
    printed = capsys.readouterr().out
    # the training's preprocessing (trained with --preset tiny) travels in the checkpoint and is applied
    assert "preprocessing stored in motion.pt: preset tiny" in printed
    assert _last_json(printed)["LVEDV"] > 0
    assert json.loads(motion.with_name("motion.cohort.json").read_text())["test"] == [test]

    # CT motion CVAE: a CMR-only cohort trains on its cine ED/ES frames; sample for the held-out ES frame
    synth = tmp_path / "synth"
    assert main(["synth", "train", "--manifest", manifest, "--preset", "tiny", "--out", str(synth), *CPU]) == 0
    assert json.loads((synth / "inputs.json").read_text())["modality"] == "cine"
    assert json.loads((synth / "cohort.json").read_text())["train"] == train
    es = read_study(held).es_frame + 1
    frame, gt = held / f"{test}_frame{es:02d}.nii.gz", held / f"{test}_frame{es:02d}_gt.nii.gz"
    pairs = tmp_path / "pairs"
    sample = ["synth", "sample", "--model", str(synth / "synth.pt"), "--frame", str(frame), "--labels", str(gt),
              "--n", "1", "--out", str(pairs), *CPU]
    assert main(sample) == 2  # an ACDC map read as the product's convention is refused, naming the file
    error = capsys.readouterr().err
    assert str(gt) in error and "Check --label-convention" in error
    assert main(sample + ["--label-convention", "acdc"]) == 0
    assert len(list(pairs.glob("pair_*"))) == 1


def _check_bare_acdc_label_map_needs_its_convention(acdc, tmp_path, capsys):
    """``atlas train --labels a/labels.nii.gz ...``: ids from the folders; without a convention the command
    stops before any preprocessing, naming every file."""
    from CardiacMotionAtlasLib.data.image_sequence import ImageSequence
    from CardiacMotionAtlasLib.io.nifti import read_nifti, write_nifti

    files = []
    for name in acdc["train"][:2]:
        study = read_study(acdc["root"] / name)
        gt = read_nifti(acdc["root"] / name / f"{name}_frame01_gt.nii.gz", labels=True)  # ACDC convention
        files.append(write_nifti(ImageSequence(gt.array, gt.ijk_to_ras), tmp_path / f"100000{name[-1]}" / "labels.nii.gz",
                                 labels=True, label_convention=None))  # like a foreign file: no header stamp
        assert study.ed_frame == 0
    out = tmp_path / "atlas"
    assert main(["atlas", "train", "--labels", *map(str, files), "--preset", "tiny", "--out", str(out), *CPU]) == 2
    captured = capsys.readouterr()
    assert all(str(f) in captured.err for f in files) and "--label-convention" in captured.err
    assert "1000001  train  labels" in captured.out and not (out / "atlas.pt").exists()
    assert main(["atlas", "train", "--labels", *map(str, files), "--label-convention", "product", "--preset", "tiny",
                 "--out", str(out), *CPU]) == 2  # declared wrongly: refused by the anatomy check
    assert "LV blood pool borders the background" in capsys.readouterr().err


def test_every_train_command_reads_the_phantoms_own_cohort_layout(tmp_path, capsys):
    config = CohortConfig.tiny(3)
    config.family = FAMILY
    folders = write_cohort(tmp_path / "cohort", config)
    root, ids = str(tmp_path / "cohort"), [f.name for f in folders]
    common = ["--data", root, "--test", ids[-1], "--preset", "tiny", *CPU]
    assert main(["atlas", "train", *common, "--steps", "3", "--out", str(tmp_path / "atlas")]) == 0
    assert main(["nisf", "train", *common, "--steps", "3", "--out", str(tmp_path / "nisf.pt")]) == 0
    assert main(["motion", "train", *common, "--steps", "1", "--seg-steps", "1", "--out", str(tmp_path / "m.pt")]) == 0
    assert main(["synth", "train", *common, "--out", str(tmp_path / "synth")]) == 0
    printed = capsys.readouterr().out
    assert printed.count(f"{ids[0]}  train  ukbb+gt  product") == 4
    assert json.loads((tmp_path / "synth" / "inputs.json").read_text())["modality"] == "ct"
    for record in (tmp_path / "atlas" / "cohort.json", tmp_path / "nisf.cohort.json", tmp_path / "m.cohort.json",
                   tmp_path / "synth" / "cohort.json"):
        assert json.loads(record.read_text())["train"] == ids[:-1]
