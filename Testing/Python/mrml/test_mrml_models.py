"""MeshSequence <-> model sequence nodes with point scalars."""

from __future__ import annotations

import numpy as np
import pytest

from mrml_helpers import require_slicer_core

require_slicer_core()

from vtk.util import numpy_support  # noqa: E402

from CardiacMotionAtlasLib.mrml import MRMLBridgeError  # noqa: E402
from CardiacMotionAtlasLib.mrml.models import (  # noqa: E402
    configure_model_display,
    mesh_sequence_to_sequence_node,
    sequence_node_to_mesh_sequence,
)
from CardiacMotionAtlasLib.mrml.volumes import create_sequence_browser  # noqa: E402


@pytest.fixture(scope="module")
def myocardium(phantom_heart):
    mesh = phantom_heart.mesh_sequence("myocardium", np.arange(6) / 6.0, n_rings=12, n_around=24)
    mesh.point_data["uncertainty"] = np.random.default_rng(0).random(mesh.vertices.shape[:2]).astype(np.float32)
    return mesh


def test_model_frames_share_points_and_faces_and_carry_scalars(scene, myocardium):
    sequence = mesh_sequence_to_sequence_node(scene, myocardium, active_scalars="displacement_mm")
    assert sequence.GetIndexName() == "phase" and sequence.GetIndexType() == sequence.NumericIndex
    counts = set()
    for frame in range(sequence.GetNumberOfDataNodes()):
        polydata = sequence.GetNthDataNode(frame).GetPolyData()
        counts.add(polydata.GetNumberOfPoints())
        points = numpy_support.vtk_to_numpy(polydata.GetPoints().GetData())
        np.testing.assert_array_equal(points, myocardium.vertices[frame])  # float64, RAS mm, unchanged
        faces = numpy_support.vtk_to_numpy(polydata.GetPolys().GetConnectivityArray()).reshape(-1, 3)
        np.testing.assert_array_equal(faces, myocardium.faces)
        scalars = polydata.GetPointData().GetScalars()
        assert scalars.GetName() == "displacement_mm"
        np.testing.assert_allclose(numpy_support.vtk_to_numpy(scalars), myocardium.point_data["displacement_mm"][frame])
        uncertainty = polydata.GetPointData().GetArray("uncertainty")
        np.testing.assert_array_equal(numpy_support.vtk_to_numpy(uncertainty), myocardium.point_data["uncertainty"][frame])
    assert counts == {myocardium.n_vertices}


def test_mesh_round_trip_and_proxy_colouring(scene, myocardium):
    sequence = mesh_sequence_to_sequence_node(scene, myocardium)
    back = sequence_node_to_mesh_sequence(sequence)
    np.testing.assert_array_equal(back.vertices, myocardium.vertices)
    np.testing.assert_array_equal(back.faces, myocardium.faces)
    np.testing.assert_array_equal(back.phases, myocardium.phases)
    assert set(back.point_data) == {"displacement_mm", "uncertainty"}
    np.testing.assert_allclose(back.point_data["displacement_mm"], myocardium.point_data["displacement_mm"])
    browser = create_sequence_browser(scene, [sequence], "mesh browser")
    proxy = browser.GetProxyNode(sequence)
    configure_model_display(proxy)
    display = proxy.GetDisplayNode()
    assert display.GetActiveScalarName() == "displacement_mm"
    assert display.GetScalarVisibility()
    browser.SetSelectedItemNumber(3)
    np.testing.assert_array_equal(numpy_support.vtk_to_numpy(proxy.GetPolyData().GetPoints().GetData()),
                                  myocardium.vertices[3])


def test_frames_without_correspondence_are_refused(scene, myocardium, phantom_heart):
    sequence = mesh_sequence_to_sequence_node(scene, myocardium)
    other = phantom_heart.mesh_sequence("lv_cavity", [0.95], n_rings=8, n_around=16)
    sequence.SetDataNodeAtValue(mesh_sequence_to_sequence_node(scene, other).GetNthDataNode(0), "0.95")
    with pytest.raises(MRMLBridgeError, match="dense correspondence"):
        sequence_node_to_mesh_sequence(sequence)
