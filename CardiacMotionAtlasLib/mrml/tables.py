"""Clinical indices <-> table nodes, and volume curves -> table + plot series + plot chart nodes.

Indices table: one row per subject, a string column ``subject`` then one double column per index
(``LVEDV``, ``LVEF``, ...), each with its unit (``ml``, ``%``, ``g``) as the column's unit label and a
long name/description (column properties, saved in the ``.schema.tsv`` next to the table).
Volume curves: column ``phase`` (normalised cardiac phase, ED = 0, no unit) and one ``ml`` column per
curve; a scatter-with-line plot series per curve and one chart (x = phase, y = volume in ml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import vtk

from ..analysis.clinical_indices import ClinicalIndices
from ..analysis.volume_curves import VolumeCurve
from .common import MRMLBridgeError, get_attribute, set_attribute

INDEX_UNITS = {
    "LVEDV": ("ml", "LV end-diastolic volume"),
    "LVESV": ("ml", "LV end-systolic volume"),
    "LVSV": ("ml", "LV stroke volume"),
    "LVEF": ("%", "LV ejection fraction"),
    "RVEDV": ("ml", "RV end-diastolic volume"),
    "RVESV": ("ml", "RV end-systolic volume"),
    "RVSV": ("ml", "RV stroke volume"),
    "RVEF": ("%", "RV ejection fraction"),
    "LVM": ("g", "LV myocardial mass (myocardium volume x 1.05 g/ml)"),
}
"""Index name -> (unit, description)."""

SUBJECT_COLUMN = "subject"
PHASE_COLUMN = "phase"
PHASE_DESCRIPTION = "normalised cardiac phase (ED = 0)"

IndicesLike = Union[ClinicalIndices, Mapping[str, float]]


def _as_dict(indices: IndicesLike) -> Dict[str, float]:
    if isinstance(indices, ClinicalIndices):
        return indices.as_dict()
    if isinstance(indices, Mapping):
        return {str(key): float(value) for key, value in indices.items()}
    raise MRMLBridgeError(f"expected ClinicalIndices or a mapping of indices, got {type(indices).__name__}")


def unit_of_index(name: str) -> str:
    """Unit of an index: known names from :data:`INDEX_UNITS`; ``*V`` -> ml, ``*EF`` -> %, else ``""``."""
    if name in INDEX_UNITS:
        return INDEX_UNITS[name][0]
    if name.endswith("EF"):
        return "%"
    if name.endswith("V"):
        return "ml"
    return ""


def _string_column(name: str, values: Sequence[str]) -> vtk.vtkStringArray:
    column = vtk.vtkStringArray()
    column.SetName(name)
    for value in values:
        column.InsertNextValue(str(value))
    return column


def _double_column(name: str, values: Sequence[float]) -> vtk.vtkDoubleArray:
    column = vtk.vtkDoubleArray()
    column.SetName(name)
    for value in values:
        column.InsertNextValue(float(value))
    return column


def clinical_indices_to_table_node(scene: Any, indices: Union[IndicesLike, Sequence[IndicesLike]],
                                   name: str = "Clinical indices",
                                   subject_ids: Optional[Sequence[str]] = None) -> Any:
    """A ``vtkMRMLTableNode`` with one row per subject (one row for a single ClinicalIndices/dict).
    Columns: ``subject`` (``subject_ids`` or empty), then the union of index names in first-seen
    order; missing values are NaN. Units and descriptions are column properties."""
    rows = [indices] if isinstance(indices, (ClinicalIndices, Mapping)) else list(indices)
    rows = [_as_dict(row) for row in rows]
    if not rows:
        raise MRMLBridgeError(f"table {name!r}: no indices")
    if subject_ids is None:
        subject_ids = [""] * len(rows)
    if len(subject_ids) != len(rows):
        raise MRMLBridgeError(f"table {name!r}: {len(subject_ids)} subject ids for {len(rows)} rows")
    keys: List[str] = []
    for row in rows:
        keys += [key for key in row if key not in keys]
    if SUBJECT_COLUMN in keys:
        raise MRMLBridgeError(f"table {name!r}: {SUBJECT_COLUMN!r} is reserved for the subject id column")
    node = scene.AddNewNodeByClass("vtkMRMLTableNode", name)
    table = node.GetTable()
    table.AddColumn(_string_column(SUBJECT_COLUMN, subject_ids))
    for key in keys:
        table.AddColumn(_double_column(key, [row.get(key, float("nan")) for row in rows]))
    node.SetColumnDescription(SUBJECT_COLUMN, "subject identifier")
    for key in keys:
        unit = unit_of_index(key)
        description = INDEX_UNITS.get(key, (unit, key))[1]
        node.SetColumnUnitLabel(key, unit)
        node.SetColumnDescription(key, description)
        node.SetColumnTitle(key, f"{description} ({unit})" if unit else description)
    node.SetUseColumnTitleAsColumnHeader(True)
    node.SetLocked(True)
    set_attribute(node, "Kind", "ClinicalIndices")
    node.Modified()
    return node


def _numeric_columns(node: Any) -> List[str]:
    table = node.GetTable()
    names = []
    for index in range(table.GetNumberOfColumns()):
        column = table.GetColumn(index)
        if column.IsNumeric() and column.GetName() != SUBJECT_COLUMN:
            names.append(column.GetName())
    return names


def _column_values(node: Any, name: str) -> np.ndarray:
    table = node.GetTable()
    column = table.GetColumnByName(name)
    if column is None:
        raise MRMLBridgeError(f"table {node.GetName()!r} has no column {name!r}")
    if column.IsNumeric():
        return np.array([column.GetTuple1(row) for row in range(column.GetNumberOfTuples())], dtype=float)
    # a table read from a file may hold numbers as strings
    values = [column.GetValue(row) for row in range(column.GetNumberOfValues())]
    try:
        return np.array([float(value) if str(value) != "" else np.nan for value in values], dtype=float)
    except ValueError:
        raise MRMLBridgeError(f"table {node.GetName()!r}: column {name!r} is not numeric") from None


def table_node_subject_ids(node: Any) -> List[str]:
    """The ``subject`` column (empty strings when absent)."""
    table = node.GetTable()
    column = table.GetColumnByName(SUBJECT_COLUMN)
    if column is None:
        return [""] * table.GetNumberOfRows()
    return [str(column.GetValue(row)) for row in range(table.GetNumberOfRows())]


def table_node_to_indices(node: Any) -> List[Dict[str, float]]:
    """One ``{index name: value}`` dict per row (every numeric column but ``subject``)."""
    if node is None or not node.IsA("vtkMRMLTableNode"):
        raise MRMLBridgeError(f"{node and node.GetName()!r} is not a table node")
    names = _numeric_columns(node) or [
        node.GetTable().GetColumn(i).GetName() for i in range(node.GetTable().GetNumberOfColumns())
        if node.GetTable().GetColumn(i).GetName() != SUBJECT_COLUMN]
    columns = {name: _column_values(node, name) for name in names}
    return [{name: float(values[row]) for name, values in columns.items()}
            for row in range(node.GetTable().GetNumberOfRows())]


def table_node_to_clinical_indices(node: Any, row: int = 0) -> ClinicalIndices:
    """Row ``row`` as :class:`ClinicalIndices` (indices not in the table are NaN; others ignored)."""
    rows = table_node_to_indices(node)
    if not 0 <= row < len(rows):
        raise MRMLBridgeError(f"table {node.GetName()!r}: row {row} out of range ({len(rows)} rows)")
    fields = ClinicalIndices.__dataclass_fields__
    return ClinicalIndices(**{key: value for key, value in rows[row].items() if key in fields})


# ---------------------------------------------------------------------------------------- volume curves
@dataclass
class VolumeCurvePlot:
    """The nodes of a volume-curve plot."""

    table: Any
    chart: Any
    series: List[Any]


def volume_curves_to_plot(scene: Any, curves: Union[VolumeCurve, Sequence[VolumeCurve], Mapping[str, VolumeCurve]],
                          name: str = "Volume curves", title: Optional[str] = None) -> VolumeCurvePlot:
    """A table (``phase`` + one ``ml`` column per curve), one plot series per curve (x = phase,
    y = volume) and a chart holding them. Curves must share their phases."""
    if isinstance(curves, VolumeCurve):
        items = [(curves.name or "volume", curves)]
    elif isinstance(curves, Mapping):
        items = list(curves.items())
    else:
        items = [(curve.name or f"curve {index}", curve) for index, curve in enumerate(curves)]
    if not items:
        raise MRMLBridgeError(f"plot {name!r}: no curves")
    phases = items[0][1].phases
    for label, curve in items:
        if curve.phases.shape != phases.shape or not np.allclose(curve.phases, phases):
            raise MRMLBridgeError(f"plot {name!r}: curve {label!r} has other phases than {items[0][0]!r}")
    labels = [str(label) for label, _ in items]
    if len(set(labels)) != len(labels) or PHASE_COLUMN in labels:
        raise MRMLBridgeError(f"plot {name!r}: curve names must be distinct and not {PHASE_COLUMN!r}: {labels}")
    table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{name} table")
    table = table_node.GetTable()
    table.AddColumn(_double_column(PHASE_COLUMN, phases))
    for label, (_, curve) in zip(labels, items):
        table.AddColumn(_double_column(label, curve.volumes_ml))
    table_node.SetColumnUnitLabel(PHASE_COLUMN, "")
    table_node.SetColumnDescription(PHASE_COLUMN, PHASE_DESCRIPTION)
    for label in labels:
        table_node.SetColumnUnitLabel(label, "ml")
        table_node.SetColumnDescription(label, f"{label} volume")
    set_attribute(table_node, "Kind", "VolumeCurves")
    table_node.Modified()
    chart = scene.AddNewNodeByClass("vtkMRMLPlotChartNode", name)
    chart.SetTitle(title or name)
    chart.SetXAxisTitle(PHASE_DESCRIPTION)
    chart.SetYAxisTitle("volume (ml)")
    chart.SetXAxisRange(0.0, 1.0)
    series_nodes = []
    palette = [(0.86, 0.24, 0.24), (0.27, 0.47, 0.90), (0.95, 0.6, 0.1), (0.3, 0.7, 0.3), (0.6, 0.3, 0.7)]
    for index, label in enumerate(labels):
        series = scene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", label)
        series.SetAndObserveTableNodeID(table_node.GetID())
        series.SetXColumnName(PHASE_COLUMN)
        series.SetYColumnName(label)
        series.SetPlotType(series.PlotTypeScatter)
        series.SetLineStyle(series.LineStyleSolid)
        series.SetMarkerStyle(series.MarkerStyleCircle)
        series.SetColor(*palette[index % len(palette)])
        chart.AddAndObservePlotSeriesNodeID(series.GetID())
        series_nodes.append(series)
    return VolumeCurvePlot(table_node, chart, series_nodes)


def volume_curves_from_table_node(node: Any) -> List[VolumeCurve]:
    """The curves of a volume-curve table (every numeric column but ``phase``)."""
    phases = _column_values(node, PHASE_COLUMN)
    return [VolumeCurve(phases, _column_values(node, name), name)
            for name in _numeric_columns(node) if name != PHASE_COLUMN]


def is_indices_table(node: Any) -> bool:
    """Whether ``node`` was written by :func:`clinical_indices_to_table_node`."""
    return node is not None and get_attribute(node, "Kind") == "ClinicalIndices"


__all__ = [
    "INDEX_UNITS",
    "PHASE_COLUMN",
    "SUBJECT_COLUMN",
    "VolumeCurvePlot",
    "clinical_indices_to_table_node",
    "is_indices_table",
    "table_node_subject_ids",
    "table_node_to_clinical_indices",
    "table_node_to_indices",
    "unit_of_index",
    "volume_curves_from_table_node",
    "volume_curves_to_plot",
]
