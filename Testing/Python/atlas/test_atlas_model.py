"""A tiny atlas: fitting a held-out subject, shared mesh connectivity, checkpoints, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.atlas.config import AtlasConfig, FitConfig, MeshConfig
from CardiacMotionAtlasLib.atlas.fit import FittedSubject, fit_subject, prior_subject, sdf_error_mm, training_subject
from CardiacMotionAtlasLib.atlas.meshing import subject_mesh_sequence, template_mesh_sequence
from CardiacMotionAtlasLib.atlas.model import Atlas
from CardiacMotionAtlasLib.errors import CheckpointError
from CardiacMotionAtlasLib.metrics import mesh_topology


def test_fitting_the_ed_frame_beats_the_untrained_codes(tiny_atlas, tiny_subjects):
    held = tiny_subjects[3]
    ed_only = held.observed("ed")
    before = sdf_error_mm(tiny_atlas, prior_subject(tiny_atlas, held), ed_only)
    fitted = fit_subject(tiny_atlas, held, "ed", FitConfig.tiny())
    assert fitted.setting == "ed" and fitted.seconds > 0
    assert fitted.sdf_error_mm < 0.9 * before, (fitted.sdf_error_mm, before)
    # networks stay frozen and keep requiring gradients afterwards
    assert all(p.requires_grad for p in tiny_atlas.module.template.parameters())


def test_fitting_ed_es_uses_the_timing_term(tiny_atlas, tiny_subjects):
    held = tiny_subjects[3]
    with_prior = fit_subject(tiny_atlas, held, "ed_es", FitConfig.tiny())
    without = fit_subject(tiny_atlas, held, "ed_es", FitConfig(**{**FitConfig.tiny().__dict__, "time_prior": False}))
    for fitted in (with_prior, without):
        assert np.isfinite(fitted.sdf_error_mm)
    es = torch.tensor([held.es_phase])
    with torch.no_grad():
        gap = tiny_atlas.module.es_alignment(with_prior.time_code[None], es).item()
    assert gap < 0.05**2


def test_meshes_of_two_subjects_share_connectivity(tiny_atlas, tiny_motion, phantom_hearts):
    phases = [0.0, 0.3, 0.6]
    meshes = [subject_mesh_sequence(tiny_atlas, training_subject(tiny_atlas, i), phases, tiny_motion, MeshConfig.tiny())
              for i in range(2)]
    assert np.array_equal(meshes[0].faces, meshes[1].faces)
    assert meshes[0].vertices.shape == meshes[1].vertices.shape == (3, len(tiny_motion.vertices[0]), 3)
    topology = mesh_topology(meshes[0])
    assert topology.is_closed and topology.is_manifold and topology.is_consistently_oriented
    assert not np.allclose(meshes[0].vertices, meshes[1].vertices)
    # RAS mm, near the subject's heart
    centre = phantom_hearts[0].centre_ras
    assert np.linalg.norm(meshes[0].vertices[0].mean(axis=0) - centre) < 30.0
    template = template_mesh_sequence(tiny_atlas, phases, tiny_motion, MeshConfig.tiny())
    assert np.array_equal(template.faces, meshes[0].faces)


def test_atlas_checkpoint_round_trip(tiny_atlas, tmp_path):
    path = tiny_atlas.save(tmp_path / "atlas.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["kind"] == "atlas" and raw["config"]["shape_code_dim"] == tiny_atlas.config.shape_code_dim
    loaded = Atlas.load(path, device="cpu")
    assert loaded.subject_ids == tiny_atlas.subject_ids
    assert loaded.extent_factor == pytest.approx(tiny_atlas.extent_factor)
    points, phases = torch.rand(64, 3) - 0.5, torch.rand(64)
    codes = tiny_atlas.subject_codes(1)
    with torch.no_grad():
        a, _ = tiny_atlas.module(points, phases, codes[0][None], codes[1][None])
        b, _ = loaded.module(points, phases, codes[0][None], codes[1][None])
    assert torch.allclose(a, b)
    fitted = training_subject(tiny_atlas, 1)
    subject_path = fitted.save(tmp_path / "subject.pt")
    again = FittedSubject.load(subject_path)
    assert again.subject_id == fitted.subject_id and torch.equal(again.shape_code, fitted.shape_code)
    assert np.allclose(again.frame.canonical_to_ras, fitted.frame.canonical_to_ras)
    with pytest.raises(CheckpointError, match="atlas_subject"):
        Atlas.load(subject_path, device="cpu")
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt"):
        Atlas.load(tmp_path / "broken.pt", device="cpu")


def test_cancelled_then_resumed_training_equals_uninterrupted(tiny_subjects, tmp_path):
    from dataclasses import replace

    from CardiacMotionAtlasLib.atlas.train import train_atlas
    from CardiacMotionAtlasLib.training.progress import CallbackProgress, CancelToken, TrainingCancelled

    config = replace(AtlasConfig.tiny(), steps=6, checkpoint_every=0, points_per_frame=64)
    straight = train_atlas(tiny_subjects[:2], config, checkpoint_path=tmp_path / "a.pt")
    token = CancelToken()
    stop_half_way = CallbackProgress(lambda fraction, message: token.cancel() if fraction >= 0.5 else None)
    with pytest.raises(TrainingCancelled) as cancelled:
        train_atlas(tiny_subjects[:2], config, checkpoint_path=tmp_path / "b.pt", progress=stop_half_way, cancel=token)
    assert cancelled.value.step == 3
    resumed = train_atlas(tiny_subjects[:2], config, checkpoint_path=tmp_path / "b.pt", resume=True)
    for name, value in straight.module.state_dict().items():
        assert torch.allclose(value, resumed.module.state_dict()[name], atol=1e-6), name
