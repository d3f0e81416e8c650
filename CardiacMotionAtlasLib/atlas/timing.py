"""A fitted subject's timing and, where its frames do not show it, the spread of the prediction.

- :func:`recovered_es_phase`: the subject phase (normalised cycle phase, ED = 0) that ``D2`` maps onto
  the template's end-systole ``t'_ES``: ``D2^-1(t'_ES, c_t)``. Training aligns every training subject's
  ES on ``t'_ES``, so this is the atlas' ES of the subject: fitted from all frames, set by the frame that
  was observed as ES in ED+ES (the timing term), and the cohort's timing prior from ED alone.
- :func:`prediction_spread`: what the fit does not pin, stated as a spread next to the fitted codes'
  ES phase and LVEF (%, cavity volumes of its own meshes at ED and at its ES,
  :func:`~.evaluation.lv_cavity_volume_ml`). Default (``source="cohort"``): the standard deviation over
  the training cohort itself, its subjects' ES phases (known at training) and the LVEF of their own
  learned codes (:func:`cohort_function`). From ED alone nothing in the frame shows the motion, so the
  cohort's own variation is the honest range: the earlier spread (``source="codes"``, ``n_samples``
  codes drawn around the fit with the training codes' variance) was far narrower than the errors
  (benchmarks.atlas --quick, ED alone: LVEF +/- 0.4 % for predictions 6-18 points off, truth inside 2 sd
  for 0 of 4 hearts) because the training codes hardly vary in contraction. The cohort's ES sd is
  its known phases'; its LVEF sd comes from the training subjects with their residual warps and
  contraction-amplitude terms fitted on their own frames (``Atlas.training_residuals``, issue 16): their
  codes alone all give ~50 % LVEF (sd 0.4 points against true 28-65 %), which stated no spread at all.
  Atlases trained without them (older checkpoints) fall back to the codes alone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, Optional

import numpy as np
import torch

from .config import MeshConfig
from .evaluation import lv_cavity_volume_ml
from .fit import CodePrior, FittedSubject, cohort_prior, training_subject
from .material_tracking import inverse_time_warp
from .meshing import TemplateMotion, subject_mesh_sequence, track_template
from .model import Atlas


def recovered_es_phase(atlas: Atlas, fitted: FittedSubject) -> float:
    """``D2^-1(t'_ES, c_t)``: the subject's ES phase in the atlas (normalised cycle phase)."""
    return float(inverse_time_warp(atlas, fitted.time_code, np.array([atlas.template_es_phase]))[0])


def cyclic_phase_error(a: float, b: float) -> float:
    """Absolute difference of two normalised cycle phases on the circle (0 .. 0.5)."""
    return float(abs((a - b + 0.5) % 1.0 - 0.5))


def lvef_of(atlas: Atlas, fitted: FittedSubject, motion: TemplateMotion, config: MeshConfig) -> float:
    """LVEF (%) of the fitted subject: cavity volumes at phase 0 and at its recovered ES phase."""
    mesh = subject_mesh_sequence(atlas, fitted, [0.0, recovered_es_phase(atlas, fitted)], motion, config)
    ed, es = (lv_cavity_volume_ml(mesh.vertices[i], mesh.faces, fitted.frame) for i in range(2))
    return 100.0 * (ed - es) / ed if ed > 0 else float("nan")


def cohort_function(atlas: Atlas, motion: Optional[TemplateMotion] = None,
                    config: Optional[MeshConfig] = None) -> Dict[str, np.ndarray]:
    """The training subjects' ES phases (their known ones; the recovered ``D2^-1(t'_ES)`` where unknown)
    and the LVEF (%) of their own meshes (learned codes and, where the atlas has them, their fitted
    residual warps with the amplitude term): ``{"es_phase": (n,), "lvef": (n,)}``."""
    config = config or MeshConfig()
    motion = motion or track_template(atlas, config)
    es_phases, lvefs = [], []
    for index in range(len(atlas.subject_ids)):
        subject = training_subject(atlas, index)
        known = atlas.es_phases[index]
        es_phases.append(float(known) if known is not None else recovered_es_phase(atlas, subject))
        lvefs.append(lvef_of(atlas, subject, motion, config))
    return {"es_phase": np.asarray(es_phases), "lvef": np.asarray(lvefs)}


def prediction_spread(atlas: Atlas, fitted: FittedSubject, motion: Optional[TemplateMotion] = None,
                      config: Optional[MeshConfig] = None, n_samples: int = 8, seed: int = 0,
                      prior: Optional[CodePrior] = None, *, source: Optional[str] = None) -> Dict[str, float]:
    """ES phase and LVEF of the fitted codes and their spread (module docstring): keys ``es_phase``,
    ``es_phase_mean``, ``es_phase_sd``, ``lvef``, ``lvef_mean``, ``lvef_sd`` (phases normalised, LVEF in
    %), ``n_samples`` and ``source``. ``source="cohort"`` (default unless ``prior`` is given): mean = the
    fitted value, sd = the training cohort's (:func:`cohort_function`). ``source="codes"``: ``n_samples``
    codes drawn around the fit with ``prior``'s variances (default the cohort's,
    :func:`~.fit.cohort_prior`; ``fitted.prior`` is the narrower one the fit used last)."""
    config = config or MeshConfig()
    motion = motion or track_template(atlas, config)
    source = source or ("codes" if prior is not None else "cohort")
    if source not in ("cohort", "codes"):
        raise ValueError(f"unknown spread source {source!r}; expected 'cohort' or 'codes'")
    es_phase, lvef = recovered_es_phase(atlas, fitted), lvef_of(atlas, fitted, motion, config)
    if source == "cohort":
        cohort = cohort_function(atlas, motion, config)
        return {"es_phase": es_phase, "es_phase_mean": es_phase, "es_phase_sd": float(cohort["es_phase"].std()),
                "lvef": lvef, "lvef_mean": lvef, "lvef_sd": float(np.nanstd(cohort["lvef"])),
                "n_samples": int(len(cohort["lvef"])), "source": source}
    prior = prior or cohort_prior(atlas)
    generator = torch.Generator().manual_seed(int(seed))
    es_phases, lvefs = [], []
    for _ in range(n_samples):
        shape = fitted.shape_code.cpu() + torch.randn(fitted.shape_code.shape, generator=generator) * prior.shape_var.cpu().sqrt()
        time = fitted.time_code.cpu() + torch.randn(fitted.time_code.shape, generator=generator) * prior.time_var.cpu().sqrt()
        sample = replace(fitted, shape_code=shape.to(fitted.shape_code.dtype), time_code=time.to(fitted.time_code.dtype))
        es_phases.append(recovered_es_phase(atlas, sample))
        lvefs.append(lvef_of(atlas, sample, motion, config))
    es_phases, lvefs = np.asarray(es_phases), np.asarray(lvefs)
    return {"es_phase": es_phase, "es_phase_mean": float(es_phases.mean()),
            "es_phase_sd": float(es_phases.std()), "lvef": lvef,
            "lvef_mean": float(np.nanmean(lvefs)), "lvef_sd": float(np.nanstd(lvefs)), "n_samples": int(n_samples),
            "source": source}


__all__ = ["recovered_es_phase", "cyclic_phase_error", "lvef_of", "cohort_function", "prediction_spread"]
