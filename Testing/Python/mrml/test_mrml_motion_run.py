"""CardioMorphNet from the Logic on a loaded phantom study: background CLI, then the ED->ES grid transform,
uncertainty and warped-label sequences, the myocardium with uncertainty scalars and the tables, checked
against the files the CLI wrote."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from mrml_helpers import require_slicer_core

require_slicer_core()

from CardiacMotionAtlasLib.io.displacement_io import read_displacement_field  # noqa: E402
from CardiacMotionAtlasLib.io.nifti import read_nifti  # noqa: E402
from CardiacMotionAtlasLib.mrml import CardiacMotionAtlasLogic, MethodInputError  # noqa: E402
from CardiacMotionAtlasLib.mrml.models import model_node_to_arrays  # noqa: E402
from CardiacMotionAtlasLib.mrml.tables import table_node_to_indices  # noqa: E402
from CardiacMotionAtlasLib.mrml.transforms import grid_transform_node_to_displacement_field  # noqa: E402
from CardiacMotionAtlasLib.mrml.volumes import sequence_node_to_image_sequence  # noqa: E402


def test_motion_estimation_loads_transform_sequences_model_and_tables(scene, tiny_motion_model, tmp_path):
    logic = CardiacMotionAtlasLogic(python_executable=sys.executable, force_cpu=True)
    subject = logic.load_phantom_subject(scene, seed=0, index=0, tiny=True)
    run = logic.run_motion_estimation(scene, tiny_motion_model, subject.browser, samples=4, wait=True,
                                      work_dir=tmp_path / "run")
    assert run.ok, run.error_message()
    record = json.loads((run.output_dir / "indices.json").read_text())
    es = record["es_frame"]
    written = read_displacement_field(run.output_dir / "dvf" / f"ed_to_frame{es:02d}.nii.gz")
    loaded = grid_transform_node_to_displacement_field(run.nodes["ed_to_es_transform"])
    np.testing.assert_allclose(loaded.vectors, written.vectors, atol=1e-3)
    labels = sequence_node_to_image_sequence(run.nodes["label_sequence"])
    np.testing.assert_array_equal(labels.array, read_nifti(run.output_dir / "warped_labels.nii.gz", labels=True).array)
    uncertainty = sequence_node_to_image_sequence(run.nodes["uncertainty_sequence"])
    assert uncertainty.array.shape == labels.array.shape and np.isfinite(uncertainty.array).all()
    vertices, faces, data = model_node_to_arrays(run.nodes["myocardium_model"])
    assert len(faces) > 0 and set(data) == {"uncertainty_es_nats", "displacement_es_mm"}
    row = table_node_to_indices(run.nodes["indices_table"])[0]
    assert row["LVEF"] == pytest.approx(record["indices"]["LVEF"]["value"], abs=1e-6)
    # the bounds (posterior-sample percentiles) travel with the table; the value is the posterior mean's
    assert row["LVEF_lower95"] == pytest.approx(record["indices"]["LVEF"]["lower95"], abs=1e-6)
    assert row["LVEF_upper95"] == pytest.approx(record["indices"]["LVEF"]["upper95"], abs=1e-6)
    assert row["LVEF_lower95"] <= row["LVEF_upper95"]
    assert run.nodes["strain_table"].GetNumberOfRows() == labels.n_frames


def test_motion_estimation_refuses_a_ct_volume(scene, tiny_motion_model):
    from CardiacMotionAtlasLib.mrml.volumes import add_volume_node

    ct = add_volume_node(scene, np.zeros((20, 20, 20), np.float32), np.eye(4), "CT")
    with pytest.raises(MethodInputError, match="CT"):
        CardiacMotionAtlasLogic().run_motion_estimation(scene, tiny_motion_model, ct)
