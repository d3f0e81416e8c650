"""Label maps <-> segmentation nodes (segments ``LV blood pool`` = 1, ``LV myocardium`` = 2,
``RV blood pool`` = 3).

Frames: a ``vtkOrientedImageData`` carries its voxel -> RAS mm matrix itself
(``SetImageToWorldMatrix``), the same matrix as the label map's IJK->RAS. The segments share one binary
labelmap layer (Slicer's shared labelmap: each segment has a label value in the layer), which is the
source representation; the label map's grid is also stored as the segmentation's reference image
geometry, so exporting with :func:`segmentation_node_to_labels` gives back the identical array. Each
segment carries its project label value in the segment tag ``CardiacMotionAtlas.Label``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import slicer
import vtk

from ..data.image_sequence import ImageSequence
from .common import (
    ATTRIBUTE_PREFIX,
    MRMLBridgeError,
    array_from_image_data,
    array_from_vtk_matrix,
    get_attribute,
    image_data_from_array,
    set_attribute,
    vtk_matrix_from_array,
)
from .volumes import LABEL_COLORS

SegmentSpec = Tuple[int, str, str, Tuple[float, float, float]]
"""(label value, segment ID, segment name, RGB colour 0..1)."""

CARDIAC_SEGMENTS: Tuple[SegmentSpec, ...] = tuple(
    (value, name.replace(" ", "_"), name, tuple(rgba[:3]))
    for value, (name, rgba) in LABEL_COLORS.items() if value != 0
)
"""The project's segments: 1 LV blood pool (red), 2 LV myocardium (yellow), 3 RV blood pool (blue)."""

LABEL_TAG = ATTRIBUTE_PREFIX + "Label"


def _binary_labelmap_name() -> str:
    return slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()


def oriented_image_from_array(array: np.ndarray, ijk_to_ras: np.ndarray) -> Any:
    """A ``vtkOrientedImageData`` of a ``(z, y, x)`` array with its IJK->RAS (mm)."""
    image = slicer.vtkOrientedImageData()
    image.ShallowCopy(image_data_from_array(array))
    image.SetImageToWorldMatrix(vtk_matrix_from_array(ijk_to_ras))
    return image


def _labels_frame(labels: Union[ImageSequence, np.ndarray], ijk_to_ras: Optional[np.ndarray], frame: int):
    if isinstance(labels, ImageSequence):
        if not -labels.n_frames <= frame < labels.n_frames:
            raise MRMLBridgeError(f"labels {labels.name!r}: frame {frame} out of range ({labels.n_frames} frames)")
        return labels.array[frame], labels.ijk_to_ras, labels.name
    if ijk_to_ras is None:
        raise MRMLBridgeError("a label array needs its ijk_to_ras matrix")
    array = np.asarray(labels)
    if array.ndim == 4:
        array = array[frame]
    return array, np.asarray(ijk_to_ras, float), ""


def labels_to_segmentation_node(scene: Any, labels: Union[ImageSequence, np.ndarray],
                                ijk_to_ras: Optional[np.ndarray] = None, frame: int = 0,
                                name: Optional[str] = None,
                                segments: Sequence[SegmentSpec] = CARDIAC_SEGMENTS,
                                closed_surface: bool = False) -> Any:
    """A ``vtkMRMLSegmentationNode`` in ``scene`` with one segment per entry of ``segments`` from frame
    ``frame`` of a label ImageSequence (or a ``(z, y, x)`` array plus ``ijk_to_ras``). Voxels whose
    label is not listed are left out. ``closed_surface`` also builds the 3D surfaces (for 3D views)."""
    array, matrix, label_name = _labels_frame(labels, ijk_to_ras, frame)
    if array.ndim != 3:
        raise MRMLBridgeError(f"labels must be (z, y, x), got shape {array.shape}")
    values = [spec[0] for spec in segments]
    if len(set(values)) != len(values) or min(values) < 1 or max(values) > 32767:
        raise MRMLBridgeError(f"segment label values must be distinct and in 1..32767, got {values}")
    layer = np.where(np.isin(array, values), array, 0).astype(np.uint8 if max(values) < 256 else np.int16)
    shared = oriented_image_from_array(layer, matrix)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name or f"{label_name or 'labels'} segmentation")
    node.CreateDefaultDisplayNodes()
    segmentation = node.GetSegmentation()
    segmentation.SetSourceRepresentationName(_binary_labelmap_name())
    reference = slicer.vtkOrientedImageData()  # geometry only (no voxels): the label map grid
    reference.SetExtent(0, array.shape[2] - 1, 0, array.shape[1] - 1, 0, array.shape[0] - 1)
    reference.SetImageToWorldMatrix(vtk_matrix_from_array(matrix))
    segmentation.SetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
        slicer.vtkSegmentationConverter.SerializeImageGeometry(reference))
    for value, segment_id, segment_name, color in segments:
        segment = slicer.vtkSegment()
        segment.SetName(segment_name)
        segment.SetColor(*color)
        segment.SetLabelValue(int(value))
        segment.SetTag(LABEL_TAG, str(int(value)))
        segment.AddRepresentation(_binary_labelmap_name(), shared)
        segmentation.AddSegment(segment, segment_id)
    set_attribute(node, "Kind", "LabelSegmentation")
    if isinstance(labels, ImageSequence):
        set_attribute(node, "Phase", float(labels.phases[frame]))
    if closed_surface:
        node.CreateClosedSurfaceRepresentation()
    return node


