"""Volume curves (ml vs normalised cardiac phase), ED/ES detection, and a PNG plot.

ED is the frame of maximum and ES the frame of minimum volume (of the LV, by convention). Plots use
matplotlib's Agg canvas directly (no pyplot, no global backend switch) and are written atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..data.image_sequence import ImageSequence
from ..data.mesh_sequence import MeshSequence
from ..io.atomic import atomic_path
from .volumes import label_volumes_ml, mesh_volumes_ml


@dataclass
class VolumeCurve:
    """Volume (ml) of one structure at each frame.

    Attributes:
        phases: ``(t,)`` normalised cardiac phase in [0, 1), ED = 0.
        volumes_ml: ``(t,)`` volume (ml).
        name: label for legends and tables (e.g. "LV").
    """

    phases: np.ndarray
    volumes_ml: np.ndarray
    name: str = ""

    def __post_init__(self) -> None:
        self.phases = np.asarray(self.phases, dtype=float).reshape(-1)
        self.volumes_ml = np.asarray(self.volumes_ml, dtype=float).reshape(-1)
        if self.phases.shape != self.volumes_ml.shape or self.phases.size == 0:
            raise ValueError(
                f"curve {self.name!r}: {self.phases.size} phases for {self.volumes_ml.size} volumes"
            )

    @property
    def ed_index(self) -> int:
        """Frame of maximum volume (end-diastole)."""
        return detect_ed_es(self.volumes_ml)[0]

    @property
    def es_index(self) -> int:
        """Frame of minimum volume (end-systole)."""
        return detect_ed_es(self.volumes_ml)[1]


def detect_ed_es(volumes_ml: Sequence[float]) -> Tuple[int, int]:
    """``(ED, ES)`` frame indices: maximum and minimum volume (first occurrence on ties)."""
    volumes = np.asarray(volumes_ml, dtype=float).reshape(-1)
    if volumes.size == 0 or not np.all(np.isfinite(volumes)):
        raise ValueError("volume curve is empty or has non-finite values")
    return int(np.argmax(volumes)), int(np.argmin(volumes))


def volume_curve_from_labels(labels: ImageSequence, label: int = 1, name: str = "") -> VolumeCurve:
    """Volume (ml) of ``label`` (default 1, LV blood pool) per frame of a label sequence."""
    return VolumeCurve(labels.phases, label_volumes_ml(labels, label), name or f"label {label}")


def volume_curve_from_mesh(mesh: MeshSequence, name: str = "") -> VolumeCurve:
    """Enclosed volume (ml) per frame of a closed mesh sequence (ValueError if it is open)."""
    return VolumeCurve(mesh.phases, mesh_volumes_ml(mesh), name or mesh.name or "mesh")


def plot_volume_curves(
    curves: Union[VolumeCurve, Sequence[VolumeCurve], Mapping[str, VolumeCurve]],
    path: Union[str, os.PathLike],
    title: Optional[str] = None,
    mark_ed_es: bool = True,
    dpi: int = 100,
) -> Path:
    """Plot volume (ml) against phase for one or more curves and write a PNG at ``path`` atomically
    (temporary file + ``os.replace``: no partial PNG on failure). ED/ES are marked on each curve."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(curves, VolumeCurve):
        items = [(curves.name, curves)]
    elif isinstance(curves, Mapping):
        items = list(curves.items())
    else:
        items = [(c.name, c) for c in curves]
    if not items:
        raise ValueError("no curves to plot")
    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for label, curve in items:
        if not isinstance(curve, VolumeCurve):
            raise ValueError(f"{label!r} is a {type(curve).__name__}, expected a VolumeCurve")
        order = np.argsort(curve.phases)
        (line,) = axes.plot(curve.phases[order], curve.volumes_ml[order], marker="o", markersize=3, label=label)
        if mark_ed_es:
            ed, es = detect_ed_es(curve.volumes_ml)
            axes.plot(curve.phases[ed], curve.volumes_ml[ed], "^", color=line.get_color(), markersize=8)
            axes.plot(curve.phases[es], curve.volumes_ml[es], "v", color=line.get_color(), markersize=8)
    axes.set_xlabel("normalised cardiac phase (ED = 0)")
    axes.set_ylabel("volume (ml)")
    axes.set_xlim(0.0, 1.0)
    if title:
        axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)
    return path


__all__ = [
    "VolumeCurve",
    "detect_ed_es",
    "volume_curve_from_labels",
    "volume_curve_from_mesh",
    "plot_volume_curves",
]
