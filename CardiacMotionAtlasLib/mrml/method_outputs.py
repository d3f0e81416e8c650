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


def load_synth_outputs(scene: Any, folder: Path, name: str = "CT synthesis") -> Dict[str, Any]:
    """Nodes of a ``synth sample`` output folder (``pair_<i>/``): ``generated_sequence`` (generated ED
    frames, index = sample number), ``label_sequence`` (their warped labels, when given), ``browser``,
    ``flows`` (one grid transform per sample: placed under it, the conditioning ES frame lands on the
    generated frame's grid as Slicer resamples it) and ``table`` (latent norm, max flow, folding, and
    with labels each sample's implied LVEF (%) and myocardial volume change (%))."""
    from ..io.displacement_io import read_displacement_field
    from ..io.nifti import read_nifti
    from .tables import _double_column, _string_column
    from .transforms import displacement_field_to_grid_transform_node
    from .volumes import new_volume_node

    folder = Path(folder)
    pairs = sorted(p for p in folder.glob("pair_*") if (p / "pair.json").is_file())
    if not pairs:
        raise MRMLBridgeError(f"{folder}: no complete pair_*/pair.json")
    nodes: Dict[str, Any] = {"flows": {}}
    generated = scene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{name} generated ED")
    generated.SetIndexName("sample")
    labels_sequence = None
    stats = {"sample": [], "latent_norm": [], "max_flow_mm": [], "negative_jacobian_pct": [],
             "implied_lvef_pct": [], "myo_change_pct": []}
    for index, pair in enumerate(pairs):
        record = json.loads((pair / "pair.json").read_text())
        files = record["files"]
        frame = read_nifti(pair / files["generated"])
        generated.SetDataNodeAtValue(new_volume_node(frame.array[0], frame.ijk_to_ras, False,
                                                     f"{name} generated ED {index}"), str(index))
        if "labels_generated" in files:
            if labels_sequence is None:
                labels_sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{name} generated ED labels")
                labels_sequence.SetIndexName("sample")
            labelled = read_nifti(pair / files["labels_generated"], labels=True)
            labels_sequence.SetDataNodeAtValue(new_volume_node(labelled.array[0], labelled.ijk_to_ras, True,
                                                               f"{name} labels {index}"), str(index))
        flow = read_displacement_field(pair / files["flow"])
        nodes["flows"][pair.name] = displacement_field_to_grid_transform_node(scene, flow, f"{name} {pair.name} flow")
        stats["sample"].append(pair.name)
        stats["latent_norm"].append(float(np.linalg.norm(record["latent"])))
        stats["max_flow_mm"].append(float(record["stats"].get("max_flow_mm", np.nan)))
        stats["negative_jacobian_pct"].append(100.0 * float(record["stats"].get("negative_jacobian_fraction", np.nan)))
        for column in ("implied_lvef_pct", "myo_change_pct"):  # NaN when no labels were given
            stats[column].append(float(record["stats"].get(column, np.nan)))
    nodes["generated_sequence"] = generated
    sequences = [generated] + ([labels_sequence] if labels_sequence is not None else [])
    if labels_sequence is not None:
        nodes["label_sequence"] = labels_sequence
    nodes["browser"] = create_sequence_browser(scene, sequences, f"{name} samples")
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} samples")
    table.AddColumn(_string_column("sample", stats.pop("sample")))
    for column, values in stats.items():
        table.AddColumn(_double_column(column, values))
    nodes["table"] = table
    return nodes


def _csv_columns(path: Path) -> Dict[str, np.ndarray]:
    import csv

    with open(path, newline="") as stream:
        rows = list(csv.DictReader(stream))
    if not rows:
        raise MRMLBridgeError(f"{path}: empty table")
    return {key: np.array([float(r[key]) for r in rows]) for key in rows[0]}