def segment_label_value(segment: Any, default: int) -> int:
    """A segment's project label (tag ``CardiacMotionAtlas.Label``), else ``default``."""
    value = vtk.reference("")
    if segment.GetTag(LABEL_TAG, value) and str(value).strip().isdigit():
        return int(str(value))
    return default


def reference_geometry(node: Any) -> Optional[Tuple[np.ndarray, Tuple[int, int, int]]]:
    """(IJK->RAS, (z, y, x) shape) of a segmentation's reference image geometry, or None."""
    text = node.GetSegmentation().GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName())
    if not text:
        return None
    image = slicer.vtkOrientedImageData()
    if not slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, image, False):
        return None
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    extent = image.GetExtent()
    ijk_to_ras = array_from_vtk_matrix(matrix)
    start = np.array([extent[0], extent[2], extent[4]], float)
    ijk_to_ras[:3, 3] += ijk_to_ras[:3, :3] @ start
    shape = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
    return ijk_to_ras, shape


def segmentation_node_to_labels(node: Any, ijk_to_ras: Optional[np.ndarray] = None,
                                shape_zyx: Optional[Sequence[int]] = None, dtype=np.uint8,
                                name: Optional[str] = None) -> ImageSequence:
    """A one-frame label ImageSequence ``(1, z, y, x)`` of a segmentation on a grid: the given
    ``ijk_to_ras``/``shape_zyx``, else the segmentation's reference geometry. Each segment gets its
    project label (tag), else its 1-based position. Overlaps: the later segment wins."""
    if node is None or not node.IsA("vtkMRMLSegmentationNode"):
        raise MRMLBridgeError(f"{node and node.GetName()!r} is not a segmentation node")
    if ijk_to_ras is None or shape_zyx is None:
        geometry = reference_geometry(node)
        if geometry is None:
            raise MRMLBridgeError(f"segmentation {node.GetName()!r} has no reference geometry: give ijk_to_ras "
                                  f"and shape_zyx")
        ijk_to_ras, shape_zyx = geometry
    reference = oriented_image_from_array(np.zeros(tuple(int(s) for s in shape_zyx), np.uint8), ijk_to_ras)
    segmentation = node.GetSegmentation()
    segment_ids = vtk.vtkStringArray()
    label_values = vtk.vtkIntArray()
    for index in range(segmentation.GetNumberOfSegments()):
        segment_id = segmentation.GetNthSegmentID(index)
        segment_ids.InsertNextValue(segment_id)
        label_values.InsertNextValue(segment_label_value(segmentation.GetSegment(segment_id), index + 1))
    merged = slicer.vtkOrientedImageData()
    if not node.GenerateMergedLabelmapForAllSegments(merged, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY,
                                                     reference, segment_ids, label_values):
        raise MRMLBridgeError(f"segmentation {node.GetName()!r}: MRML could not export a label map")
    array = array_from_image_data(merged).astype(dtype)
    expected = tuple(int(s) for s in shape_zyx)
    if array.shape != expected:
        raise MRMLBridgeError(f"segmentation {node.GetName()!r}: exported shape {array.shape} != {expected}")
    return ImageSequence(array[None], ijk_to_ras, [float(get_attribute(node, "Phase", 0.0))],
                         name=name or node.GetName(), metadata={"labels": True})


__all__ = [
    "CARDIAC_SEGMENTS",
    "LABEL_TAG",
    "SegmentSpec",
    "labels_to_segmentation_node",
    "oriented_image_from_array",
    "reference_geometry",
    "segment_label_value",
    "segmentation_node_to_labels",
]
