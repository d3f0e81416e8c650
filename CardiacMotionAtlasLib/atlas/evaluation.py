"""Measurements of an atlas and its meshes: LV cavity volume from a myocardium mesh, diffeomorphism
checks of ``D1`` and ``D2``, and correspondence errors against known material points.

- LV cavity volume (ml) of a closed LV *myocardium* mesh: the mesh is voxelised
  (``vtkPolyDataToImageStencil``) in the subject's LV-aligned frame (z = long axis) at ``spacing_mm``;
  in every short-axis slice the holes of the myocardium ring are filled, and the cavity is filled
  minus myocardium (disk summation, as from SAX segmentations; slices where the ring is open, above
  the base, hold no cavity).
- ``D1`` Jacobian: ``D1`` evaluated on a grid over ``[-1, 1]^3`` as a displacement field, determinant by
  :func:`~CardiacMotionAtlasLib.metrics.jacobian_determinant`.
- ``D2`` folds: number of consecutive phase pairs (of a dense grid) with ``D2(t_{i+1}) <= D2(t_i)``.
"""

from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch
from scipy import ndimage
from vtkmodules.util.numpy_support import vtk_to_numpy
from vtkmodules.vtkImagingStencil import vtkImageStencilToImage, vtkPolyDataToImageStencil

from ..data.displacement_field import DisplacementField
from ..data.mesh_sequence import MeshSequence
from ..metrics._vtk_mesh import to_polydata
from ..metrics.jacobian import jacobian_determinant
from .frame import CanonicalFrame
from .model import Atlas


def _voxelise(vertices: np.ndarray, faces: np.ndarray, spacing: float, margin: float = 3.0):
    low = vertices.min(axis=0) - margin
    shape = np.ceil((vertices.max(axis=0) + margin - low) / spacing).astype(int) + 1
    stencil = vtkPolyDataToImageStencil()
    stencil.SetInputData(to_polydata(vertices, faces))
    stencil.SetOutputOrigin(*low)
    stencil.SetOutputSpacing(spacing, spacing, spacing)
    stencil.SetOutputWholeExtent(0, shape[0] - 1, 0, shape[1] - 1, 0, shape[2] - 1)
    image = vtkImageStencilToImage()
    image.SetInputConnection(stencil.GetOutputPort())
    image.SetInsideValue(1)
    image.SetOutsideValue(0)
    image.SetOutputScalarTypeToUnsignedChar()
    image.Update()
    return vtk_to_numpy(image.GetOutput().GetPointData().GetScalars()).reshape(shape[2], shape[1], shape[0]) > 0


def lv_cavity_volume_ml(vertices_ras: np.ndarray, faces: np.ndarray, frame: CanonicalFrame,
                        spacing_mm: float = 1.0) -> float:
    """LV blood-pool volume (ml) enclosed by a closed LV myocardium mesh (see the module docstring)."""
    local = frame.to_local(vertices_ras)
    myocardium = _voxelise(local, np.asarray(faces), spacing_mm)  # (z, y, x): z = long axis
    cavity = 0
    for section in myocardium:
        if section.any():
            cavity += int(np.count_nonzero(ndimage.binary_fill_holes(section) & ~section))
    return cavity * spacing_mm**3 / 1000.0


def cavity_volume_curve(mesh: MeshSequence, frame: CanonicalFrame, spacing_mm: float = 1.0) -> np.ndarray:
    """``(t,)`` LV cavity volume (ml) of every frame of a myocardium mesh sequence."""
    return np.array([lv_cavity_volume_ml(mesh.vertices[i], mesh.faces, frame, spacing_mm)
                     for i in range(mesh.n_frames)])


def d1_jacobian_determinant(atlas: Atlas, shape_code: torch.Tensor, resolution: int = 24) -> np.ndarray:
    """``(n, n, n)`` Jacobian determinant of ``D1(., c_p)`` on a grid over ``[-1, 1]^3`` (canonical)."""
    axis = np.linspace(-1.0, 1.0, resolution)
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    points = np.stack([x, y, z], axis=-1).reshape(-1, 3)
    with torch.no_grad():
        mapped, _ = atlas.module.spatial(torch.from_numpy(points.astype(np.float32)).to(atlas.device),
                                         shape_code[None].to(atlas.device),
                                         torch.zeros(len(points), dtype=torch.long, device=atlas.device))
    displacement = (mapped.cpu().numpy().astype(float) - points).reshape(resolution, resolution, resolution, 3)
    step = axis[1] - axis[0]
    ijk_to_ras = np.diag([step, step, step, 1.0])
    ijk_to_ras[:3, 3] = -1.0
    return jacobian_determinant(DisplacementField(displacement.transpose(3, 0, 1, 2), ijk_to_ras))


