"""Benchmark metrics: surface distances (mm), overlap, Jacobians, flow error, image similarity and
mesh topology. Every function takes numpy arrays or data-model objects in RAS mm."""

from .flow import EndpointError, endpoint_error, endpoint_error_map
from .image import SliceIntersectionNCC, ncc, ncc_along_slice_intersections, psnr, ssim
from .jacobian import FoldingStatistics, jacobian_determinant, jacobian_matrix, negative_jacobian
from .overlap import dice, dice_per_label, jaccard, jaccard_per_label
from .surface import (
    chamfer_distance,
    directed_surface_distances,
    hausdorff95,
    mean_surface_distance,
    point_to_surface_distance,
    sample_surface,
)
from .surface_labels import (
    hausdorff95_labels,
    label_surface_distances,
    mean_surface_distance_labels,
    surface_voxels,
)
from .topology import MeshTopology, is_closed_mesh, mesh_topology

__all__ = [
    "EndpointError",
    "endpoint_error",
    "endpoint_error_map",
    "SliceIntersectionNCC",
    "ncc",
    "ncc_along_slice_intersections",
    "psnr",
    "ssim",
    "FoldingStatistics",
    "jacobian_determinant",
    "jacobian_matrix",
    "negative_jacobian",
    "dice",
    "dice_per_label",
    "jaccard",
    "jaccard_per_label",
    "chamfer_distance",
    "directed_surface_distances",
    "hausdorff95",
    "mean_surface_distance",
    "point_to_surface_distance",
    "sample_surface",
    "hausdorff95_labels",
    "label_surface_distances",
    "mean_surface_distance_labels",
    "surface_voxels",
    "MeshTopology",
    "is_closed_mesh",
    "mesh_topology",
]
