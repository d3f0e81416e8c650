"""The working crop around the heart: found from the frame's blood pool when no labels are given."""

from __future__ import annotations

import numpy as np

from CardiacMotionAtlasLib.synthesis import SynthConfig
from CardiacMotionAtlasLib.synthesis.grid import heart_centre, working_grid


def _off_centre(es_frame, pad: int = 20):
    """The ES frame padded with air on the +i side: the heart keeps its RAS place, the grid centre moves."""
    volume = es_frame.image.array[0]
    padded = np.pad(volume, ((0, 0), (0, 0), (0, pad)), constant_values=-1000.0)
    return padded, es_frame.image.ijk_to_ras, np.pad(es_frame.labels.array[0], ((0, 0), (0, 0), (0, pad)))


def test_crop_centre_from_the_frame_lies_on_the_heart(es_frame):
    volume, matrix, labels = _off_centre(es_frame)
    truth = heart_centre(volume, matrix, labels)  # the labels' centroid (RAS mm)
    found = heart_centre(volume, matrix)  # no labels: the contrast-filled blood pool
    nz, ny, nx = volume.shape
    grid_centre = (matrix @ np.array([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2, 1.0]))[:3]
    voxel = float(np.linalg.norm(matrix[:3, 0]))
    assert np.linalg.norm(grid_centre - truth) > 5 * voxel  # the fallback would miss the heart ...
    # ... the blood pool (atria and great vessels included, so not exactly the labels' centroid) does not:
    assert np.linalg.norm(found - truth) < 15.0  # mm
    # and the default working cube around it holds every labelled voxel
    config = SynthConfig()
    work_matrix, shape = working_grid(found, config)
    k, j, i = np.nonzero(labels > 0)
    ras = matrix @ np.stack([i, j, k, np.ones_like(i)])
    ijk = np.linalg.inv(work_matrix) @ ras
    assert np.all(ijk[:3] >= 0) and np.all(ijk[:3] <= np.array(shape)[::-1, None] - 1)
    # a frame without contrast falls back to the grid centre
    assert np.allclose(heart_centre(np.zeros_like(volume), matrix), grid_centre)


def test_fine_config_is_2mm_and_valid():
    config = SynthConfig.fine().validate()
    assert config.working_voxel_mm <= 2.0 and config.working_fov_mm >= 120.0
    matrix, shape = working_grid(np.array([10.0, -5.0, 3.0]), config)
    assert tuple(shape) == (64, 64, 64) and np.allclose(np.abs(np.diag(matrix)[:3]), 2.0)