def load_motion_outputs(scene: Any, folder: Path, name: str = "") -> Dict[str, Any]:
    """Nodes of a ``motion estimate`` output folder: ``ed_to_es_transform`` (grid transform of the ED -> ES
    DVF: placed under it, ED content lands on ES), ``uncertainty_sequence`` (differential entropy, nats),
    ``label_sequence`` (warped segmentation), ``browser``, ``myocardium_model`` (ED myocardium surface with
    point scalars ``uncertainty_es_nats`` and ``displacement_es_mm``), ``indices_table`` (with 95 % bounds
    in ``<index>_lower95``/``<index>_upper95`` columns), ``volume_curves`` and ``strain_table``."""
    from ..analysis.volume_curves import VolumeCurve
    from ..io.displacement_io import read_displacement_field
    from ..io.nifti import read_nifti
    from ..nisf.sampling import label_meshes
    from .models import add_model_node
    from .tables import _double_column, clinical_indices_to_table_node
    from .transforms import displacement_field_to_grid_transform_node

    folder = Path(folder)
    record = json.loads(_require(folder / "indices.json", "indices.json").read_text())
    subject = name or str(record["subject_id"])
    es = int(record["es_frame"])
    ed = int(record["ed_frame"])
    nodes: Dict[str, Any] = {}
    flow = read_displacement_field(_require(folder / "dvf" / f"ed_to_frame{es:02d}.nii.gz", "the ED->ES DVF"))
    nodes["ed_to_es_transform"] = displacement_field_to_grid_transform_node(scene, flow, f"{subject} ED->ES (CardioMorphNet)")
    uncertainty = read_nifti(_require(folder / "uncertainty.nii.gz", "uncertainty.nii.gz"))
    labels = read_nifti(_require(folder / "warped_labels.nii.gz", "warped_labels.nii.gz"), labels=True)
    nodes["uncertainty_sequence"] = image_sequence_to_sequence_node(scene, uncertainty, f"{subject} DVF uncertainty (nats)")
    nodes["label_sequence"] = image_sequence_to_sequence_node(scene, labels, f"{subject} warped labels", labels=True)
    nodes["browser"] = create_sequence_browser(scene, [nodes["label_sequence"], nodes["uncertainty_sequence"]],
                                               f"{subject} CardioMorphNet")
    surfaces = label_meshes(labels, 2, frames=[ed])
    vertices, faces = surfaces[0]
    if len(faces):
        scalars = {"uncertainty_es_nats": _sample(uncertainty.array[es], uncertainty.ijk_to_ras, vertices),
                   "displacement_es_mm": np.linalg.norm(flow.sample(vertices), axis=1)}
        nodes["myocardium_model"] = add_model_node(scene, vertices, faces, scalars,
                                                   f"{subject} ED myocardium (uncertainty at ES)",
                                                   active_scalars="uncertainty_es_nats")
    values = {k: v["value"] for k, v in record["indices"].items()}
    nodes["indices_table"] = clinical_indices_to_table_node(scene, values, f"{subject} clinical indices (CardioMorphNet)",
                                                            subject_ids=[subject])
    table = nodes["indices_table"].GetTable()
    for key, entry in record["indices"].items():
        table.AddColumn(_double_column(f"{key}_lower95", [entry["lower95"]]))
        table.AddColumn(_double_column(f"{key}_upper95", [entry["upper95"]]))
    volumes = _csv_columns(_require(folder / "volumes.csv", "volumes.csv"))
    curves = [VolumeCurve(volumes["phase"], volumes[f"{v}_ml"], v) for v in ("LV", "RV") if f"{v}_ml" in volumes]
    nodes["volume_curves"] = volume_curves_to_plot(scene, curves, f"{subject} volume curves (CardioMorphNet)",
                                                   title=f"{subject}: ventricular volumes (CardioMorphNet)")
    strain = _csv_columns(_require(folder / "strain.csv", "strain.csv"))
    strain_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{subject} strain (%)")
    for key, column in strain.items():
        strain_node.GetTable().AddColumn(_double_column(key, column))
    nodes["strain_table"] = strain_node
    return nodes


def _sample(volume: np.ndarray, ijk_to_ras: np.ndarray, points_ras: np.ndarray) -> np.ndarray:
    from scipy.ndimage import map_coordinates

    from ..geometry.affine import apply_affine

    ijk = apply_affine(np.linalg.inv(ijk_to_ras), points_ras)
    return map_coordinates(np.asarray(volume, float), ijk[:, ::-1].T, order=1, mode="nearest")


__all__ = ["load_atlas_fit_outputs", "load_motion_outputs", "load_nisf_outputs", "load_synth_outputs"]
