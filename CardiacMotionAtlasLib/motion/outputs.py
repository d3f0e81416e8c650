"""Writing a :class:`~.estimate.MotionEstimate` to a folder (every file atomically):

- ``dvf/ed_to_frameNN.nii.gz``: ED -> frame NN displacement fields (RAS mm in memory, ITK/LPS vector
  NIfTI on disk: Slicer loads them as grid transforms; see ``io.displacement_io``), each with its
  ``_uncertainty`` volume (differential entropy, nats), and ``dvf/step_frameNN.nii.gz``: the frame-to-frame
  fields ``u_{NN-1 -> NN}`` (on frame NN-1's grid) whose composition gives the ED -> t fields;
- ``uncertainty.nii.gz``: 4D differential entropy of ED -> t (nats), ``displacement_std.nii.gz``: 4D
  posterior std (mm);
- ``warped_labels.nii.gz``: the ED labels carried to every frame (4D, uint8);
- ``indices.csv`` / ``indices.json``: the nine clinical indices with 95 % intervals (centred on the
  estimate: posterior-sample spread and partial volume, calibrated per index, :mod:`.intervals`);
- ``strain.csv`` and ``volumes.csv``: per frame, with bounds; ``volume_curves.png``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Dict, Union

import numpy as np

from ..analysis.volume_curves import VolumeCurve, plot_volume_curves
from ..data.displacement_field import DisplacementField
from ..data.image_sequence import ImageSequence
from ..io.atomic import atomic_write_text
from ..io.displacement_io import write_displacement_field
from ..io.nifti import write_nifti
from .estimate import MotionEstimate

INDEX_UNITS = {"LVEDV": "ml", "LVESV": "ml", "LVSV": "ml", "LVEF": "%", "RVEDV": "ml", "RVESV": "ml",
               "RVSV": "ml", "RVEF": "%", "LVM": "g"}


def _csv(rows, header) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _per_frame_csv(phases: np.ndarray, values: Dict[str, np.ndarray], bounds: Dict[str, np.ndarray],
                   unit: str) -> str:
    """Rows ``frame, phase, <name>_<unit>, <name>_lower95, <name>_upper95, ...`` of per-frame curves
    (``values[name]``: (T,), ``bounds[name]``: (2, T))."""
    names = list(values)
    rows = [[t, f"{phases[t]:.4f}"] + [f"{x:.4f}" for n in names for x in (values[n][t], *bounds[n][:, t])]
            for t in range(len(phases))]
    header = ["frame", "phase"] + [f"{n}_{s}" for n in names for s in (unit, "lower95", "upper95")]
    return _csv(rows, header)


def write_motion_outputs(estimate: MotionEstimate, out: Union[str, Path], dvfs: bool = True) -> Dict[str, str]:
    """Write the estimate's files into ``out`` (created); returns ``{what: path}``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: Dict[str, str] = {}
    matrix, phases = estimate.ijk_to_ras, estimate.phases
    if dvfs:
        folder = out / "dvf"
        for t in range(estimate.n_frames):
            field = DisplacementField(estimate.ed_to_t[t], matrix, uncertainty=estimate.entropy[t],
                                      source_phase=float(phases[estimate.ed_frame]), target_phase=float(phases[t]),
                                      name=f"{estimate.subject_id}_ED_to_frame{t:02d}")
            write_displacement_field(field, folder / f"ed_to_frame{t:02d}.nii.gz")
            if t != estimate.ed_frame:
                previous = (t - 1) % estimate.n_frames
                step = DisplacementField(estimate.steps[t], matrix, source_phase=float(phases[previous]),
                                         target_phase=float(phases[t]), name=f"{estimate.subject_id}_step_frame{t:02d}")
                write_displacement_field(step, folder / f"step_frame{t:02d}.nii.gz")
        paths["dvf_folder"] = str(folder)
        paths["dvf_es"] = str(folder / f"ed_to_frame{estimate.es_frame:02d}.nii.gz")
    for name, array, labels in (("uncertainty", estimate.entropy, False),
                                ("displacement_std", estimate.displacement_std_mm(), False),
                                ("warped_labels", estimate.labels, True)):
        path = out / f"{name}.nii.gz"
        write_nifti(ImageSequence(np.asarray(array), matrix, phases, name=f"{estimate.subject_id}_{name}"), path,
                    labels=labels)
        paths[name] = str(path)
    rows = [[k, INDEX_UNITS.get(k, ""), f"{v:.4f}", f"{estimate.index_bounds[k][0]:.4f}",
             f"{estimate.index_bounds[k][1]:.4f}"] for k, v in estimate.indices.items()]
    atomic_write_text(out / "indices.csv", _csv(rows, ["index", "unit", "value", "lower95", "upper95"]))
    payload = {"subject_id": estimate.subject_id, "ed_frame": estimate.ed_frame, "es_frame": estimate.es_frame,
               "posterior_samples": estimate.n_samples, "refine_steps": estimate.metadata.get("refine_steps", 0),
               "trajectory": estimate.metadata.get("trajectory", "chain"),
               "indices": {k: {"value": v, "unit": INDEX_UNITS.get(k, ""), "lower95": estimate.index_bounds[k][0],
                               "upper95": estimate.index_bounds[k][1]} for k, v in estimate.indices.items()}}
    atomic_write_text(out / "indices.json", json.dumps(payload, indent=1) + "\n")
    paths["indices_csv"], paths["indices_json"] = str(out / "indices.csv"), str(out / "indices.json")
    for key, values, bounds, unit in (("strain", estimate.strain, estimate.strain_bounds, "percent"),
                                      ("volumes", estimate.volumes_ml, estimate.volume_bounds_ml, "ml")):
        atomic_write_text(out / f"{key}.csv", _per_frame_csv(phases, values, bounds, unit))
        paths[key] = str(out / f"{key}.csv")
    curves = [VolumeCurve(phases, estimate.volumes_ml[n], n) for n in ("LV", "RV")]
    paths["volume_plot"] = str(plot_volume_curves(curves, out / "volume_curves.png",
                                                  title=f"{estimate.subject_id}: CardioMorphNet volume curves"))
    return paths


__all__ = ["INDEX_UNITS", "write_motion_outputs"]
