"""Writing a NISF++ reconstruction: 4D intensity and label volumes, corrected slice geometries and
intensity scales, the fitted subject, optional meshes. Every file is written atomically; the runner
(:func:`~CardiacMotionAtlasLib.nisf.runner.reconstruct_subject`) writes them into a staging folder and
publishes them at once.

``<out>/``::

    intensity.nii.gz        (t, z, y, x) float32 intensities (study's stored units), IJK->RAS in the header
    labels.nii.gz           (t, z, y, x) uint8 labels (0 bg, 1 LV BP, 2 LV myo, 3 RV BP)
    slices.json             per slice: nominal and corrected IJK->RAS, RAS rigid transform, intensity scale;
                            the subject's standardised frame and global pose (and the sampled grid)
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
from .sampling import SampledSequence, label_meshes, sample_grid, standard_grid

MESH_LABEL_NAMES = {1: "lv_bloodpool", 2: "lv_myocardium", 3: "rv_bloodpool"}


def write_fit(fit: SubjectFit, out: Union[str, Path], grid: Optional[dict] = None) -> Dict[str, Path]:
    """Write ``slices.json`` (with ``grid``, the sampled grid's record, when given) and ``subject_fit.pt``."""
    out = Path(out)
    report = fit.geometry_report()
    if grid is not None:
        report["grid"] = grid
    atomic_write_text(out / "slices.json", json.dumps(report, indent=2) + "\n")
    return {"slices": out / "slices.json", "subject_fit": Path(save_subject_fit(fit, out / "subject_fit.pt"))}


def write_sampled(fit: SubjectFit, sampled: SampledSequence, out: Union[str, Path], *,
                  mesh_labels: Sequence[int] = ()) -> Dict[str, Path]:
    """Write the sampled sequences of ``fit`` (on the grid of ``sampled.labels``) and every file of the
    module docstring into ``out`` (created). Returns ``{what: path}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = sampled.labels
    paths = {"labels": Path(write_nifti(labels, out / "labels.nii.gz", labels=True))}
    if sampled.intensity is not None:  # a labels-only reconstruction has none
        paths["intensity"] = Path(write_nifti(sampled.intensity, out / "intensity.nii.gz"))
    grid = {"ijk_to_ras": np.asarray(labels.ijk_to_ras).tolist(), "shape_zyx": [int(v) for v in labels.shape_zyx],
            "phases": np.asarray(labels.phases).tolist()}
    paths.update(write_fit(fit, out, grid))
    for label in mesh_labels:
        name = MESH_LABEL_NAMES.get(int(label), f"label{int(label)}")
        for frame, (vertices, faces) in enumerate(label_meshes(labels, int(label))):
            if len(faces):
                path = out / "meshes" / f"{name}_{frame:03d}.vtp"
                path.parent.mkdir(exist_ok=True)
                write_polydata(mesh_to_polydata(vertices, faces), path)
        paths[f"meshes_{name}"] = out / "meshes"
    return paths


def write_reconstruction(fit: SubjectFit, out: Union[str, Path], *, spacing_mm: float = 1.25,
                         grid: Optional[tuple] = None, phases: Optional[Sequence[float]] = None,
                         mesh_labels: Sequence[int] = (), chunk: Optional[int] = None, progress=None) -> Dict[str, str]:
    """Sample ``fit`` on ``grid`` (``(ijk_to_ras, shape_zyx)``; default: an isotropic ``spacing_mm`` grid
    aligned with the subject's standardised frame) at ``phases`` (default: the study's frames) and write
    the outputs listed in the module docstring. Returns ``{what: path}``."""
    ijk_to_ras, shape = grid if grid is not None else standard_grid(fit, spacing_mm)
    sampled = sample_grid(fit, ijk_to_ras, shape, phases, chunk=chunk, progress=progress,
                          name=fit.subject.subject_id)
    return {what: str(path) for what, path in write_sampled(fit, sampled, out, mesh_labels=mesh_labels).items()}


__all__ = ["write_fit", "write_reconstruction", "write_sampled", "MESH_LABEL_NAMES"]
