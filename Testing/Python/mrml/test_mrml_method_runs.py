"""Method runs from the Logic against a real MRML scene: atlas fit and NISF++ reconstruction run the CLI
in a background process with tiny models and load their outputs as nodes; bad input is refused before
anything starts; a cancelled run leaves the scene unchanged."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest

from mrml_helpers import ijk_to_ras_of, nodes_by_class, require_slicer_core, voxels_of

require_slicer_core()

from CardiacMotionAtlasLib.data.image_sequence import ImageSequence  # noqa: E402
from CardiacMotionAtlasLib.io.meshes import read_mesh_sequence  # noqa: E402
from CardiacMotionAtlasLib.io.nifti import read_nifti  # noqa: E402
from CardiacMotionAtlasLib.mrml import (  # noqa: E402
    CardiacMotionAtlasLogic,
    MethodInputError,
    image_sequence_to_sequence_node,
    sequence_node_to_image_sequence,
    sequence_node_to_mesh_sequence,
    volume_curves_from_table_node,
)
from CardiacMotionAtlasLib.mrml.volumes import add_volume_node  # noqa: E402


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """Tiny atlas and NISF++ checkpoints (the same ones the module's Slicer self-test trains)."""
    from CardiacMotionAtlasLib.mrml.selftest import train_tiny_models

    return train_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def tiny_atlas(tiny_models):
    return tiny_models["atlas"]


@pytest.fixture(scope="module")
def tiny_nisf(tiny_models):
    return tiny_models["nisf"]


@pytest.fixture
def logic():
    return CardiacMotionAtlasLogic(python_executable=sys.executable, force_cpu=True)


def _label_sequence(scene, heart, frames: int = 4, name: str = "labels"):
    matrix, shape = heart.bounding_grid(3.0)
    phases = np.arange(frames) / frames
    labels = ImageSequence(heart.label_volumes(matrix, shape, phases), matrix, phases, name=name)
    return labels, image_sequence_to_sequence_node(scene, labels, name, labels=True)


def test_atlas_fit_loads_meshes_template_and_volume_curve(scene, logic, tiny_atlas, phantom_heart, tmp_path):
    labels, node = _label_sequence(scene, phantom_heart)
    progress, done = [], []
    run = logic.run_atlas_fit(scene, tiny_atlas, node, "all", steps=20, phases=6, resolution=24,
                              on_progress=lambda f, m: progress.append(f), on_done=done.append, wait=True,
                              work_dir=tmp_path / "run")
    assert run.ok, run.error_message()
    assert done == [run] and progress and progress[-1] == pytest.approx(1.0)
    # the exported input is the label sequence, voxel for voxel, with its geometry
    exported = read_nifti(tmp_path / "run" / "input" / "labels.nii.gz", labels=True)
    np.testing.assert_array_equal(exported.array, labels.array)
    np.testing.assert_allclose(exported.ijk_to_ras, labels.ijk_to_ras, atol=1e-5)
    # the mesh sequence: 6 phases, one vertex set, coordinates equal to the files the CLI wrote (RAS mm)
    mesh = sequence_node_to_mesh_sequence(run.nodes["mesh_sequence"])
    on_disk = read_mesh_sequence(run.output_dir / "meshes")
    assert mesh.n_frames == 6 and mesh.vertices.shape == on_disk.vertices.shape
    np.testing.assert_allclose(mesh.vertices, on_disk.vertices, atol=1e-4)
    template = sequence_node_to_mesh_sequence(run.nodes["template_sequence"])
    np.testing.assert_array_equal(template.faces, mesh.faces)  # dense correspondence with the template
    record = json.loads((run.output_dir / "volume_curve.json").read_text())
    curve = volume_curves_from_table_node(run.nodes["volume_curves"].table)[0]
    np.testing.assert_allclose(curve.volumes_ml, record["lv_ml"])
    assert run.nodes["browser"].GetNumberOfSynchronizedSequenceNodes() >= 1


def test_nisf_reconstruction_loads_sequences_segmentation_and_slice_corrections(scene, logic, tiny_nisf,
                                                                                tmp_path):
    subject = logic.load_phantom_subject(scene, seed=0, index=0, tiny=True)
    run = logic.run_nisf_reconstruction(scene, tiny_nisf, subject.browser, spacing_mm=4.0, phases=3, steps=10,
                                        wait=True, work_dir=tmp_path / "run")
    assert run.ok, run.error_message()
    labels = read_nifti(run.output_dir / "labels.nii.gz", labels=True)
    loaded = sequence_node_to_image_sequence(run.nodes["label_sequence"])
    np.testing.assert_array_equal(loaded.array, labels.array)
    np.testing.assert_allclose(loaded.ijk_to_ras, labels.ijk_to_ras, atol=1e-6)
    assert loaded.n_frames == 3
    intensity = sequence_node_to_image_sequence(run.nodes["intensity_sequence"])
    assert intensity.array.shape == labels.array.shape
    report = json.loads((run.output_dir / "slices.json").read_text())
    assert len(run.nodes["slice_transforms"]) == len(report["slices"]) == len(subject.cine.all_sequences()) // 2
    first = report["slices"][0]
    node = next(iter(run.nodes["slice_transforms"].values()))
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetMatrixTransformToParent(matrix)
    np.testing.assert_allclose([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)],
                               first["rigid_transform_ras"], atol=1e-6)


