"""The transmural offset ``F(R(p, t), t) - w(p, t)``, ``w = w0 + m(D2(t)) w1`` (issue 16): a degree of
freedom across the wall, which a smooth displacement field lacks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from skimage.measure import marching_cubes

from CardiacMotionAtlasLib.atlas.config import FitConfig, MeshConfig
from CardiacMotionAtlasLib.atlas.errors import AtlasConfigError, AtlasError
from CardiacMotionAtlasLib.atlas.fit import FittedSubject, fit_subject, sdf_error_mm
from CardiacMotionAtlasLib.atlas.meshing import subject_mesh_sequence
from CardiacMotionAtlasLib.atlas.residual import offset_along_normals, scalar_offset, vertex_normals
from CardiacMotionAtlasLib.metrics import mesh_topology


def _sphere(radius: float = 0.5, n: int = 40):
    axis = np.linspace(-1, 1, n)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    vertices, faces, _, _ = marching_cubes(np.sqrt(x**2 + y**2 + z**2) - radius, 0.0, spacing=(axis[1] - axis[0],) * 3)
    return torch.from_numpy(vertices - 1.0), torch.from_numpy(faces.astype(np.int64))


def test_offset_is_linear_in_its_fields_and_moves_a_surface_along_its_outward_normal():
    generator = torch.Generator().manual_seed(0)
    w0, w1 = (torch.randn(8, 8, 8, generator=generator, dtype=torch.float64) * 0.01 for _ in range(2))
    points = torch.rand(100, 3, generator=generator, dtype=torch.float64) * 2 - 1
    m = torch.full((100,), 0.4, dtype=torch.float64)
    np.testing.assert_allclose(scalar_offset(points, w0, w1, m),
                               scalar_offset(points, w0) + 0.4 * scalar_offset(points, w1), atol=1e-12)
    assert torch.equal(scalar_offset(points, None, None), torch.zeros(100, dtype=torch.float64))
    with pytest.raises(AtlasError):
        scalar_offset(points, None, w1)  # a time-varying offset needs m
    with pytest.raises(AtlasConfigError):
        FitConfig(offset_weight=-1.0)

    vertices, faces = _sphere()
    normals = vertex_normals(vertices, faces)
    radial = vertices / vertices.norm(dim=1, keepdim=True)
    assert float((normals * radial).sum(1).min()) > 0.95  # outward, whatever the faces' winding
    assert float((vertex_normals(vertices, faces.flip(1)) * radial).sum(1).min()) > 0.95
    # constant control values: the B-spline's partition of unity inside the lattice gives a uniform offset
    thickened = offset_along_normals(vertices, faces, torch.full((8, 8, 8), 0.05, dtype=torch.float64),
                                     torch.full((8, 8, 8), -0.1, dtype=torch.float64), 0.5)
    np.testing.assert_allclose(thickened.norm(dim=1).numpy(), vertices.norm(dim=1).numpy(), atol=2e-3)  # 0.05 - 0.05
    grown = offset_along_normals(vertices, faces, torch.full((8, 8, 8), 0.05, dtype=torch.float64), None, 0.0)
    np.testing.assert_allclose((grown.norm(dim=1) - vertices.norm(dim=1)).numpy(), 0.05, atol=3e-3)
    assert offset_along_normals(vertices, faces, None, None, 1.0) is vertices


def test_fit_with_offset_fits_better_and_keeps_the_mesh_closed(tiny_atlas, tiny_subjects, tiny_motion, tmp_path):
    held = tiny_subjects[3]  # a hypertrophic heart: thicker wall than the training cohort's
    config = FitConfig.tiny()
    fitted = fit_subject(tiny_atlas, held, "ed_es", replace(config, transmural_offset=True))
    warp_only = fit_subject(tiny_atlas, held, "ed_es", replace(config, transmural_offset=False))
    assert warp_only.offset is None and warp_only.motion_offset is None
    assert fitted.offset is not None and fitted.motion_offset is not None
    assert float(fitted.motion_offset.abs().max()) > 0
    assert fitted.sdf_error_mm < warp_only.sdf_error_mm, (fitted.sdf_error_mm, warp_only.sdf_error_mm)
    ed_alone = fit_subject(tiny_atlas, held, "ed", replace(config, transmural_offset=True))
    assert ed_alone.offset is not None and ed_alone.motion_offset is None  # ED shows no change across the wall

    phases = [0.0, held.es_phase]
    mesh = subject_mesh_sequence(tiny_atlas, fitted, phases, tiny_motion, MeshConfig.tiny())
    without = subject_mesh_sequence(tiny_atlas, replace(fitted, offset=None, motion_offset=None), phases, tiny_motion,
                                    MeshConfig.tiny())
    assert np.abs(mesh.vertices - without.vertices).max() > 1e-2
    for index in range(2):
        topology = mesh_topology((mesh.vertices[index], mesh.faces))
        assert topology.is_closed and topology.is_manifold

    again = FittedSubject.load(fitted.save(tmp_path / "subject.pt", config))
    assert torch.equal(again.offset, fitted.offset) and torch.equal(again.motion_offset, fitted.motion_offset)
    assert sdf_error_mm(tiny_atlas, again, held.observed("ed_es")) == pytest.approx(fitted.sdf_error_mm, rel=1e-5)
