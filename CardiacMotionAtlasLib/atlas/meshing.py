"""Meshes with dense correspondence across subjects and time, without marching any subject's field.

1. **Template mesh, marched once**: ``T(., t' = 0)`` on a ``resolution^3`` grid over ``[-1, 1]^3``
   (template space), ``skimage.measure.marching_cubes`` at level 0, largest connected component,
   faces turned outwards. If SDF errors perforate a thin wall (the surface is not a sphere), the
   smallest outward level offset that closes it is used instead, and tracked throughout.
2. **Temporal correspondence = tracking the template's zero level set with a smooth template-space
   motion**. The SDF fixes only the normal speed of the surface, ``w_n = -(dT/dt') grad T / |grad T|^2``;
   its tangential motion is unobservable. Each vertex velocity is ``v = w_n + P (W v)``: the
   level-set normal velocity plus the tangential part (``P = I - n n^T``) of the mean velocity of its
   mesh neighbours (``W``), solved by ``smoothing_iterations`` Jacobi sweeps warm-started from the
   previous step, i.e. the smoothest surface velocity field with the observed normal speed. A moving
   part of the surface thus drags its neighbours along (the base plane descending pulls the adjacent
   walls towards the apex), while rotation about the long axis (torsion) stays invisible to any
   SDF-based method. ``smoothing_iterations = 0`` gives pure normal motion (closest-point tracking).
   Steps are explicit Euler between ``tracking_steps`` stored template phases, each followed by
   ``newton_iterations`` Newton projections ``x <- x - T grad T / |grad T|^2`` back onto
   ``T(., t') = 0``. Between stored phases vertices are interpolated linearly and projected once more.
   The benchmark measures the resulting error against the phantom's material points. When the
   training subjects' material trajectories are known, :mod:`.material_tracking` replaces the
   smoothness guess by the cohort's mean template-space motion (same surfaces, same faces).
3. **Subjects**: at subject phase ``t`` the template vertices at ``t' = D2(t, c_t)`` are carried by the
   inverse flow ``D1^-1(., c_p)`` (backward ODE integration) to the subject's canonical frame and then
   to RAS mm. A subject's residual warp (:mod:`.residual`) corrects the observed shape: ``R^-1`` at each
   frame's position (``residual_transport="spatial"``, default, as fitted) or each vertex's ED correction
   carried through the cycle (``"material"``). ``D1`` and the residual are diffeomorphisms, so the ED mesh stays
   closed and keeps its topology; every subject and frame shares one vertex set and one face array.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..data.mesh_sequence import MeshSequence
from .config import MeshConfig
from .errors import AtlasError
from .fit import FittedSubject
from .frame import mesh_volume_moments
from .model import Atlas
from .residual import coefficients_at, contraction_profile, invert_residual, offset_along_normals


def _template_values(atlas: Atlas, points: np.ndarray, phase: float, batch: int) -> np.ndarray:
    out = np.empty(len(points), np.float32)
    with torch.no_grad():
        for start in range(0, len(points), batch):
            chunk = torch.from_numpy(points[start:start + batch].astype(np.float32)).to(atlas.device)
            phases = torch.full((len(chunk),), float(phase), device=atlas.device)
            out[start:start + batch] = atlas.module.template(chunk, phases).cpu().numpy()
    return out


def largest_component(vertices: np.ndarray, faces: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Keep the largest connected component of a triangle mesh (vertices re-indexed)."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(vertices),) * 2)
    labels = connected_components(graph, directed=False)[1]
    keep_label = np.bincount(labels[faces[:, 0]]).argmax()
    keep_faces = faces[labels[faces[:, 0]] == keep_label]
    used = np.unique(keep_faces)
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    return vertices[used], remap[keep_faces]


def _march(values: np.ndarray, level: float, step: float) -> Tuple[np.ndarray, np.ndarray]:
    from skimage.measure import marching_cubes

    vertices, faces, _, _ = marching_cubes(values, level=level, spacing=(step, step, step))
    vertices = vertices - 1.0  # index * step -> [-1, 1]
    vertices, faces = largest_component(vertices, faces.astype(np.int64))
    corners = vertices[faces]
    signed = np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum()
    if signed < 0:  # outward normals (volume positive), as MeshSequence requires
        faces = faces[:, [0, 2, 1]]
    return vertices.astype(np.float64), faces


def _euler_characteristic(faces: np.ndarray) -> int:
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    return len(np.unique(faces)) - len(np.unique(edges, axis=0)) + len(faces)


def extract_template_mesh(atlas: Atlas, phase: float = 0.0, config: Optional[MeshConfig] = None,
                          level: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Marching cubes of ``T(., phase)`` over ``[-1, 1]^3``: (vertices ``(V, 3)`` template units, faces
    ``(M, 3)`` outward), largest component. With ``level=None`` the zero level set is used unless it is
    not a sphere (Euler characteristic != 2: a thin wall perforated by SDF errors); then the smallest of
    ``config.level_offsets`` that closes it (an outward offset, canonical units) is used, and the chosen
    level is stored as ``atlas.template_level``. Raises :class:`AtlasError` when there is no surface."""
    config = config or MeshConfig()
    n = config.resolution
    axis = np.linspace(-1.0, 1.0, n)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)  # volume[ix, iy, iz]
    values = _template_values(atlas, grid, phase, config.batch_points).reshape(n, n, n)
    if not (values.min() < 0.0 < values.max()):
        raise AtlasError(f"the template has no zero level set at t'={phase:.3f} in [-1, 1]^3 "
                         f"(SDF range {values.min():.3g}..{values.max():.3g}): is the atlas trained?")
    step = axis[1] - axis[0]
    levels = [level] if level is not None else [0.0] + [o for o in config.level_offsets if o > 0]
    for candidate in levels:
        vertices, faces = _march(values, candidate, step)
        if level is not None or _euler_characteristic(faces) == 2:
            break
    else:
        vertices, faces = _march(values, 0.0, step)
        candidate = 0.0
    atlas.template_level = float(candidate)
    return vertices, faces


