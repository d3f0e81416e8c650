"""Clinical analysis: per-frame volumes (ml), volume curves, ED/ES detection and clinical indices
(volumes ml, EF %, LV mass g)."""

from .clinical_indices import (
    MYOCARDIUM_DENSITY_G_PER_ML,
    ClinicalIndices,
    clinical_indices_from_labels,
    clinical_indices_from_meshes,
    clinical_indices_from_volumes,
    ejection_fraction,
)
from .volume_curves import (
    VolumeCurve,
    detect_ed_es,
    plot_volume_curves,
    volume_curve_from_labels,
    volume_curve_from_mesh,
)
from .volumes import check_closed_mesh, label_volumes_ml, mesh_volumes_ml

__all__ = [
    "MYOCARDIUM_DENSITY_G_PER_ML",
    "ClinicalIndices",
    "clinical_indices_from_labels",
    "clinical_indices_from_meshes",
    "clinical_indices_from_volumes",
    "ejection_fraction",
    "VolumeCurve",
    "detect_ed_es",
    "plot_volume_curves",
    "volume_curve_from_labels",
    "volume_curve_from_mesh",
    "check_closed_mesh",
    "label_volumes_ml",
    "mesh_volumes_ml",
]
