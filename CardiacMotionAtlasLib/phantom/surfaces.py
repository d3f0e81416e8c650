"""Closed triangle meshes of the phantom's material surfaces (LV frame, ED, mm).

Meshes are built from rings of the truncated ellipsoids with fixed connectivity, so pushing the
vertices through the motion law gives meshes with dense correspondence over the cycle (and, through the
shared ring parameterisation, across subjects). Faces are counter-clockwise seen from outside.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from .shape import HeartShape

SURFACE_NAMES = ("myocardium", "lv_cavity", "epicardium")
"""``myocardium``: closed LV wall (epicardium + base annulus + endocardium);
``lv_cavity``: endocardium closed by the base (mitral/aortic valve) plane = LV blood pool;
``epicardium``: epicardium closed by the base plane."""


def _cap_rings(a: float, c: float, z_base: float, n_rings: int, n_around: int) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Apex pole plus ``n_rings`` rings from near the apex down to the base plane (last ring at
    ``z = z_base``). Returns (points, [ring point arrays]) with the pole as the first ring of one point."""
    eta_base = np.arccos(np.clip(z_base / c, -1.0, 1.0))
    etas = np.arange(1, n_rings + 1) * eta_base / n_rings
    phis = np.arange(n_around) * 2.0 * np.pi / n_around
    rings = [np.array([[0.0, 0.0, c]])]
    for eta in etas:
        rings.append(np.stack([a * np.sin(eta) * np.cos(phis), a * np.sin(eta) * np.sin(phis),
                               np.full(n_around, c * np.cos(eta))], axis=-1))
    rings[-1][:, 2] = z_base
    return rings


def disk_rings(outer_ring: np.ndarray, inner_ring: np.ndarray, n_steps: int) -> List[np.ndarray]:
    """Rings interpolated strictly between two rings in the base plane (excluding both ends)."""
    return [outer_ring + (inner_ring - outer_ring) * (k / n_steps) for k in range(1, n_steps)]


def stitch_rings(rings: List[np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
    """Triangulate a path of rings (a ring of one point is a pole) into one oriented surface."""
    offsets = np.cumsum([0] + [len(r) for r in rings])
    vertices = np.concatenate(rings, axis=0)
    faces = []
    for k in range(len(rings) - 1):
        a_idx = offsets[k] + np.arange(len(rings[k]))
        b_idx = offsets[k + 1] + np.arange(len(rings[k + 1]))
        if len(a_idx) == 1:  # pole fan
            n = len(b_idx)
            faces.append(np.stack([np.full(n, a_idx[0]), b_idx, np.roll(b_idx, -1)], axis=-1))
        elif len(b_idx) == 1:
            n = len(a_idx)
            faces.append(np.stack([a_idx, np.full(n, b_idx[0]), np.roll(a_idx, -1)], axis=-1))
        else:
            a0, a1 = a_idx, np.roll(a_idx, -1)
            b0, b1 = b_idx, np.roll(b_idx, -1)
            faces.append(np.stack([a0, b0, b1], axis=-1))
            faces.append(np.stack([a0, b1, a1], axis=-1))
    return vertices, np.concatenate(faces, axis=0).astype(np.int64)


def material_surface(shape: HeartShape, name: str, n_rings: int = 40, n_around: int = 80,
                     n_base: int = 4) -> Tuple[np.ndarray, np.ndarray]:
    """Closed surface ``name`` (one of :data:`SURFACE_NAMES`) at ED in the LV frame (mm):
    ``(vertices (n, 3), faces (m, 3))``, faces counter-clockwise seen from outside."""
    epi = _cap_rings(shape.a_epi, shape.c_epi, shape.z_base, n_rings, n_around)
    endo = _cap_rings(shape.a_endo, shape.c_endo, shape.z_base, n_rings, n_around)
    centre = np.array([[0.0, 0.0, shape.z_base]])
    if name == "myocardium":
        annulus = disk_rings(epi[-1], endo[-1], n_base)
        rings = epi + annulus + endo[::-1]
    elif name == "lv_cavity":
        rings = endo + disk_rings(endo[-1], np.repeat(centre, n_around, 0), n_base) + [centre]
    elif name == "epicardium":
        rings = epi + disk_rings(epi[-1], np.repeat(centre, n_around, 0), n_base + 2) + [centre]
    else:
        raise ValueError(f"unknown surface {name!r}; expected one of {SURFACE_NAMES}")
    return stitch_rings(rings)


__all__ = ["SURFACE_NAMES", "disk_rings", "material_surface", "stitch_rings"]
