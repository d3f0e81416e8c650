"""NISF++ model: training, checkpoints and resume, fitting, chunked sampling, outputs, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.errors import CheckpointError
from CardiacMotionAtlasLib.io.nifti import read_nifti
from CardiacMotionAtlasLib.nisf import FitConfig, NISFConfig, fit_subject, load_nisf, train_nisf
from CardiacMotionAtlasLib.nisf.fit import load_subject_fit, save_subject_fit
from CardiacMotionAtlasLib.nisf.outputs import write_reconstruction
from CardiacMotionAtlasLib.nisf.sampling import sample_grid, sample_points, standard_grid
from CardiacMotionAtlasLib.training import CancelToken, TrainingCancelled


def _outputs(network, latent):
    generator = torch.Generator().manual_seed(3)
    points = torch.rand((64, 3), generator=generator) * 2 - 1
    phases = torch.rand(64, generator=generator)
    with torch.no_grad():
        return network(points, phases, latent)


def test_training_reduces_the_loss_and_checkpoint_round_trips(tiny_trained):
    assert tiny_trained.result.step == tiny_trained.config.steps
    losses = np.asarray(tiny_trained.losses)
    assert len(losses) == tiny_trained.config.steps and losses[-10:].mean() < 0.7 * losses[:10].mean()
    loaded = load_nisf(tiny_trained.checkpoint_path, device="cpu")
    assert loaded.config == tiny_trained.config
    latent = tiny_trained.model.params.latents[0]
    restored_outputs = _outputs(loaded.network, loaded.model.params.latents[0])
    for original, restored in zip(_outputs(tiny_trained.network, latent), restored_outputs):
        assert torch.equal(original, restored)
    fit, fit_loaded = tiny_trained.subject_fit(0), loaded.subject_fit(0)
    assert fit.subject.subject_id == fit_loaded.subject.subject_id
    for a, b in zip(fit.corrected_geometries(), fit_loaded.corrected_geometries()):
        assert np.allclose(a, b)
    assert np.allclose(fit.intensity_scales(), fit_loaded.intensity_scales())


class _CancelAt:
    """A progress reporter that asks the loop to stop after ``step`` steps."""

    def __init__(self, token, step):
        self.token, self.step = token, step

    def start(self, total, description="", *, initial=0):
        pass

    def update(self, step, **metrics):
        if step == self.step:
            self.token.cancel("test")

    def close(self):
        pass


def test_resumed_training_equals_uninterrupted(nisf_sims, tmp_path):
    config = NISFConfig.tiny()
    config.steps, config.checkpoint_every = 12, 100
    studies = [nisf_sims[0].study]
    straight = train_nisf(studies, config, device="cpu")
    token = CancelToken()
    path = tmp_path / "resume.pt"
    with pytest.raises(TrainingCancelled):
        train_nisf(studies, config, checkpoint_path=path, device="cpu", progress=_CancelAt(token, 5), cancel=token)
    resumed = train_nisf(studies, config, checkpoint_path=path, resume=True, device="cpu")
    assert resumed.result.start_step == 5
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name
    with pytest.raises(CheckpointError, match="other subjects"):
        train_nisf([nisf_sims[1].study], config, checkpoint_path=path, resume=True, device="cpu")


def test_sampling_in_chunks_equals_sampling_at_once(tiny_trained):
    fit = tiny_trained.subject_fit(0)
    matrix, shape = standard_grid(fit, spacing_mm=9.0)
    phases = [0.0, 0.4]
    at_once = sample_grid(fit, matrix, shape, phases, chunk=10**7)
    chunked = sample_grid(fit, matrix, shape, phases, chunk=97)
    assert np.array_equal(at_once.labels.array, chunked.labels.array)
    assert np.allclose(at_once.intensity.array, chunked.intensity.array, atol=1e-6)
    assert at_once.labels.array.shape == (2,) + tuple(shape)
    assert np.allclose(at_once.labels.ijk_to_ras, matrix)
    assert at_once.intensity.array.max() > 0 and at_once.labels.array.max() > 0
    # points outside the modelled box are background without being evaluated
    far = fit.subject.frame.to_ras(np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    values, labels = sample_points(fit, far, [0.0])
    assert values[0, 0] == 0 and labels[0, 0] == 0 and values[0, 1] > 0


def test_fit_new_subject_writes_outputs_and_round_trips(tiny_trained, nisf_sims, tmp_path):
    study = nisf_sims[1].study
    fit = fit_subject(tiny_trained, study, FitConfig(steps=20, slices_per_step=4, points_per_slice=64))
    assert len(fit.history["loss"]) == 20
    assert tiny_trained.network.input.weight.requires_grad is False
    matrix, shape = standard_grid(fit, spacing_mm=8.0)
    paths = write_reconstruction(fit, tmp_path / "out", grid=(matrix, shape), phases=[0.0, 0.5], mesh_labels=(1,))
    labels = read_nifti(paths["labels"], labels=True)
    intensity = read_nifti(paths["intensity"])
    assert labels.array.shape == intensity.array.shape == (2,) + tuple(shape)
    assert np.allclose(labels.ijk_to_ras, matrix, atol=1e-4)
    report = json.loads((tmp_path / "out" / "slices.json").read_text())
    assert [s["name"] for s in report["slices"]] == [s.image.name for s in study.slices]
    assert np.allclose(report["slices"][0]["corrected_ijk_to_ras"], fit.corrected_geometries()[0])
    restored = load_subject_fit(tiny_trained, paths["subject_fit"])
    assert torch.equal(restored.latent, fit.latent)
    for a, b in zip(restored.corrected_geometries(), fit.corrected_geometries()):
        assert np.allclose(a, b)
    with pytest.raises(CheckpointError):
        load_subject_fit(tiny_trained, tiny_trained.checkpoint_path)  # a model checkpoint, not a subject fit
    save_subject_fit(fit, tmp_path / "again.pt")


def test_cli_train_reconstruct_sample(nisf_sims, tmp_path, capsys):
    from CardiacMotionAtlasLib.cli.main import main
    from CardiacMotionAtlasLib.io.layout_ukbb import write_ukbb_study

    cohort = tmp_path / "cohort"
    for sim in nisf_sims:
        write_ukbb_study(sim.study, cohort / sim.study.subject_id)
    model = tmp_path / "nisf.pt"
    assert main(["nisf", "train", "--data", str(cohort), "--out", str(model), "--tiny", "--steps", "6",
                 "--device", "cpu", "--threads", "1", "--progress", "none"]) == 0
    assert "trained NISF++ on 2 studies" in capsys.readouterr().out
    out = tmp_path / "recon"
    assert main(["nisf", "reconstruct", "--model", str(model), "--study", str(cohort / nisf_sims[1].study.subject_id),
                 "--out", str(out), "--steps", "4", "--spacing", "10", "--phases", "2", "--device", "cpu",
                 "--progress", "none"]) == 0
    assert read_nifti(out / "labels.nii.gz", labels=True).array.shape[0] == 2
    assert main(["nisf", "sample", "--model", str(model), "--fit", str(out / "subject_fit.pt"), "--out",
                 str(tmp_path / "again"), "--reference", str(out / "labels.nii.gz"), "--device", "cpu",
                 "--progress", "none"]) == 0
    again = read_nifti(tmp_path / "again" / "labels.nii.gz", labels=True)
    assert np.array_equal(again.array, read_nifti(out / "labels.nii.gz", labels=True).array)
    # bad input: a clear error and exit status 2
    assert main(["nisf", "reconstruct", "--model", str(model), "--study", str(tmp_path / "missing"), "--out",
                 str(out), "--device", "cpu"]) == 2
    assert "does not exist" in capsys.readouterr().err