def d2_folds(atlas: Atlas, time_code: torch.Tensor, samples: int = 2001) -> Dict[str, float]:
    """``D2`` on a dense phase grid: folds (non-increasing steps), ``D2(0)``, ``D2(1)``, min slope."""
    phases = torch.linspace(0.0, 1.0, samples, device=atlas.device)
    with torch.no_grad():
        values = atlas.module.temporal(phases, time_code[None].to(atlas.device)).cpu().numpy().astype(float)
    steps = np.diff(values)
    return {"folds": int(np.count_nonzero(steps <= 0)), "start": float(values[0]), "end": float(values[-1]),
            "min_slope": float(steps.min() * (samples - 1))}


def temporal_correspondence_error(mesh: MeshSequence, positions_fn, reference_frame: int = 0) -> np.ndarray:
    """``(t,)`` mean distance (mm) between each vertex at frame ``t`` and where its material point
    (its position at ``reference_frame``) really is at that phase: ``positions_fn(points_ras, phase)``
    (e.g. :meth:`PhantomHeart.positions` for ED material points)."""
    reference = mesh.vertices[reference_frame]
    return np.array([np.linalg.norm(mesh.vertices[i] - positions_fn(reference, mesh.phases[i]), axis=1).mean()
                     for i in range(mesh.n_frames)])


class SurfaceParameterisation:
    """Locates points on a reference triangle mesh (face + barycentric coordinates) by their nearest
    point among dense area-uniform samples, so the same location can be read on another mesh with the
    same faces (e.g. the phantom's ring meshes, which correspond across subjects)."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, n_samples: int = 200000, seed: int = 0) -> None:
        from scipy.spatial import cKDTree

        corners = vertices[faces]
        areas = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
        rng = np.random.default_rng(seed)
        self.face = rng.choice(len(faces), size=n_samples, p=areas / areas.sum())
        r1, r2 = np.sqrt(rng.random(n_samples)), rng.random(n_samples)
        self.weights = np.stack([1.0 - r1, r1 * (1.0 - r2), r1 * r2], axis=1)
        self.faces = faces
        self.tree = cKDTree(np.einsum("nk,nkd->nd", self.weights, corners[self.face]))

    def nearest(self, points: np.ndarray) -> np.ndarray:
        """The dense surface sample nearest to each of ``points`` (closest point, ~0.3 mm quantisation)."""
        return self.tree.data[self.tree.query(points)[1]]

    def transfer(self, points: np.ndarray, target_vertices: np.ndarray) -> np.ndarray:
        """Positions on ``target_vertices`` (same faces) of the locations nearest to ``points``."""
        nearest = self.tree.query(points)[1]
        return np.einsum("nk,nkd->nd", self.weights[nearest], target_vertices[self.faces[self.face[nearest]]])


def cross_subject_correspondence_error(vertices_a: np.ndarray, vertices_b: np.ndarray,
                                       truth_a: np.ndarray, truth_b: np.ndarray, truth_faces: np.ndarray,
                                       n_samples: int = 200000) -> float:
    """Mean distance (mm) between vertex ``i`` of subject B and the true counterpart of vertex ``i`` of
    subject A: A's vertex is located on A's ground-truth mesh, the same location read on B's."""
    counterpart = SurfaceParameterisation(truth_a, truth_faces, n_samples).transfer(vertices_a, truth_b)
    return float(np.linalg.norm(vertices_b - counterpart, axis=1).mean())


def summarise(values: Sequence[float]) -> Dict[str, float]:
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "std": float(values.std()), "max": float(values.max())}


__all__ = ["lv_cavity_volume_ml", "cavity_volume_curve", "d1_jacobian_determinant", "d2_folds",
           "temporal_correspondence_error", "SurfaceParameterisation", "cross_subject_correspondence_error",
           "summarise"]
