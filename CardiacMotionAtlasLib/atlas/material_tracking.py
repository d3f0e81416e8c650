"""Template motion from the training cohort's material trajectories (temporal correspondence).

An SDF fixes only the normal speed of a surface: tracking the template's level set (:mod:`.meshing`)
leaves the tangential motion (torsion, the walls sliding towards the apex) to a smoothness guess. When
the training subjects' material trajectories are known (the phantom's material points; for patients
tagged MR or feature tracking), the atlas can learn that motion in template space instead:

1. the template mesh at ``t' = 0`` (template units) is carried to each training subject's ED frame by
   ``D1^-1(., c_p)`` and to RAS mm by its canonical frame;
2. those material points are moved to the subject phase ``t = D2^-1(t', c_t)`` of each stored template
   phase ``t'`` by the subject's known trajectories, and brought back to template space by
   ``D1(., c_p)``: subject ``i``'s motion of the template vertices, ``d_i(t')``, in template units;
3. the template motion is the cohort mean ``x(t') = x(0) + mean_i d_i(t')``, projected onto the
   template's level set at ``t'`` (``newton_iterations``, at least 2), so the surfaces are the SDF
   tracking's, only the vertices' positions along them change;
4. ``config.material_relax_iterations`` sweeps of :func:`relax_on_level_set` then restore the mesh's
   ``t' = 0`` local shape along the level set, so the basal rim stays covered (session 9; 0 = without).

Measured (benchmarks.atlas, all frames fitted): the error against the phantom's material points over
the cycle falls from ~2.3 mm (SDF tracking with smooth tangential transport) to ~1 mm, about the
cohort-mean-motion baseline's on the true ED mesh; surface errors are unchanged or slightly lower.

The result is a :class:`~.meshing.TemplateMotion`; subjects' meshes come from it exactly as from the
SDF tracking (shared vertex set and faces, :func:`~.meshing.subject_mesh_sequence`).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .config import MeshConfig
from .errors import AtlasDataError
from .meshing import TemplateMotion, neighbour_mean_operator, sdf_and_gradients, project_to_level_set
from .model import Atlas

PositionsFn = Callable[[np.ndarray, float], np.ndarray]
"""``positions(ed_points_ras (n, 3), phase) -> (n, 3)`` RAS mm positions of ED material points at a phase
(e.g. :meth:`PhantomHeart.positions`)."""


def inverse_time_warp(atlas: Atlas, time_code: torch.Tensor, template_phases: np.ndarray) -> np.ndarray:
    """Subject phases ``t`` with ``D2(t, c_t) = t'`` for template phases ``t'`` (``D2`` is strictly
    increasing, so its quadrature table inverts by linear interpolation)."""
    with torch.no_grad():
        table = atlas.module.temporal.table(time_code[None].to(atlas.device))[0].cpu().numpy().astype(float)
    nodes = np.linspace(0.0, 1.0, len(table))
    return np.interp(np.asarray(template_phases, float), table, nodes)


def material_template_motion(atlas: Atlas, motion: TemplateMotion, positions: Sequence[Optional[PositionsFn]],
                             config: Optional[MeshConfig] = None, steps: int = 12) -> TemplateMotion:
    """The template motion from the training subjects' material trajectories (module docstring).

    ``motion``: the SDF-tracked template (its ``t' = 0`` vertices, faces and level are kept);
    ``positions``: one trajectory function per training subject of the atlas, in its training order
    (None for subjects without known trajectories). ``steps``: stored template phases per cycle (between
    them vertices are interpolated linearly and projected onto the level set again, so only their
    tangential positions are interpolated); the cost is ``steps + 1`` evaluations of ``D1`` on the
    template vertices per subject."""
    config = config or MeshConfig()
    if steps < 2:
        raise AtlasDataError(None, f"steps must be >= 2, got {steps}")
    if len(positions) != atlas.module.n_subjects:
        raise AtlasDataError(None, f"{len(positions)} trajectory functions for {atlas.module.n_subjects} training subjects")
    known = [i for i, fn in enumerate(positions) if fn is not None]
    if not known:
        raise AtlasDataError(None, "no training subject has known material trajectories")
    device = atlas.device
    template_phases = np.arange(steps + 1) / steps
    start = torch.from_numpy(motion.vertices[0].astype(np.float32)).to(device)
    n_vertices = len(start)
    displacement = np.zeros((len(template_phases), n_vertices, 3))
    with torch.no_grad():
        for index in known:
            shape_code, time_code = atlas.subject_codes(index)
            code = shape_code[None].to(device)
            frame = atlas.frames[index]
            ed_ras = frame.to_ras(atlas.module.spatial.inverse(start, code).cpu().numpy().astype(float))
            subject_phases = inverse_time_warp(atlas, time_code, template_phases)
            moved = np.stack([frame.to_canonical(positions[index](ed_ras, float(t) % 1.0)) for t in subject_phases])
            back, _ = atlas.module.spatial(torch.from_numpy(moved.reshape(-1, 3).astype(np.float32)).to(device), code)
            back = back.cpu().numpy().astype(float).reshape(moved.shape)
            displacement += back - back[:1]
    vertices = motion.vertices[0][None] + displacement / len(known)
    phases = torch.from_numpy(np.repeat(template_phases, n_vertices).astype(np.float32)).to(device)
    points = torch.from_numpy(vertices.reshape(-1, 3).astype(np.float32)).to(device)
    projected = project_to_level_set(atlas, points, phases, max(2, config.newton_iterations), motion.level)
    table = projected.cpu().numpy().astype(np.float64).reshape(vertices.shape)
    if config.material_relax_iterations > 0:
        table = relax_on_level_set(atlas, table, motion.faces, template_phases, config.material_relax_iterations,
                                   config.material_relax_step, motion.level)
    closure = float(np.linalg.norm(table[-1] - table[0], axis=1).mean())
    return TemplateMotion(table, motion.faces, closure, motion.level)


def relax_on_level_set(atlas: Atlas, table: np.ndarray, faces: np.ndarray, template_phases: np.ndarray,
                       iterations: int, step: float = 0.5, level: float = 0.0) -> np.ndarray:
    """Tangential relaxation of the tracked vertices ``table`` ``(K + 1, V, 3)`` (template units) on the
    template's level set at each stored phase, towards the mesh's local shape at ``t' = 0``.

    Each sweep moves every vertex by ``step`` times the tangential part of ``L(x) - L(x_0)`` (``L``: the
    umbrella Laplacian, neighbour mean minus the vertex; ``x_0``: the ``t' = 0`` vertices, marched from the
    level set, so they cover it) and projects it back onto ``T(., t') = level`` (one Newton step). Why:
    the cohort's mean material displacement, projected onto the level set, leaves the basal rim of the
    template uncovered (material points of the basal cut travel apically across the wall, and the
    projection puts them on the inner or outer wall), so the mesh's faces cut the rim's corner: at ES the
    tracked rim lay 1-4 mm below the template's own (ragged around the circumference) and the cavity
    measurement lost its top slices. Matching the ``t' = 0`` Laplacian coordinates restores the corner
    while keeping the material motion's positions elsewhere (the ``t' = 0`` phase is left as is)."""
    device = atlas.device
    n_vertices = table.shape[1]
    neighbour_mean = neighbour_mean_operator(np.asarray(faces), n_vertices, device)
    reference = torch.from_numpy(table[0].astype(np.float32)).to(device)
    reference_laplacian = torch.sparse.mm(neighbour_mean, reference) - reference
    out = table.copy()
    for index in range(1, len(table)):
        x = torch.from_numpy(table[index].astype(np.float32)).to(device)
        phases = torch.full((n_vertices,), float(template_phases[index]), device=device)
        for _ in range(iterations):
            _, grad, _ = sdf_and_gradients(atlas, x, phases)
            normals = grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-6)
            move = torch.sparse.mm(neighbour_mean, x) - x - reference_laplacian
            move = move - (move * normals).sum(1, keepdim=True) * normals
            x = project_to_level_set(atlas, x + step * move, phases, 1, level)
        out[index] = x.cpu().numpy().astype(np.float64)
    return out


__all__ = ["PositionsFn", "inverse_time_warp", "material_template_motion", "relax_on_level_set"]
