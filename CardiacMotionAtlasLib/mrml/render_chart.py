"""A plot chart node (the volume-curve plot the Logic makes) rendered offscreen with VTK's charts.

``slicer-core`` has no displayable manager for plots: Slicer draws a ``vtkMRMLPlotChartNode`` in the
Qt widget ``qMRMLPlotView`` (a ``vtkContextView`` with a ``vtkChartXY``). Here the same chart is built
without Qt from the chart node: each ``vtkMRMLPlotSeriesNode`` becomes a line plot of its table node's
X and Y columns in the series' colour, with the chart's title and axis titles and ranges, drawn in an
offscreen ``vtkContextView``. Pixels come back as ``(rows, columns, 3)`` uint8, row 0 at the top.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import vtk

from .render import _grab, write_png

PathLike = Union[str, os.PathLike]


@dataclass
class ChartPicture:
    """The chart's pixels, each series' RGB colour (0..255) and data ``(x, y)``, and the plot area in
    pixels ``(column min, row min, column max, row max)`` with the axis ranges it shows."""

    pixels: np.ndarray
    series: Dict[str, Tuple[Tuple[int, int, int], np.ndarray, np.ndarray]] = field(default_factory=dict)
    plot_area: Tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    x_range: Tuple[float, float] = (0.0, 1.0)
    y_range: Tuple[float, float] = (0.0, 1.0)
    path: Optional[Path] = None


def _column(table: Any, name: str) -> np.ndarray:
    column = table.GetColumnByName(name)
    if column is None:
        raise KeyError(f"the plot's table has no column {name!r}")
    return np.array([float(column.GetVariantValue(r).ToDouble()) for r in range(table.GetNumberOfRows())])


def render_plot_chart(chart_node: Any, path: Optional[PathLike] = None, size: Sequence[int] = (480, 320),
                      line_width: float = 3.0) -> ChartPicture:
    """Render ``chart_node`` (a ``vtkMRMLPlotChartNode`` with its series and their table nodes in the
    scene) as Slicer's plot view shows it: white background, one line with markers per series."""
    scene = chart_node.GetScene()
    view = vtk.vtkContextView()
    window = view.GetRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetSize(int(size[0]), int(size[1]))
    view.GetRenderer().SetBackground(1.0, 1.0, 1.0)
    chart = vtk.vtkChartXY()
    view.GetScene().AddItem(chart)
    chart.SetTitle(chart_node.GetTitle() or chart_node.GetName())
    chart.GetTitleProperties().SetFontSize(13)
    chart.SetShowLegend(True)
    bottom, left = chart.GetAxis(vtk.vtkAxis.BOTTOM), chart.GetAxis(vtk.vtkAxis.LEFT)
    bottom.SetTitle(chart_node.GetXAxisTitle())
    left.SetTitle(chart_node.GetYAxisTitle())
    result = ChartPicture(np.zeros((1, 1, 3), np.uint8))
    tables: List[Any] = []
    lowest, highest = np.inf, -np.inf
    for index in range(chart_node.GetNumberOfPlotSeriesNodes()):
        series = chart_node.GetNthPlotSeriesNode(index)
        table_node = scene.GetNodeByID(series.GetTableNodeID())
        x = _column(table_node.GetTable(), series.GetXColumnName())
        y = _column(table_node.GetTable(), series.GetYColumnName())
        order = np.argsort(x)
        table = vtk.vtkTable()
        for name, values in (("x", x[order]), (series.GetName(), y[order])):
            array = vtk.vtkDoubleArray()
            array.SetName(name)
            for value in values:
                array.InsertNextValue(float(value))
            table.AddColumn(array)
        tables.append(table)
        line = chart.AddPlot(vtk.vtkChart.LINE)
        line.SetInputData(table, 0, 1)
        rgb = tuple(int(round(255 * c)) for c in series.GetColor())
        line.SetColor(*rgb, 255)
        line.SetWidth(line_width)
        line.SetMarkerStyle(vtk.vtkPlotPoints.CIRCLE)
        line.SetLabel(series.GetName())
        result.series[series.GetName()] = (rgb, x[order], y[order])
        lowest, highest = min(lowest, float(np.min(y))), max(highest, float(np.max(y)))
    x_range = tuple(chart_node.GetXAxisRange())
    if x_range[1] > x_range[0]:
        bottom.SetBehavior(vtk.vtkAxis.FIXED)
        bottom.SetRange(*x_range)
    if np.isfinite(lowest):
        margin = 0.1 * max(highest - lowest, 1e-6)
        left.SetBehavior(vtk.vtkAxis.FIXED)
        left.SetRange(max(0.0, lowest - margin) if lowest >= 0 else lowest - margin, highest + margin)
    window.Render()
    result.pixels = _grab(window)
    corner, extent = chart.GetPoint1(), chart.GetPoint2()  # plot area, pixels from the bottom left
    height = int(size[1])
    result.plot_area = (float(corner[0]), float(height - 1 - extent[1]), float(extent[0]),
                        float(height - 1 - corner[1]))
    result.x_range = (bottom.GetMinimum(), bottom.GetMaximum())
    result.y_range = (left.GetMinimum(), left.GetMaximum())
    if path is not None:
        result.path = write_png(result.pixels, path)
    window.Finalize()
    return result


