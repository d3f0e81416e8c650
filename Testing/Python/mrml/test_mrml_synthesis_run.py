"""CT motion synthesis from the Logic: a CT volume node in, generated frames, grid transforms and a
sample table out (background CLI, real MRML scene); a cine sequence instead of a CT frame is refused."""

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
from CardiacMotionAtlasLib.mrml.transforms import grid_transform_node_to_displacement_field  # noqa: E402
from CardiacMotionAtlasLib.mrml.volumes import add_volume_node, volume_node_to_array  # noqa: E402


@pytest.fixture(scope="module")
def tiny_synth(tmp_path_factory):
    import torch

    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart
    from CardiacMotionAtlasLib.synthesis import SynthConfig, phantom_pairs, train_synthesis

    torch.set_num_threads(1)
    config = SynthConfig.tiny()
    pairs = phantom_pairs([PhantomHeart.from_seed(3, i) for i in range(2)], config)
    folder = tmp_path_factory.mktemp("synth")
    train_synthesis(pairs, config, out_dir=folder, device="cpu")
    return folder / "synth.pt"


def test_ct_synthesis_loads_generated_frames_flows_and_table(scene, tiny_synth, tmp_path):
    from CardiacMotionAtlasLib.phantom.ct import CTConfig, simulate_ct
    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart

    heart = PhantomHeart.from_seed(3, 5)
    ct = simulate_ct(heart, [heart.es_phase], CTConfig.tiny())
    frame = add_volume_node(scene, ct.image.array[0], ct.image.ijk_to_ras, "CT ES")
    labels = add_volume_node(scene, ct.labels.array[0], ct.image.ijk_to_ras, "CT ES labels", labels=True)
    run = CardiacMotionAtlasLogic(python_executable=sys.executable, force_cpu=True).run_ct_synthesis(
        scene, tiny_synth, frame, labels, n=2, es_phase=heart.es_phase, wait=True, work_dir=tmp_path / "run")
    assert run.ok, run.error_message()
    np.testing.assert_array_equal(read_nifti(tmp_path / "run" / "input" / "ct_frame.nii.gz").array[0],
                                  volume_node_to_array(frame))
    generated = run.nodes["generated_sequence"]
    assert generated.GetNumberOfDataNodes() == 2 and run.nodes["label_sequence"].GetNumberOfDataNodes() == 2
    for index, pair in enumerate(sorted(run.output_dir.glob("pair_*"))):
        np.testing.assert_allclose(volume_node_to_array(generated.GetNthDataNode(index)),
                                   read_nifti(pair / "generated_ED.nii.gz").array[0], atol=1e-4)
        flow = read_displacement_field(pair / "flow.nii.gz")
        loaded = grid_transform_node_to_displacement_field(run.nodes["flows"][pair.name])
        np.testing.assert_allclose(loaded.vectors, flow.vectors, atol=1e-3)  # mm
    table = run.nodes["table"]
    assert table.GetNumberOfRows() == 2
    column = table.GetTable().GetColumnByName("implied_lvef_pct")  # labels given: each sample's implied LVEF
    for index, pair in enumerate(sorted(run.output_dir.glob("pair_*"))):
        implied = json.loads((pair / "pair.json").read_text())["stats"]["implied_lvef_pct"]
        assert column.GetValue(index) == pytest.approx(implied) and 0.0 < implied < 100.0


def test_ct_synthesis_refuses_a_cine_sequence(scene, tiny_synth, tmp_path):
    logic = CardiacMotionAtlasLogic(python_executable=sys.executable)
    subject = logic.load_phantom_subject(scene, seed=0, index=0, tiny=True)
    before = scene.GetNumberOfNodes()
    with pytest.raises(MethodInputError, match="sequence"):
        logic.run_ct_synthesis(scene, tiny_synth, subject.browser, work_dir=tmp_path / "x")
    with pytest.raises(MethodInputError, match="no CT frame"):
        logic.run_ct_synthesis(scene, tiny_synth, None)
    assert scene.GetNumberOfNodes() == before and not (tmp_path / "x").exists()
