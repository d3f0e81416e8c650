"""Established intensity registration shared by the baselines and annotation steps (SimpleITK)."""

from __future__ import annotations

from typing import Optional, Sequence

import SimpleITK as sitk


def multiresolution_demons(fixed: sitk.Image, moving: sitk.Image, shrink_factors: Sequence[Sequence[int]],
                           iterations: int, smoothing: float, min_size: int = 0) -> sitk.Image:
    """Diffeomorphic demons of ``moving`` onto ``fixed``, coarse to fine over ``shrink_factors`` (per level
    ``(x, y, z)`` factors; ``(1, 1, 1)`` = full resolution), each level initialised with the previous field.
    ``smoothing``: standard deviation of the field smoothing (physical units of the images). Levels whose
    shrunk image is smaller than ``min_size`` voxels along an axis are skipped. Returns the displacement
    field image on ``fixed``'s (last level's) grid: ``moving(p + u(p)) ~ fixed(p)``."""
    field: Optional[sitk.Image] = None
    for shrink in shrink_factors:
        shrink = [int(s) for s in shrink]
        f_level = sitk.Shrink(fixed, shrink) if any(s != 1 for s in shrink) else fixed
        m_level = sitk.Shrink(moving, shrink) if any(s != 1 for s in shrink) else moving
        if min(f_level.GetSize()) < min_size:
            continue
        demons = sitk.DiffeomorphicDemonsRegistrationFilter()
        demons.SetNumberOfIterations(iterations)
        demons.SetStandardDeviations(smoothing)
        demons.SetSmoothDisplacementField(True)
        if field is None:
            field = demons.Execute(f_level, m_level)
        else:
            initial = sitk.Resample(field, f_level, sitk.Transform(), sitk.sitkLinear, 0.0, field.GetPixelID())
            field = demons.Execute(f_level, m_level, initial)
    if field is None:
        raise ValueError(f"demons: every level is smaller than {min_size} voxels (image size {fixed.GetSize()})")
    return field


__all__ = ["multiresolution_demons"]
