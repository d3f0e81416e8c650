"""Clinical indices <-> table nodes; volume curves -> table + plot series + chart."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mrml_helpers import require_slicer_core

require_slicer_core()

from CardiacMotionAtlasLib.analysis.clinical_indices import ClinicalIndices  # noqa: E402
from CardiacMotionAtlasLib.analysis.volume_curves import VolumeCurve  # noqa: E402
from CardiacMotionAtlasLib.mrml import MRMLBridgeError  # noqa: E402
from CardiacMotionAtlasLib.mrml.tables import (  # noqa: E402
    clinical_indices_to_table_node,
    table_node_subject_ids,
    table_node_to_clinical_indices,
    table_node_to_indices,
    volume_curves_from_table_node,
    volume_curves_to_plot,
)


def test_indices_table_values_units_and_descriptions(scene, phantom_heart):
    truth = phantom_heart.clinical_indices()
    node = clinical_indices_to_table_node(scene, truth, subject_ids=[phantom_heart.subject_id])
    table = node.GetTable()
    assert table.GetNumberOfRows() == 1
    assert table.GetColumn(0).GetName() == "subject"
    assert table_node_subject_ids(node) == [phantom_heart.subject_id]
    for name, value in truth.items():
        assert table.GetColumnByName(name).GetValue(0) == value
    assert node.GetColumnUnitLabel("LVEDV") == "ml"
    assert node.GetColumnUnitLabel("LVEF") == "%"
    assert node.GetColumnUnitLabel("LVM") == "g"
    assert "end-diastolic" in node.GetColumnDescription("LVEDV")
    assert table_node_to_indices(node) == [truth]


def test_clinical_indices_and_cohorts_round_trip(scene):
    indices = ClinicalIndices(150.0, 60.0, 90.0, 60.0, LVM=120.5)  # RV indices are NaN
    back = table_node_to_clinical_indices(clinical_indices_to_table_node(scene, indices))
    for name, value in indices.as_dict().items():
        got = getattr(back, name)
        assert (math.isnan(value) and math.isnan(got)) or got == value
    cohort = [{"LVEDV": 100.0, "LVEF": 55.0}, {"LVEDV": 120.0, "RVEF": 48.0}]
    node = clinical_indices_to_table_node(scene, cohort, "cohort", subject_ids=["a", "b"])
    rows = table_node_to_indices(node)
    assert [list(row) for row in rows] == [["LVEDV", "LVEF", "RVEF"]] * 2
    assert rows[0]["LVEDV"] == 100.0 and math.isnan(rows[0]["RVEF"])
    assert rows[1]["RVEF"] == 48.0 and math.isnan(rows[1]["LVEF"])
    with pytest.raises(MRMLBridgeError, match="subject ids"):
        clinical_indices_to_table_node(scene, cohort, subject_ids=["a"])


def test_volume_curves_become_a_plot_of_ml_against_phase(scene, phantom_heart):
    phases = np.arange(10) / 10.0
    curves = [VolumeCurve(phases, phantom_heart.lv_volume_ml(phases), "LV"),
              VolumeCurve(phases, phantom_heart.rv_volume_ml(phases), "RV")]
    plot = volume_curves_to_plot(scene, curves, "curves")
    assert plot.chart.GetNumberOfPlotSeriesNodes() == 2
    assert "phase" in plot.chart.GetXAxisTitle() and "ml" in plot.chart.GetYAxisTitle()
    for series, curve in zip(plot.series, curves):
        assert plot.chart.HasPlotSeriesNodeID(series.GetID())
        assert series.GetTableNode() is plot.table
        assert (series.GetXColumnName(), series.GetYColumnName()) == ("phase", curve.name)
        x = plot.table.GetTable().GetColumnByName(series.GetXColumnName())
        y = plot.table.GetTable().GetColumnByName(series.GetYColumnName())
        np.testing.assert_array_equal([x.GetValue(i) for i in range(10)], phases)
        np.testing.assert_array_equal([y.GetValue(i) for i in range(10)], curve.volumes_ml)
    assert plot.table.GetColumnUnitLabel("LV") == "ml"
    back = volume_curves_from_table_node(plot.table)
    assert [c.name for c in back] == ["LV", "RV"]
    np.testing.assert_array_equal(back[0].volumes_ml, curves[0].volumes_ml)
    with pytest.raises(MRMLBridgeError, match="other phases"):
        volume_curves_to_plot(scene, [curves[0], VolumeCurve([0.0, 0.5], [1.0, 2.0], "x")])
