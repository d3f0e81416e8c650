"""Frames and geometry: IJK<->RAS matrices, RAS<->LPS, rigid transforms."""

from .affine import (
    RAS_FROM_LPS,
    apply_affine,
    check_ijk_to_ras,
    decompose_ijk_to_ras,
    make_ijk_to_ras,
    rigid_matrix,
    rotation_matrix,
)

__all__ = [
    "RAS_FROM_LPS",
    "apply_affine",
    "check_ijk_to_ras",
    "decompose_ijk_to_ras",
    "make_ijk_to_ras",
    "rigid_matrix",
    "rotation_matrix",
]