def data_to_pixels(picture: ChartPicture, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(N, 2)`` pixel ``(column, row from top)`` of data points in ``picture``'s plot area."""
    c0, r0, c1, r1 = picture.plot_area
    (x0, x1), (y0, y1) = picture.x_range, picture.y_range
    columns = c0 + (np.asarray(x, float) - x0) / (x1 - x0) * (c1 - c0)
    rows = r1 - (np.asarray(y, float) - y0) / (y1 - y0) * (r1 - r0)
    return np.stack([columns, rows], axis=1)


def check_chart_picture(picture: ChartPicture, tolerance_px: float = 6.0) -> Dict[str, float]:
    """Each series is drawn in its colour, inside the plot area, along its data: for every column where
    its colour appears, the drawn row is within ``tolerance_px`` of the data interpolated there
    (``AssertionError`` naming the failed check); returns the measured numbers."""
    numbers: Dict[str, float] = {}
    pixels = picture.pixels.astype(float)
    c0, r0, c1, r1 = picture.plot_area
    if not (c1 - c0 > 50 and r1 - r0 > 50):
        raise AssertionError(f"chart: plot area {picture.plot_area} is too small")
    for name, (rgb, x, y) in picture.series.items():
        close = np.abs(pixels - np.array(rgb, float)).max(axis=2) < 40
        rows, columns = np.nonzero(close)
        inside = (columns >= c0 - 2) & (columns <= c1 + 2) & (rows >= r0 - 2) & (rows <= r1 + 2)
        numbers[f"{name}_pixels"] = float(inside.sum())
        if inside.sum() < 50:
            raise AssertionError(f"chart: series {name!r} (colour {rgb}) is not drawn in the plot area")
        data = data_to_pixels(picture, x, y)
        drawn_columns = np.unique(columns[inside])
        drawn_columns = drawn_columns[(drawn_columns >= data[:, 0].min()) & (drawn_columns <= data[:, 0].max())]
        expected = np.interp(drawn_columns, data[:, 0], data[:, 1])
        errors = np.array([np.min(np.abs(rows[inside][columns[inside] == c] - e))
                           for c, e in zip(drawn_columns, expected)])
        numbers[f"{name}_median_error_px"] = float(np.median(errors))
        numbers[f"{name}_covered"] = float(len(drawn_columns) / max(data[:, 0].max() - data[:, 0].min(), 1.0))
        if numbers[f"{name}_median_error_px"] > tolerance_px or numbers[f"{name}_covered"] < 0.8:
            raise AssertionError(f"chart: series {name!r} is not drawn along its data (median "
                                 f"{numbers[f'{name}_median_error_px']:.1f} px off, "
                                 f"{numbers[f'{name}_covered']:.0%} of its columns drawn)")
    return numbers


__all__ = ["ChartPicture", "check_chart_picture", "data_to_pixels", "render_plot_chart"]
