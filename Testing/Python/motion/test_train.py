"""Training reduces the shape loss; checkpoints load and resume; estimation writes consistent outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.errors import CheckpointError
from CardiacMotionAtlasLib.io.displacement_io import read_displacement_field
from CardiacMotionAtlasLib.io.nifti import read_nifti
from CardiacMotionAtlasLib.motion import MotionConfig, estimate_motion, load_motion, train_motion
from CardiacMotionAtlasLib.motion.outputs import write_motion_outputs
from CardiacMotionAtlasLib.motion.losses import sequence_loss
from CardiacMotionAtlasLib.motion.model import CardioMorphNet
from CardiacMotionAtlasLib.motion.train import sequence_tensors


def _shape_loss(model, config, images, labels) -> float:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return float(sequence_loss(model, images, labels, config, generator)[1]["shape"])


def test_a_few_steps_reduce_the_shape_loss(small_sequence):
    config = MotionConfig.tiny().with_changes(guidance="none", semi_weight=0.0, seg_steps=0, steps=25, lr=1e-2,
                                              final_lr_fraction=1.0, cyclic=False)
    images, labels = sequence_tensors(small_sequence, config, "cpu")
    torch.manual_seed(config.seed)
    before = _shape_loss(CardioMorphNet(config), config, images, labels)
    trained = train_motion([small_sequence], config, device="cpu")
    after = _shape_loss(trained.model, config, images, labels)
    assert after < 0.85 * before, (before, after)


def test_checkpoint_loads_and_resumes(tiny_trained, small_sequence):
    path = tiny_trained.checkpoint_path
    loaded = load_motion(path, device="cpu")
    for (name, a), (_, b) in zip(tiny_trained.model.state_dict().items(), loaded.model.state_dict().items()):
        assert torch.equal(a, b), name
    resumed = train_motion([small_sequence], tiny_trained.config, checkpoint_path=path, resume=True, device="cpu")
    assert resumed.result.resumed and resumed.result.start_step == resumed.result.total_steps
    with pytest.raises(CheckpointError, match="another config"):
        train_motion([small_sequence], tiny_trained.config.with_changes(rank=2), checkpoint_path=path, resume=True,
                     device="cpu")
    path.with_name("broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="broken.pt"):
        load_motion(path.with_name("broken.pt"), device="cpu")


def test_estimate_outputs_are_consistent(tiny_trained, small_sequence, tmp_path):
    estimate = estimate_motion(tiny_trained, small_sequence, samples=3)
    n, shape = small_sequence.n_frames, small_sequence.shape_zyx
    assert estimate.ed_to_t.shape == (n, 3, *shape) and estimate.covariance.shape == (n, *shape, 3, 3)
    assert np.count_nonzero(estimate.ed_to_t[small_sequence.ed_frame]) == 0
    assert np.all(np.isfinite(estimate.entropy)) and np.all(estimate.displacement_std_mm()[1:] > 0)
    assert np.array_equal(estimate.labels[0], small_sequence.labels[0])  # ED labels at ED
    for name, (low, high) in estimate.index_bounds.items():
        assert low <= high, name
    voxel_ml = abs(np.linalg.det(small_sequence.ijk_to_ras[:3, :3])) / 1000
    assert estimate.indices["LVEDV"] == pytest.approx(np.sum(small_sequence.labels[0] == 1) * voxel_ml, rel=1e-4)
    # frame-to-frame fields compose into the ED -> t fields (voxel units, the sequence's grid)
    from CardiacMotionAtlasLib.geometry.warp import compose, ras_to_voxel_displacement

    voxels = lambda a: torch.as_tensor(ras_to_voxel_displacement(a, small_sequence.ijk_to_ras))[None]  # noqa: E731
    for t in range(1, n):
        composed = compose(voxels(estimate.ed_to_t[t - 1]), voxels(estimate.steps[t]))
        error = (composed - voxels(estimate.ed_to_t[t]))[..., :-2, :-2].abs().max()
        # cyclic models combine two chains; a step is then u_{t-1->ED} then u_{ED->t}, exact up to the
        # round-trip residual of the ED <-> t-1 pair
        round_trip = compose(voxels(estimate.ed_to_t[t - 1]), voxels(estimate.t_to_ed[t - 1]))[..., :-2, :-2]
        assert error <= 2 * round_trip.abs().max() + 1e-3, (t, float(error))
    again = estimate_motion(load_motion(tiny_trained.checkpoint_path, "cpu"), small_sequence, samples=3)
    assert np.allclose(again.ed_to_t, estimate.ed_to_t, atol=1e-5)
    paths = write_motion_outputs(estimate, tmp_path / "out")
    field = read_displacement_field(paths["dvf_es"])
    assert np.allclose(field.vectors, estimate.ed_to_t[estimate.es_frame], atol=1e-4)
    assert field.uncertainty is not None and field.target_phase == pytest.approx(small_sequence.phases[estimate.es_frame])
    assert len(list((tmp_path / "out" / "dvf").glob("step_frame??.nii.gz"))) == n - 1
    assert read_nifti(paths["warped_labels"], labels=True).array.shape == (n, *shape)
    indices = json.loads((tmp_path / "out" / "indices.json").read_text())["indices"]
    assert set(indices) == {"LVEDV", "LVESV", "LVSV", "LVEF", "RVEDV", "RVESV", "RVSV", "RVEF", "LVM"}
    assert (tmp_path / "out" / "volume_curves.png").stat().st_size > 1000
    assert not list((tmp_path / "out").glob("*.tmp*"))


def test_shape_inputs_and_anchored_pseudo_labels(small_sequence):
    """DeformNet sees SegNet's probabilities only with SegNet guidance; the anchored pseudo-label term
    (ED labels carried by the whole chain against SegNet at the unlabelled frames) enters the loss."""
    config = MotionConfig.tiny().with_changes(shape_inputs=True)
    assert not CardioMorphNet(MotionConfig.tiny()).shape_inputs  # opt-in
    guided, plain = CardioMorphNet(config), CardioMorphNet(config.with_changes(guidance="none"))
    assert guided.shape_inputs and not plain.shape_inputs
    first = lambda m: m.deformnet.enc[0][0][0].in_channels  # noqa: E731
    assert first(guided) == first(plain) + 8
    images, labels = sequence_tensors(small_sequence, config, "cpu")
    torch.manual_seed(0)
    model = CardioMorphNet(config)
    with torch.no_grad():
        pseudo = torch.softmax(model.segment(images), 1)
        semi = [float(sequence_loss(model, images, labels, config.with_changes(anchor_weight=w),
                                    torch.Generator().manual_seed(0), pseudo)[1]["semi"]) for w in (0.0, 1.0)]
    assert semi[1] > semi[0] > 0
