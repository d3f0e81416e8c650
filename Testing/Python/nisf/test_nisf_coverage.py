"""NISF++ labels stay inside the slab the SAX stack covers: beyond it no slice saw the anatomy, so the
field must not invent a blood pool there (intensities are left as the network gives them)."""

from __future__ import annotations

import numpy as np

from CardiacMotionAtlasLib.geometry.affine import apply_affine
from CardiacMotionAtlasLib.nisf.sampling import sample_grid, standard_grid
from CardiacMotionAtlasLib.nisf.sampling import sax_coverage_mm


def test_sax_coverage_is_the_stack_slab_widened_by_half_a_spacing(tiny_trained, nisf_sims):
    fit = tiny_trained.subject_fit(0)
    study = nisf_sims[0].study
    frame = fit.subject.frame
    sax = sorted(study.sax, key=lambda s: s.slice_index)
    heights = []
    for slice_ in sax:
        _, ny, nx = slice_.image.shape_zyx
        centre = apply_affine(slice_.image.ijk_to_ras, [(nx - 1) / 2.0, (ny - 1) / 2.0, 0.0])
        heights.append(frame.to_canonical(centre)[2] * frame.scale_mm)
    spacing = abs(heights[1] - heights[0])
    low, high = sax_coverage_mm(fit)  # training subject: offsets learnt, a fraction of a mm
    assert abs(low - (min(heights) - spacing / 2)) < 1.5 and abs(high - (max(heights) + spacing / 2)) < 1.5
    assert high - low > (len(sax) - 1) * spacing


def test_labels_beyond_the_stack_are_background_and_unchanged_inside(tiny_trained):
    fit = tiny_trained.subject_fit(0)
    matrix, shape = standard_grid(fit, spacing_mm=6.0)
    clipped = sample_grid(fit, matrix, shape, [0.0], largest_component=False).labels.array[0]
    free = sample_grid(fit, matrix, shape, [0.0], largest_component=False, clip_to_coverage=False).labels.array[0]
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    points = apply_affine(matrix, np.stack([ii, jj, kk], -1).reshape(-1, 3).astype(float))
    heights = (fit.subject.frame.to_canonical(points)[:, 2] * fit.subject.frame.scale_mm).reshape(shape)
    low, high = sax_coverage_mm(fit)
    outside = (heights < low) | (heights > high)
    assert outside.any() and (~outside).any()
    assert np.all(clipped[outside] == 0)
    assert np.array_equal(clipped[~outside], free[~outside])
    assert clipped[~outside].max() > 0