def sdf_and_gradients(atlas: Atlas, points: torch.Tensor, phases: torch.Tensor):
    """The template SDF ``(N,)`` at canonical ``points`` ``(N, 3)`` and template ``phases`` ``(N,)``, its
    spatial gradient ``(N, 3)`` and its phase derivative ``(N,)`` (canonical units)."""
    with torch.enable_grad():
        points = points.detach().requires_grad_(True)
        phases = phases.detach().requires_grad_(True)
        values = atlas.module.template(points, phases)
        grad_points, grad_phases = torch.autograd.grad(values.sum(), [points, phases])
    return values.detach(), grad_points.detach(), grad_phases.detach()


def project_to_level_set(atlas: Atlas, points: torch.Tensor, phases: torch.Tensor, iterations: int,
                         level: float = 0.0) -> torch.Tensor:
    """Newton steps ``x <- x - (T - level) grad T / |grad T|^2`` onto ``T(., t') = level`` (step capped)."""
    for _ in range(iterations):
        values, grad, _ = sdf_and_gradients(atlas, points, phases)
        norm2 = (grad * grad).sum(1, keepdim=True).clamp_min(0.05)
        points = points - ((values[:, None] - level) * grad / norm2).clamp(-0.05, 0.05)
    return points


def _normal_velocity(atlas: Atlas, points: torch.Tensor, phase: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """(level-set normal velocity ``(V, 3)``, unit normals ``(V, 3)``) at ``points`` and template ``phase``."""
    phases = torch.full((len(points),), phase, device=points.device)
    _, grad, dt = sdf_and_gradients(atlas, points, phases)
    norm2 = (grad * grad).sum(1, keepdim=True).clamp_min(0.05)
    return -dt[:, None] * grad / norm2, grad / norm2.sqrt()


def neighbour_mean_operator(faces: np.ndarray, n_vertices: int, device: torch.device) -> torch.Tensor:
    """Sparse ``(V, V)`` row-normalised vertex adjacency of a triangle mesh."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.concatenate([edges, edges[:, ::-1]]), axis=0)
    degree = np.bincount(edges[:, 0], minlength=n_vertices).astype(np.float32)
    weights = 1.0 / degree[edges[:, 0]]
    index = torch.from_numpy(edges.T.copy())
    matrix = torch.sparse_coo_tensor(index, torch.from_numpy(weights), (n_vertices, n_vertices), check_invariants=True)
    return matrix.coalesce().to(device)


def _smooth_velocity(normal_velocity: torch.Tensor, normals: torch.Tensor, neighbour_mean: torch.Tensor,
                     previous: torch.Tensor, iterations: int) -> torch.Tensor:
    """Jacobi sweeps of ``v = w_n + (I - n n^T) W v`` (see the module docstring)."""
    velocity = previous
    for _ in range(iterations):
        mean = torch.sparse.mm(neighbour_mean, velocity)
        velocity = normal_velocity + mean - (mean * normals).sum(1, keepdim=True) * normals
    return velocity if iterations else normal_velocity


@dataclass
class TemplateMotion:
    """The tracked template mesh: ``vertices[k]`` (template units) at template phase ``k / K``,
    ``k = 0..K`` (the last entry closes the cycle), with shared ``faces``."""

    vertices: np.ndarray
    faces: np.ndarray
    closure_error: float = 0.0
    level: float = 0.0

    @property
    def n_steps(self) -> int:
        return len(self.vertices) - 1

    def at(self, template_phases: np.ndarray) -> np.ndarray:
        """Vertices ``(T, V, 3)`` at template phases ``(T,)`` in [0, 1], linear between stored phases."""
        position = np.clip(np.asarray(template_phases, float), 0.0, 1.0) * self.n_steps
        low = np.minimum(np.floor(position).astype(int), self.n_steps - 1)
        weight = (position - low)[:, None, None]
        return (1.0 - weight) * self.vertices[low] + weight * self.vertices[low + 1]


def track_template(atlas: Atlas, config: Optional[MeshConfig] = None,
                   mesh: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> TemplateMotion:
    """March the template once at ``t' = 0`` and track its vertices over the cycle (module docstring)."""
    config = config or MeshConfig()
    vertices, faces = mesh if mesh is not None else extract_template_mesh(atlas, 0.0, config)
    level = float(getattr(atlas, "template_level", 0.0))
    x = torch.from_numpy(vertices.astype(np.float32)).to(atlas.device)
    steps = config.tracking_steps
    x = project_to_level_set(atlas, x, torch.zeros(len(x), device=atlas.device), config.newton_iterations, level)
    table = [x.cpu().numpy()]
    neighbour_mean = neighbour_mean_operator(faces, len(vertices), atlas.device)
    velocity = torch.zeros_like(x)
    for k in range(steps):
        t0, dt = k / steps, 1.0 / steps
        normal_velocity, normals = _normal_velocity(atlas, x, t0)
        velocity = _smooth_velocity(normal_velocity, normals, neighbour_mean, velocity, config.smoothing_iterations)
        x = x + dt * velocity
        x = project_to_level_set(atlas, x, torch.full((len(x),), (k + 1) / steps, device=atlas.device),
                                 config.newton_iterations, level)
        table.append(x.cpu().numpy())
    table = np.stack(table).astype(np.float64)
    closure = float(np.linalg.norm(table[-1] - table[0], axis=1).mean())
    return TemplateMotion(table, faces, closure, level)


def _template_vertices(atlas: Atlas, motion: TemplateMotion, template_phases: np.ndarray,
                       config: MeshConfig) -> torch.Tensor:
    """``(T, V, 3)`` template vertices at the given template phases, projected onto the level set."""
    vertices = torch.from_numpy(motion.at(template_phases).astype(np.float32)).to(atlas.device)
    n_frames, n_vertices = vertices.shape[:2]
    phases = torch.from_numpy(np.repeat(template_phases, n_vertices).astype(np.float32)).to(atlas.device)
    projected = project_to_level_set(atlas, vertices.reshape(-1, 3), phases, 1 if config.newton_iterations else 0,
                                     motion.level)
    return projected.reshape(n_frames, n_vertices, 3)


def template_phases_of(atlas: Atlas, subject: FittedSubject, phases: Iterable[float]) -> np.ndarray:
    """``D2(t, c_t)`` for the subject's phases ``t``."""
    phases = torch.tensor(np.asarray(list(phases), float), dtype=torch.float32, device=atlas.device)
    with torch.no_grad():
        return atlas.module.temporal(phases, subject.time_code[None].to(atlas.device)).cpu().numpy().astype(float)


RESIDUAL_TRANSPORTS = ("material", "spatial")


def subject_mesh_sequence(atlas: Atlas, subject: FittedSubject, phases: Iterable[float],
                          motion: Optional[TemplateMotion] = None, config: Optional[MeshConfig] = None, *,
                          residual_transport: str = "spatial") -> MeshSequence:
    """The subject's LV myocardium mesh (RAS mm) at each phase, all frames sharing the template's faces;
    point data ``displacement_mm`` = distance of each vertex from its position in the first frame.

    ``residual_transport`` (subjects with a residual warp, :mod:`.residual`): ``"spatial"`` (default)
    applies ``R^-1`` at each frame's canonical position, as the fit does on every observed frame;
    ``"material"`` moves each vertex's ED correction ``R^-1(y_0) - y_0`` (canonical units) with the vertex.
    Measured (benchmarks.atlas --quick, 2 + 2 hearts): material is worse where frames beyond ED were
    fitted (lofted all 0.75 -> 0.81 mm, ED+ES 0.88 -> 1.00 mm) and mixed from ED alone. A subject's
    contraction-amplitude term (``FittedSubject.motion_residual``, :mod:`.residual`) enters at each frame
    as the warp ``C0 + m(t') C1`` at its template phase ``t'`` (in ``"material"`` as the spatial difference
    ``R^-1(., t) - R^-1(., 0)`` added to the carried ED correction). A subject's transmural offset
    (``FittedSubject.offset`` / ``motion_offset``, :mod:`.residual`) then moves each vertex by
    ``w0 + m(t') w1`` along the mesh's outward normal (canonical frame)."""
    if residual_transport not in RESIDUAL_TRANSPORTS:
        raise AtlasError(f"unknown residual_transport {residual_transport!r}; expected one of {RESIDUAL_TRANSPORTS}")
    config = config or MeshConfig()
    motion = motion or track_template(atlas, config)
    phases = np.asarray(list(phases), float)
    template_phases = template_phases_of(atlas, subject, phases)
    vertices = _template_vertices(atlas, motion, template_phases, config)
    n_frames, n_vertices = vertices.shape[:2]
    code = subject.shape_code[None].to(atlas.device)
    residual = None if subject.residual is None else subject.residual.to(atlas.device)
    motion_residual = None if subject.motion_residual is None else subject.motion_residual.to(atlas.device)
    offset, motion_offset = (None if w is None else w.to(atlas.device) for w in (subject.offset, subject.motion_offset))
    faces = torch.as_tensor(np.asarray(motion.faces), dtype=torch.long, device=atlas.device)
    profiles = contraction_profile(torch.as_tensor(template_phases, dtype=torch.float64),
                                   atlas.template_es_phase).numpy()
    out = np.empty((n_frames, n_vertices, 3))
    with torch.no_grad():
        correction = None
        if residual is not None and residual_transport == "material":
            ed = atlas.module.spatial.inverse(_template_vertices(atlas, motion, np.zeros(1), config)[0], code)
            correction = invert_residual(ed, residual) - ed
        for index in range(n_frames):
            flowed = atlas.module.spatial.inverse(vertices[index], code)
            if correction is not None:  # ED correction carried; the motion part R(., t) - R(., 0) spatially
                canonical = flowed + correction
                if motion_residual is not None:
                    canonical = canonical + invert_residual(flowed, coefficients_at(residual, motion_residual,
                                                                                    profiles[index])) \
                        - invert_residual(flowed, residual)
            else:
                canonical = invert_residual(flowed, coefficients_at(residual, motion_residual, profiles[index]))
            canonical = offset_along_normals(canonical, faces, offset, motion_offset, float(profiles[index]))
            out[index] = subject.frame.to_ras(canonical.cpu().numpy().astype(float))
    if not np.all(np.isfinite(out)):
        raise AtlasError(f"{subject.subject_id}: the inverse flow produced non-finite vertices")
    displacement = np.linalg.norm(out - out[:1], axis=-1)
    return MeshSequence(out, motion.faces, phases, name=f"{subject.subject_id}_atlas_myocardium",
                        point_data={"displacement_mm": displacement})


def template_mesh_sequence(atlas: Atlas, phases: Iterable[float], motion: Optional[TemplateMotion] = None,
                           config: Optional[MeshConfig] = None, scale_mm: Optional[float] = None) -> MeshSequence:
    """The template (atlas) mesh at template phases ``t'``, scaled to mm by ``scale_mm`` (default: the
    training subjects' mean scale) about the canonical origin (LV frame axes: x to RV, z to apex)."""
    config = config or MeshConfig()
    motion = motion or track_template(atlas, config)
    phases = np.asarray(list(phases), float)
    vertices = _template_vertices(atlas, motion, phases, config).cpu().numpy().astype(float)
    scale = float(scale_mm if scale_mm is not None else atlas.mean_scale_mm)
    return MeshSequence(vertices * scale, motion.faces, phases, name="atlas_template_myocardium")


def enclosed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Volume enclosed by a closed, outward mesh (units of the vertices cubed)."""
    return mesh_volume_moments(vertices, faces)[0]


__all__ = ["RESIDUAL_TRANSPORTS", "TemplateMotion", "extract_template_mesh", "track_template", "subject_mesh_sequence",
           "template_mesh_sequence", "template_phases_of", "project_to_level_set", "largest_component",
           "enclosed_volume", "sdf_and_gradients", "neighbour_mean_operator"]
