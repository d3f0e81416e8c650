"""Per-frame volumes (ml) of label-map regions and of closed triangle meshes.

Label maps: voxel count x voxel volume (from the IJK->RAS matrix). Meshes: enclosed volume from
``vtkMassProperties`` (divergence theorem over the triangles, mm^3 -> ml). A mesh must be closed and
consistently oriented (checked once, the connectivity being shared by all frames); a shell such as the
LV myocardium must have its inner surface facing inwards (towards the cavity), so that its volume is the
wall's, as marching cubes on a myocardium mask or SDF produces.
"""

from __future__ import annotations

import numpy as np
from vtkmodules.vtkFiltersCore import vtkMassProperties

from ..data.image_sequence import ImageSequence
from ..data.mesh_sequence import MeshSequence
from ..metrics._vtk_mesh import set_points, to_polydata
from ..metrics.topology import mesh_topology

ML_PER_MM3 = 1e-3


def label_volumes_ml(labels: ImageSequence, label: int) -> np.ndarray:
    """``(t,)`` volume (ml) of the voxels equal to ``label`` in each frame."""
    if not isinstance(labels, ImageSequence):
        raise ValueError(f"expected an ImageSequence of labels, got {type(labels).__name__}")
    counts = np.count_nonzero(labels.array == label, axis=(1, 2, 3))
    return counts.astype(float) * labels.voxel_volume_ml()


def check_closed_mesh(mesh: MeshSequence) -> None:
    """Raise ValueError unless the mesh is closed, manifold and consistently oriented."""
    if not isinstance(mesh, MeshSequence):
        raise ValueError(f"expected a MeshSequence, got {type(mesh).__name__}")
    topology = mesh_topology(mesh)
    name = mesh.name or "mesh"
    if not topology.is_closed:
        raise ValueError(f"{name}: not closed ({topology.n_boundary_edges} boundary edges); no enclosed volume")
    if not topology.is_manifold:
        raise ValueError(f"{name}: not manifold; its enclosed volume is undefined")
    if not topology.is_consistently_oriented:
        raise ValueError(f"{name}: faces are not consistently oriented; fix the winding first")


def mesh_volumes_ml(mesh: MeshSequence) -> np.ndarray:
    """``(t,)`` enclosed volume (ml) of a closed triangle mesh in each frame (vtkMassProperties)."""
    check_closed_mesh(mesh)
    polydata = to_polydata(mesh.vertices[0], mesh.faces)
    mass = vtkMassProperties()
    mass.SetInputData(polydata)
    volumes = np.empty(mesh.n_frames)
    for frame in range(mesh.n_frames):  # one VTK call per frame; the work per frame is in C++
        set_points(polydata, mesh.vertices[frame])
        mass.Modified()
        mass.Update()
        volumes[frame] = mass.GetVolume() * ML_PER_MM3
    return volumes


__all__ = ["ML_PER_MM3", "label_volumes_ml", "check_closed_mesh", "mesh_volumes_ml"]
