"""Bad inputs raise clear errors naming the input and the problem; reductions keep the geometry."""

from __future__ import annotations

import numpy as np
import pytest

from CardiacMotionAtlasLib.data.image_sequence import ImageSequence
from CardiacMotionAtlasLib.errors import CardiacMotionAtlasError
from CardiacMotionAtlasLib.geometry.affine import apply_affine
from CardiacMotionAtlasLib.motion import MotionConfig, MotionInputError, train_motion
from CardiacMotionAtlasLib.motion.data import prepare_sequence
from CardiacMotionAtlasLib.motion.data import evenly_spaced_frames, resample_sequence
from CardiacMotionAtlasLib.motion.errors import MotionConfigError


def _image(frames=3, shape=(4, 8, 8), matrix=None):
    rng = np.random.default_rng(0)
    return ImageSequence(rng.random((frames, *shape)).astype(np.float32), np.eye(4) if matrix is None else matrix,
                         name="sax.nii.gz")


def test_one_frame_is_refused():
    with pytest.raises(MotionInputError, match=r"subj01.*at least 2 frames"):
        prepare_sequence(_image(frames=1), subject_id="subj01")


def test_nan_is_refused():
    image = _image()
    image.array[1, 2, 3, 4] = np.nan
    with pytest.raises(MotionInputError, match=r"sax.nii.gz.*1 NaN/inf"):
        prepare_sequence(image)


def test_label_geometry_must_match():
    image = _image()
    shifted = np.eye(4)
    shifted[0, 3] = 5.0
    labels = ImageSequence(np.zeros((3, 4, 8, 8), np.uint8), shifted)
    with pytest.raises(MotionInputError, match="geometry"):
        prepare_sequence(image, labels, subject_id="subj02")
    wrong_grid = ImageSequence(np.zeros((3, 4, 8, 9), np.uint8), np.eye(4))
    with pytest.raises(MotionInputError, match=r"subj02.*labels grid"):
        prepare_sequence(image, wrong_grid, subject_id="subj02")
    bad_values = ImageSequence(np.full((3, 4, 8, 8), 7, np.uint8), np.eye(4))
    with pytest.raises(MotionInputError, match="labels must be 0..3"):
        prepare_sequence(image, bad_values, subject_id="subj02")


def test_training_needs_ed_and_es_labels(small_sequence):
    from dataclasses import replace

    unlabelled = replace(small_sequence, labels={0: small_sequence.labels[0]})
    with pytest.raises(MotionInputError, match=r"no labels at ES"):
        train_motion([unlabelled], MotionConfig.tiny(), device="cpu")
    assert isinstance(MotionInputError("x", "y"), CardiacMotionAtlasError)


def test_bad_config_is_refused():
    with pytest.raises(MotionConfigError, match="guidance"):
        MotionConfig(guidance="maybe").validate()
    with pytest.raises(MotionConfigError, match="posterior_samples"):
        MotionConfig(posterior_samples=1).validate()


def test_resampling_keeps_points_in_place(small_sequence):
    frames = evenly_spaced_frames(small_sequence.n_frames, 3, small_sequence.ed_frame, small_sequence.es_frame)
    assert small_sequence.es_frame in frames and 0 in frames
    small = resample_sequence(small_sequence, factor=2, crop_size=8, frames=frames)
    assert small.shape_zyx == (small_sequence.shape_zyx[0], 8, 8)
    assert small.images.shape[0] == len(frames) and small.es_frame == frames.index(small_sequence.es_frame)
    # the RAS centre of reduced voxel (k, j, i) is the mean of the 2x2 original pixel centres it averages
    big = small_sequence.ijk_to_ras
    x0 = np.linalg.solve(big[:3, :3], apply_affine(small.ijk_to_ras, [0.0, 0.0, 0.0]) - big[:3, 3])
    assert np.allclose(x0[2], 0.0) and np.allclose(x0[:2] % 2, 0.5)
    i0, j0 = int(x0[0] - 0.5), int(x0[1] - 0.5)
    expected = small_sequence.images[frames[1], 2, j0:j0 + 2, i0:i0 + 2].mean()
    assert small.images[1, 2, 0, 0] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(MotionInputError, match="ES frame"):
        resample_sequence(small_sequence, frames=[f for f in range(small_sequence.n_frames)
                                                  if f != small_sequence.es_frame])
