"""Writing a NISF++ reconstruction: 4D intensity and label volumes, corrected slice geometries and
intensity scales, the fitted subject, optional meshes. Every file is written atomically.

``<out>/``::

    intensity.nii.gz        (t, z, y, x) float32 intensities (study's stored units), IJK->RAS in the header
    labels.nii.gz           (t, z, y, x) uint8 labels (0 bg, 1 LV BP, 2 LV myo, 3 RV BP)
    slices.json             per slice: nominal and corrected IJK->RAS, RAS rigid transform, intensity scale;
                            the subject's standardised frame and global pose
    subject_fit.pt          latent, pose, slice offsets and scales (``weights_only`` checkpoint)
    meshes/<label>_<nnn>.vtp  marching-cubes surfaces of the sampled labels (optional)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np

from ..io.atomic import atomic_write_text
from ..io.meshes import write_polydata
from ..io.nifti import write_nifti
from ..io.vtk_convert import mesh_to_polydata
from .fit import save_subject_fit
from .model import SubjectFit
from .sampling import label_meshes, sample_grid, standard_grid

MESH_LABEL_NAMES = {1: "lv_bloodpool", 2: "lv_myocardium", 3: "rv_bloodpool"}


def write_reconstruction(fit: SubjectFit, out: Union[str, Path], *, spacing_mm: float = 1.25,
                         grid: Optional[tuple] = None, phases: Optional[Sequence[float]] = None,
                         mesh_labels: Sequence[int] = (), chunk: Optional[int] = None, progress=None) -> Dict[str, str]:
    """Sample ``fit`` on ``grid`` (``(ijk_to_ras, shape_zyx)``; default: an isotropic ``spacing_mm`` grid
    aligned with the subject's standardised frame) at ``phases`` (default: the study's frames) and write
    the outputs listed in the module docstring. Returns ``{what: path}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ijk_to_ras, shape = grid if grid is not None else standard_grid(fit, spacing_mm)
    sampled = sample_grid(fit, ijk_to_ras, shape, phases, chunk=chunk, progress=progress,
                          name=fit.subject.subject_id)
    paths = {
        "intensity": str(write_nifti(sampled.intensity, out / "intensity.nii.gz")),
        "labels": str(write_nifti(sampled.labels, out / "labels.nii.gz", labels=True)),
    }
    report = fit.geometry_report()
    report["grid"] = {"ijk_to_ras": np.asarray(ijk_to_ras).tolist(), "shape_zyx": [int(v) for v in shape],
                      "phases": sampled.labels.phases.tolist()}
    atomic_write_text(out / "slices.json", json.dumps(report, indent=2) + "\n")
    paths["slices"] = str(out / "slices.json")
    paths["subject_fit"] = str(save_subject_fit(fit, out / "subject_fit.pt"))
    for label in mesh_labels:
        name = MESH_LABEL_NAMES.get(int(label), f"label{int(label)}")
        for frame, (vertices, faces) in enumerate(label_meshes(sampled.labels, int(label))):
            if len(faces):
                path = out / "meshes" / f"{name}_{frame:03d}.vtp"
                path.parent.mkdir(exist_ok=True)
                write_polydata(mesh_to_polydata(vertices, faces), path)
        paths[f"meshes_{name}"] = str(out / "meshes")
    return paths


__all__ = ["write_reconstruction", "MESH_LABEL_NAMES"]
