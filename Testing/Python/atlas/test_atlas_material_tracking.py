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


class _SphereTemplate(torch.nn.Module):
    """A stand-in template field: the signed distance to a sphere of radius 0.5 at every phase."""

    def template(self, points: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
        return points.norm(dim=1) - 0.5 + 0.0 * phases


def test_rim_relaxation_covers_the_level_set_again_and_stays_on_it():
    from types import SimpleNamespace

    from skimage.measure import marching_cubes

    from CardiacMotionAtlasLib.atlas.material_tracking import relax_on_level_set

    axis = np.linspace(-1.0, 1.0, 33)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1)
    vertices, faces, _, _ = marching_cubes(np.linalg.norm(grid, axis=-1) - 0.5, 0.0, spacing=(axis[1] - axis[0],) * 3)
    vertices = vertices - 1.0
    # phase 1: every vertex slid towards the south pole along its meridian (polar angle x 0.6 + 0.4 pi), as the
    # projected material motion leaves the basal rim uncovered: the north cap (z > 0.3) holds no vertex
    r = np.linalg.norm(vertices, axis=1)
    theta, phi = np.arccos(np.clip(vertices[:, 2] / r, -1, 1)), np.arctan2(vertices[:, 1], vertices[:, 0])
    theta = 0.4 * np.pi + 0.6 * theta
    slid = 0.5 * np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=1)
    table = np.stack([vertices, slid])
    atlas = SimpleNamespace(device=torch.device("cpu"), module=_SphereTemplate())
    assert table[1][:, 2].max() < 0.16
    relaxed = relax_on_level_set(atlas, table, faces, np.array([0.0, 0.5]), iterations=60, step=0.5)
    assert np.array_equal(relaxed[0], table[0])  # the marched t' = 0 mesh is the reference, kept as is
    assert np.abs(np.linalg.norm(relaxed[1], axis=1) - 0.5).max() < 2e-3  # still on the level set
    assert relaxed[1][:, 2].max() > 0.45  # the uncovered cap is covered again
    unchanged = relax_on_level_set(atlas, table[[0, 0]], faces, np.array([0.0, 0.5]), iterations=20)
    assert np.abs(unchanged[1] - table[0]).max() < 0.02  # a mesh already in its t' = 0 shape hardly moves
