"""Phantom families: independently built generators of 4D hearts, selectable by name.

A family is a construction of the anatomy and of the motion law, not a parameter range. Every family
yields heart objects with the same public interface as :class:`~.heart.PhantomHeart` (exact labels,
trajectories, flows, closed meshes with fixed connectivity, exact volumes and indices, the LV frame),
so the simulators, the cohort writer and the benchmarks work on any of them.

* ``ellipsoidal`` (:mod:`.heart`): LV as a thick truncated ellipsoidal shell with a flat base, RV as a
  crescent on rays from one contraction centre, motion as a radial shift of ``R^3`` along those rays,
  a uniform base-to-apex stretch and a linear twist; ES timing from the heart rate.
* ``lofted`` (:mod:`.lofted`): LV lofted through non-circular cross-sections (regional wall thickness,
  septal flattening, blunt or pointed apex, narrowed annulus), bent and with a tilted, saddle-shaped
  base by volume-preserving shears; RV as an ellipsoid minus the LV; slice-wise in-plane motion,
  non-uniform longitudinal shortening, nonlinear twist; volume curves through random monotone
  control points with ES timing independent of heart rate.

``mixed`` alternates the families subject by subject (even index: ellipsoidal, odd: lofted).
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

FAMILY_NAMES: Tuple[str, ...] = ("ellipsoidal", "lofted")
"""The phantom families, in the order they were built."""
FAMILY_CHOICES: Tuple[str, ...] = FAMILY_NAMES + ("mixed",)
"""What ``--family`` accepts: a family, or ``mixed`` (alternating subject by subject)."""
DEFAULT_FAMILY = "ellipsoidal"


def _ellipsoidal(seed: int, index: int, kind: Optional[str], abnormal_fraction: float):
    from .heart import PhantomHeart
    from .parameters import sample_subject_parameters

    return PhantomHeart(sample_subject_parameters(seed, index, kind, abnormal_fraction=abnormal_fraction))


def _lofted(seed: int, index: int, kind: Optional[str], abnormal_fraction: float):
    from .lofted import LoftedHeart, sample_lofted_parameters

    return LoftedHeart(sample_lofted_parameters(seed, index, kind, abnormal_fraction=abnormal_fraction))


_BUILDERS: Dict[str, Callable] = {"ellipsoidal": _ellipsoidal, "lofted": _lofted}


def check_family(family: str) -> str:
    """``family`` if it is a known choice, else a ``ValueError`` listing the choices."""
    if family not in FAMILY_CHOICES:
        raise ValueError(f"unknown phantom family {family!r}; expected one of {', '.join(FAMILY_CHOICES)}")
    return family


def family_of_subject(family: str, index: int) -> str:
    """The family that draws subject ``index`` of a cohort of ``family`` (resolves ``mixed``)."""
    check_family(family)
    if family == "mixed":
        return FAMILY_NAMES[index % len(FAMILY_NAMES)]
    return family


def make_heart(family: str, seed: int, index: int, kind: Optional[str] = None, abnormal_fraction: float = 0.3):
    """Subject ``index`` of the cohort (``family``, ``seed``); deterministic. ``kind`` forces the
    phenotype (``normal``, ``reduced_ef``, ``hypertrophy``, ``dilated``)."""
    return _BUILDERS[family_of_subject(family, index)](seed, index, kind, abnormal_fraction)


def make_hearts(family: str, seed: int, indices, kind: Optional[str] = None, abnormal_fraction: float = 0.3) -> List:
    """Hearts for several subject indices (see :func:`make_heart`)."""
    return [make_heart(family, seed, int(i), kind, abnormal_fraction) for i in indices]


__all__ = ["DEFAULT_FAMILY", "FAMILY_CHOICES", "FAMILY_NAMES", "check_family", "family_of_subject",
           "make_heart", "make_hearts"]
