"""Baselines for the motion benchmark, producing the same fields as CardioMorphNet (voxel displacements
``(T, 3, z, y, x)``, ``(di, dj, dk)``, pull convention, ED first):

- :func:`demons_fields`: SimpleITK diffeomorphic demons (intensity registration) of every frame to ED,
  two in-plane resolution levels; inverses by fixed-point iteration;
- :func:`intensity_config`: the same networks trained by intensity similarity only (local NCC + bending
  energy; no labels, no SegNet): the VoxelMorph-style baseline (the ``voxelmorph`` package needs
  ``neurite``, which does not install beside the pinned torch);
- :func:`no_segnet_config`: the ablation without SegNet guidance (shape loss at ED/ES only).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Tuple

import numpy as np
import SimpleITK as sitk
import torch

from ..geometry.registration import multiresolution_demons
from .config import MotionConfig
from .data import MotionSequence
from .fields import invert_displacement
from .model import frame_order


def intensity_config(config: MotionConfig) -> MotionConfig:
    """``config`` trained by local NCC between warped and fixed frames instead of shapes."""
    return replace(config, guidance="none", shape_weight=0.0, dice_weight=0.0, semi_weight=0.0,
                   intensity_weight=1.0, seg_steps=0)


def no_segnet_config(config: MotionConfig) -> MotionConfig:
    """``config`` without SegNet's pseudo-labels (supervised shape loss at ED/ES only)."""
    return replace(config, guidance="none", semi_weight=0.0, seg_steps=0)


def _image(volume: np.ndarray, spacing_ijk) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume, dtype=np.float32))
    image.SetSpacing([float(s) for s in spacing_ijk])
    return image


def demons_pair(fixed: np.ndarray, moving: np.ndarray, spacing_ijk, iterations: int = 60,
                smoothing_mm: float = 3.0) -> np.ndarray:
    """Diffeomorphic demons of ``moving`` onto ``fixed`` (``(z, y, x)``): voxel displacement
    ``(3, z, y, x)`` with ``moving(p + u(p)) ~ fixed(p)`` (the material motion fixed -> moving)."""
    field = multiresolution_demons(_image(fixed, spacing_ijk), _image(moving, spacing_ijk),
                                   ((2, 2, 1), (1, 1, 1)), iterations, smoothing_mm)
    array = sitk.GetArrayFromImage(field)  # (z, y, x, 3): physical (x, y, z) mm along the image axes
    return (np.moveaxis(array, -1, 0) / np.asarray(spacing_ijk, float)[:, None, None, None]).astype(np.float32)


def demons_fields(sequence: MotionSequence, iterations: int = 60, smoothing_mm: float = 3.0,
                  device="cpu") -> Tuple[torch.Tensor, torch.Tensor]:
    """``(ed_to_t, t_to_ed)`` voxel fields ``(T, 3, z, y, x)`` (ED-first order) by demons of every frame
    to ED (intensities of the normalised sequence)."""
    order = frame_order(sequence)
    spacing = sequence.spacing
    ed = sequence.images[order[0]]
    fields = [np.zeros((3, *sequence.shape_zyx), np.float32)]
    for frame in order[1:]:
        fields.append(demons_pair(ed, sequence.images[frame], spacing, iterations, smoothing_mm))
    ed_to_t = torch.as_tensor(np.stack(fields), device=device)
    t_to_ed = torch.cat([invert_displacement(ed_to_t[t: t + 1]) for t in range(ed_to_t.shape[0])])
    return ed_to_t, t_to_ed


__all__ = ["demons_fields", "demons_pair", "intensity_config", "no_segnet_config"]
