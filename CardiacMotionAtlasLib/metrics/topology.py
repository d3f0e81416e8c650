"""Topology of a triangle mesh by numpy edge counting and scipy graph components.

Definitions used:
- *closed*: every edge is shared by exactly two faces (no boundary).
- *edge-manifold*: no edge is shared by more than two faces.
- *vertex-manifold*: the faces around every vertex form a single fan (connected through shared edges);
  a "bow-tie" vertex joining two fans fails. Vertices on non-manifold edges also fail.
- *consistently oriented*: each edge shared by two faces is traversed in opposite directions by them.
- *orientable*: some choice of face orientations is consistent (checked on the orientation double cover).
- Counts use only vertices referenced by faces; Euler characteristic ``chi = V - E + F``; for a closed,
  manifold, orientable mesh with ``C`` components, genus ``g = C - chi / 2`` (a sphere 0, a torus 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ._vtk_mesh import MeshLike, as_mesh


@dataclass(frozen=True)
class MeshTopology:
    """Topological summary of a triangle mesh (see the module docstring for the definitions)."""

    n_vertices: int
    n_edges: int
    n_faces: int
    n_components: int
    n_boundary_edges: int
    n_nonmanifold_edges: int
    n_nonmanifold_vertices: int
    n_degenerate_faces: int
    is_closed: bool
    is_edge_manifold: bool
    is_vertex_manifold: bool
    is_consistently_oriented: bool
    is_orientable: bool
    euler_characteristic: int
    genus: Optional[int]

    @property
    def is_manifold(self) -> bool:
        """Edge- and vertex-manifold, without degenerate faces."""
        return self.is_edge_manifold and self.is_vertex_manifold and self.n_degenerate_faces == 0


def _components(n_nodes: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(first), dtype=np.int8), (first, second)), shape=(n_nodes, n_nodes))
    return connected_components(graph, directed=False)[1]


def mesh_topology(mesh: MeshLike) -> MeshTopology:
    """Topology of ``(vertices, faces)`` or of a :class:`MeshSequence` (connectivity shared by frames)."""
    vertices, faces = as_mesh(mesh, frame=0)
    n_faces = len(faces)
    if n_faces == 0:
        raise ValueError("mesh has no faces")
    n_all = len(vertices)
    degenerate = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 2] == faces[:, 0])

    # half-edge h = 3 f + p runs from faces[f, p] to faces[f, (p + 1) % 3]
    half = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    valid = np.flatnonzero(half[:, 0] != half[:, 1])
    low, high = half[valid].min(axis=1), half[valid].max(axis=1)
    _, edge_of, counts = np.unique(low * n_all + high, return_inverse=True, return_counts=True)
    n_edges = len(counts)

    # the two half-edges of every edge shared by exactly two faces
    order = np.argsort(edge_of, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    paired = counts == 2
    h1, h2 = valid[order[starts[paired]]], valid[order[starts[paired] + 1]]
    consistent = (half[h1, 0] < half[h1, 1]) != (half[h2, 0] < half[h2, 1])

    # vertex fans: corners (3 f + p) linked across shared edges; one component per fan
    def corner_of(h: np.ndarray, vertex: np.ndarray) -> np.ndarray:
        return np.where(half[h, 0] == vertex, h, 3 * (h // 3) + (h % 3 + 1) % 3)

    v_low, v_high = half[h1].min(axis=1), half[h1].max(axis=1)
    corner_labels = _components(
        3 * n_faces,
        np.concatenate([corner_of(h1, v_low), corner_of(h1, v_high)]),
        np.concatenate([corner_of(h2, v_low), corner_of(h2, v_high)]),
    )
    corner_vertex = faces.reshape(-1)
    fans = np.unique(corner_vertex * (3 * n_faces) + corner_labels) // (3 * n_faces)
    fans_per_vertex = np.bincount(fans, minlength=n_all)
    referenced = np.bincount(corner_vertex, minlength=n_all) > 0
    n_nonmanifold_vertices = int(np.count_nonzero(fans_per_vertex[referenced] > 1))

    # orientation double cover: faces f (as given) and f + F (flipped)
    f1, f2 = h1 // 3, h2 // 3
    cover = _components(
        2 * n_faces,
        np.concatenate([f1, f1 + n_faces]),
        np.concatenate([np.where(consistent, f2, f2 + n_faces), np.where(consistent, f2 + n_faces, f2)]),
    )
    is_orientable = bool(np.all(cover[:n_faces] != cover[n_faces:]))

    vertex_labels = _components(n_all, low, high)
    n_components = len(np.unique(vertex_labels[referenced]))
    n_vertices = int(np.count_nonzero(referenced))
    chi = n_vertices - n_edges + n_faces
    is_closed = bool(np.all(counts == 2))
    is_edge_manifold = bool(np.all(counts <= 2))
    is_vertex_manifold = n_nonmanifold_vertices == 0
    manifold = is_edge_manifold and is_vertex_manifold and not degenerate.any()
    genus = int(n_components - chi // 2) if (is_closed and manifold and is_orientable and chi % 2 == 0) else None
    return MeshTopology(
        n_vertices=n_vertices,
        n_edges=n_edges,
        n_faces=n_faces,
        n_components=n_components,
        n_boundary_edges=int(np.count_nonzero(counts == 1)),
        n_nonmanifold_edges=int(np.count_nonzero(counts > 2)),
        n_nonmanifold_vertices=n_nonmanifold_vertices,
        n_degenerate_faces=int(np.count_nonzero(degenerate)),
        is_closed=is_closed,
        is_edge_manifold=is_edge_manifold,
        is_vertex_manifold=is_vertex_manifold,
        is_consistently_oriented=bool(np.all(consistent)) and is_edge_manifold,
        is_orientable=is_orientable and is_edge_manifold,
        euler_characteristic=int(chi),
        genus=genus,
    )


def is_closed_mesh(mesh: MeshLike) -> bool:
    """True if every edge of the mesh is shared by exactly two faces."""
    return mesh_topology(mesh).is_closed


__all__ = ["MeshTopology", "mesh_topology", "is_closed_mesh"]