def test_bad_inputs_are_refused_before_anything_starts(scene, logic, tiny_atlas, tiny_nisf, phantom_heart, tmp_path):
    matrix, shape = phantom_heart.bounding_grid(5.0)
    ct_like = add_volume_node(scene, np.zeros(shape, np.float32), matrix, "CT volume")
    single, single_node = _label_sequence(scene, phantom_heart, frames=1, name="one frame")
    before = scene.GetNumberOfNodes()
    with pytest.raises(MethodInputError, match="single volume"):
        logic.run_atlas_fit(scene, tiny_atlas, ct_like, "all", work_dir=tmp_path / "a")
    with pytest.raises(MethodInputError, match="at least 2 frames"):
        logic.run_atlas_fit(scene, tiny_atlas, single_node, "all", work_dir=tmp_path / "b")
    with pytest.raises(MethodInputError, match="no label sequence"):
        logic.run_atlas_fit(scene, tiny_atlas, None, "ed", work_dir=tmp_path / "c")
    with pytest.raises(MethodInputError, match="no atlas checkpoint"):
        logic.run_atlas_fit(scene, tmp_path / "missing.pt", single_node, "ed")
    with pytest.raises(MethodInputError, match="CT"):
        logic.run_nisf_reconstruction(scene, tiny_nisf, ct_like, work_dir=tmp_path / "d")
    assert scene.GetNumberOfNodes() == before
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cancelled_atlas_fit_changes_nothing(scene, logic, tiny_atlas, phantom_heart, tmp_path):
    _, node = _label_sequence(scene, phantom_heart)
    before = scene.GetNumberOfNodes()
    progress, done = [], []
    run = logic.run_atlas_fit(scene, tiny_atlas, node, "all", steps=1_000_000,
                              on_progress=lambda f, m: progress.append(f), on_done=done.append, wait=False,
                              dispatch="poll", work_dir=tmp_path / "run")
    deadline = time.monotonic() + 120
    while not progress:  # the fit loop started
        assert time.monotonic() < deadline and run.run.is_running, run.run.output
        run.run.dispatch_pending()
        time.sleep(0.02)
    run.cancel()
    result = run.run.wait(timeout=30)
    assert result is not None and result.cancelled and not run.ok
    assert done == [run] and run.nodes == {}
    assert scene.GetNumberOfNodes() == before
    assert not (run.output_dir / "meshes").exists()


def test_slicer_self_test_checks_pass_on_plain_mrml(scene, tiny_models, tmp_path):
    """The functions the module's ScriptedLoadableModuleTest runs inside Slicer, run here on slicer-core."""
    from CardiacMotionAtlasLib.mrml.selftest import check_method_runs, check_phantom_subject

    check_phantom_subject(scene)
    results = check_method_runs(scene, tiny_models, tmp_path, python_executable=sys.executable)
    assert results["atlas"].ok and results["nisf"].ok
