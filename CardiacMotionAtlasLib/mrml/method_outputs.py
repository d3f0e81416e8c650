"""Load the output folders of the library's method CLIs into an MRML scene (no Qt, no ``slicer`` app).

Each loader takes a scene and the folder a ``cardiac-atlas <method> ...`` run wrote, adds the results as
MRML nodes (sequences played by one browser per result, plots, tables, transforms) and returns them in a
dict. Geometry is kept exactly: meshes are RAS mm, images keep their IJK->RAS.

- :func:`load_atlas_fit_outputs`: ``atlas fit`` -> subject mesh sequence (point scalars
  ``displacement_mm``), template mesh sequence, LV volume-curve plot.
- :func:`load_nisf_outputs`: ``nisf reconstruct|sample`` -> intensity and label volume sequences (one
  browser), the ED labels as a segmentation, the corrected slice planes as linear transforms (the
  rigid correction of each slice, RAS) and a table of per-slice corrections.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import numpy as np

from .common import MRMLBridgeError
from .models import configure_model_display, mesh_sequence_to_sequence_node
from .segmentations import labels_to_segmentation_node
from .tables import volume_curves_to_plot
from .transforms import slice_transforms_to_nodes
from .volumes import create_sequence_browser, image_sequence_to_sequence_node


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise MRMLBridgeError(f"{path}: missing {what} (the run did not complete?)")
    return path


def load_atlas_fit_outputs(scene: Any, folder: Path, name: str = "") -> Dict[str, Any]:
    """Nodes of an ``atlas fit`` output folder: ``mesh_sequence``, ``template_sequence``, ``browser``,
    ``volume_curves`` (a :class:`~CardiacMotionAtlasLib.mrml.tables.VolumeCurvePlot`)."""
    from ..analysis.volume_curves import VolumeCurve
    from ..io.meshes import read_mesh_sequence

    folder = Path(folder)
    record = json.loads(_require(folder / "volume_curve.json", "volume_curve.json").read_text())
    subject = name or str(record["subject"])
    setting = str(record.get("setting", ""))
    phases = np.asarray(record["phases"], float)
    mesh = read_mesh_sequence(_require(folder / "meshes", "meshes/"), phases=phases)
    nodes: Dict[str, Any] = {}
    nodes["mesh_sequence"] = mesh_sequence_to_sequence_node(
        scene, mesh, f"{subject} atlas myocardium ({setting})",
        active_scalars="displacement_mm" if "displacement_mm" in mesh.point_data else None)
    sequences = [nodes["mesh_sequence"]]
    if (folder / "template").is_dir():
        template = read_mesh_sequence(folder / "template", phases=phases)
        nodes["template_sequence"] = mesh_sequence_to_sequence_node(scene, template, "atlas template myocardium")
        sequences.append(nodes["template_sequence"])
    nodes["browser"] = create_sequence_browser(scene, sequences, f"{subject} atlas")
    for sequence, colour in zip(sequences, ((0.9, 0.75, 0.3), (0.6, 0.6, 0.9))):
        proxy = nodes["browser"].GetProxyNode(sequence)
        if proxy is not None:
            configure_model_display(proxy, color=colour)
    curve = VolumeCurve(phases, np.asarray(record["lv_ml"], float), f"{subject} LV (atlas, {setting})")
    nodes["volume_curves"] = volume_curves_to_plot(scene, [curve], f"{subject} atlas volume curve",
                                                   title=f"{subject}: LV cavity volume recovered by the atlas")
    return nodes


def load_nisf_outputs(scene: Any, folder: Path, name: str = "") -> Dict[str, Any]:
    """Nodes of an ``nisf reconstruct`` / ``nisf sample`` output folder: ``intensity_sequence``,
    ``label_sequence``, ``browser``, ``segmentation`` (first phase), ``slice_transforms`` (name -> node:
    corrected = transform @ nominal, RAS)."""
    from ..io.nifti import read_nifti

    folder = Path(folder)
    intensity = read_nifti(_require(folder / "intensity.nii.gz", "intensity.nii.gz"))
    labels = read_nifti(_require(folder / "labels.nii.gz", "labels.nii.gz"), labels=True)
    report = json.loads(_require(folder / "slices.json", "slices.json").read_text())
    subject = name or str(report.get("subject_id", "subject"))
    nodes: Dict[str, Any] = {}
    nodes["intensity_sequence"] = image_sequence_to_sequence_node(scene, intensity, f"{subject} NISF++ intensity")
    nodes["label_sequence"] = image_sequence_to_sequence_node(scene, labels, f"{subject} NISF++ labels", labels=True)
    nodes["browser"] = create_sequence_browser(scene, [nodes["intensity_sequence"], nodes["label_sequence"]],
                                               f"{subject} NISF++")
    nodes["segmentation"] = labels_to_segmentation_node(scene, labels.array[0], labels.ijk_to_ras,
                                                        name=f"{subject} NISF++ segmentation (ED)")
    matrices = {f"{subject} {s['name']}": np.asarray(s["rigid_transform_ras"], float) for s in report["slices"]}
    nodes["slice_transforms"] = slice_transforms_to_nodes(scene, matrices, suffix=" correction (NISF++)")
    return nodes


__all__ = ["load_atlas_fit_outputs", "load_nisf_outputs"]
