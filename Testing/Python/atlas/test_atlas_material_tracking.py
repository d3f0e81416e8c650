"""Template motion learned from the training subjects' material trajectories."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.atlas.config import MeshConfig
from CardiacMotionAtlasLib.atlas.errors import AtlasDataError
from CardiacMotionAtlasLib.atlas.evaluation import temporal_correspondence_error
from CardiacMotionAtlasLib.atlas.fit import training_subject
from CardiacMotionAtlasLib.atlas.material_tracking import inverse_time_warp, material_template_motion
from CardiacMotionAtlasLib.atlas.meshing import subject_mesh_sequence


def test_inverse_time_warp_inverts_d2(tiny_atlas):
    time_code = tiny_atlas.subject_codes(2)[1] + 0.5  # a clearly non-identity re-timing
    template_phases = np.linspace(0.0, 1.0, 17)
    phases = inverse_time_warp(tiny_atlas, time_code, template_phases)
    with torch.no_grad():
        again = tiny_atlas.module.temporal(torch.tensor(phases, dtype=torch.float32), time_code[None]).numpy()
    assert np.all(np.diff(phases) > 0) and phases[0] == 0.0 and phases[-1] == pytest.approx(1.0)
    assert np.allclose(again, template_phases, atol=2e-3)


def test_material_motion_beats_sdf_tracking_against_material_points(tiny_atlas, tiny_motion, phantom_hearts):
    hearts = phantom_hearts[:3]
    motion = material_template_motion(tiny_atlas, tiny_motion, [h.positions for h in hearts], MeshConfig.tiny(), steps=6)
    assert motion.vertices.shape == (7,) + tiny_motion.vertices[0].shape and np.array_equal(motion.faces, tiny_motion.faces)
    assert motion.closure_error < 1e-3  # the trajectories are cyclic
    phases = np.array([0.0, 0.2, 0.4, 0.6, 0.8])
    subject = training_subject(tiny_atlas, 0)
    errors = {}
    for name, template_motion in (("material", motion), ("sdf", tiny_motion)):
        mesh = subject_mesh_sequence(tiny_atlas, subject, phases, template_motion, MeshConfig.tiny())
        errors[name] = temporal_correspondence_error(mesh, hearts[0].positions)[1:].mean()
    assert errors["material"] < 0.7 * errors["sdf"], errors


def test_material_motion_needs_one_trajectory_per_training_subject(tiny_atlas, tiny_motion, phantom_hearts):
    with pytest.raises(AtlasDataError, match="trajectory functions"):
        material_template_motion(tiny_atlas, tiny_motion, [phantom_hearts[0].positions])
    with pytest.raises(AtlasDataError, match="no training subject"):
        material_template_motion(tiny_atlas, tiny_motion, [None, None, None])
