"""Baselines for motion recovery from sparse frames (used by ``benchmarks.atlas``), each seeing only what
its setting observes:

- :func:`cohort_mean_motion`: the training cohort's mean displacement from ED, in the canonical frame,
  applied to a subject's ED mesh. For each training subject the displacement of its ED vertex nearest
  (in canonical units) to the subject's vertex is taken at the same normalised phase; the mean over the
  cohort is added to the vertex. Training displacements come from the phantom's material points.
- :func:`sdf_blend_meshes`: the observed frames' signed distance fields on a RAS grid, blended linearly
  in time between cyclically neighbouring observed frames, marched at level 0 (one mesh per phase, no
  shared connectivity).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
from scipy.spatial import cKDTree

from ..data.mesh_sequence import MeshSequence
from ..geometry.affine import apply_affine
from ..metrics.surface import point_to_surface_distance
from .frame import CanonicalFrame

Mesh = Tuple[np.ndarray, np.ndarray]


def cohort_mean_motion(train_hearts: Sequence, train_frames: Sequence[CanonicalFrame], ed_vertices_ras: np.ndarray,
                       faces: np.ndarray, frame: CanonicalFrame, phases: Sequence[float]) -> MeshSequence:
    """The subject's ED mesh (RAS mm) moved by the cohort's mean canonical motion at ``phases``."""
    phases = np.asarray(phases, float)
    query = frame.to_canonical(ed_vertices_ras)
    displacement = np.zeros((len(phases),) + query.shape)
    for heart, train_frame in zip(train_hearts, train_frames):
        sequence = heart.mesh_sequence("myocardium", phases)
        canonical = train_frame.to_canonical(sequence.vertices)
        reference = train_frame.to_canonical(heart.surface("myocardium", 0.0)[0])
        nearest = cKDTree(reference).query(query)[1]
        displacement += canonical[:, nearest] - reference[nearest][None]
    displacement /= len(train_hearts)
    moved = frame.to_ras(query[None] + displacement)
    return MeshSequence(moved, faces, phases, name="cohort_mean_motion")


def _march(volume: np.ndarray, ijk_to_ras: np.ndarray) -> Mesh:
    from skimage.measure import marching_cubes

    vertices_kji, faces = marching_cubes(volume, level=0.0)[:2]
    vertices = apply_affine(ijk_to_ras, vertices_kji[:, ::-1])
    faces = faces.astype(np.int64)
    corners = vertices[faces] - vertices.mean(axis=0)
    if np.einsum("ij,ij->i", corners[:, 0], np.cross(corners[:, 1], corners[:, 2])).sum() < 0:
        faces = faces[:, [0, 2, 1]]
    return vertices, faces


def sdf_blend_meshes(heart, observed_phases: Sequence[float], phases: Sequence[float],
                     grid_mm: float = 1.5, margin_mm: float = 8.0) -> List[Mesh]:
    """Meshes (RAS mm) at ``phases`` from the linear-in-time blend of the exact myocardium SDFs of the
    observed phases (``observed_phases[0]`` must be ED, 0)."""
    observed = np.sort(np.asarray(observed_phases, float))
    surfaces = [heart.surface("myocardium", p) for p in observed]
    low = np.min([v.min(axis=0) for v, _ in surfaces], axis=0) - margin_mm
    high = np.max([v.max(axis=0) for v, _ in surfaces], axis=0) + margin_mm
    shape_xyz = np.ceil((high - low) / grid_mm).astype(int) + 1
    ijk_to_ras = np.diag([grid_mm, grid_mm, grid_mm, 1.0])
    ijk_to_ras[:3, 3] = low
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape_xyz[::-1]), indexing="ij")
    points = apply_affine(ijk_to_ras, np.stack([i, j, k], axis=-1).reshape(-1, 3).astype(float))
    fields = [point_to_surface_distance(points, v, f, signed=True).reshape(k.shape) for v, f in surfaces]
    knots = np.append(observed, 1.0)
    out = []
    for phase in np.asarray(phases, float) % 1.0:
        index = int(np.searchsorted(knots, phase, side="right") - 1)
        weight = (phase - knots[index]) / (knots[index + 1] - knots[index])
        blended = (1.0 - weight) * fields[index] + weight * fields[(index + 1) % len(fields)]
        out.append(_march(blended, ijk_to_ras))
    return out


__all__ = ["cohort_mean_motion", "sdf_blend_meshes"]
