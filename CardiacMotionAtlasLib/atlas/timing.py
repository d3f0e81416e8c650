"""A fitted subject's timing and, where its frames do not show it, the spread of the prediction.

- :func:`recovered_es_phase`: the subject phase (normalised cycle phase, ED = 0) that ``D2`` maps onto
  the template's end-systole ``t'_ES``: ``D2^-1(t'_ES, c_t)``. Training aligns every training subject's
  ES on ``t'_ES``, so this is the atlas' ES of the subject: fitted from all frames, set by the frame that
  was observed as ES in ED+ES (the timing term), and the cohort's timing prior from ED alone.
- :func:`prediction_spread`: what the fit does not pin, stated as a spread. ``n_samples`` codes are
  drawn around the fitted codes with the training codes' variance (the cohort's spread of shape, motion
  and timing; the shape-to-motion prior's leave-one-out variance was far narrower than its errors:
  LVEF +/- 0.3 % for a 47 % prediction of a 29 % heart), each giving an ES phase and an LVEF (%, cavity
  volumes of its own meshes at ED and at its ES, :func:`~.evaluation.lv_cavity_volume_ml`); returned as
  mean and standard deviation over the samples next to the fitted codes' values. From ED alone this is the honest range of
  the timing and function the cohort allows; with more frames it narrows only through the prior (the
  samples ignore the data), so it is reported for ``ed`` in the benchmark.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, Optional

import numpy as np
import torch

from .config import MeshConfig
from .evaluation import lv_cavity_volume_ml
from .fit import CodePrior, FittedSubject, cohort_prior
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


def prediction_spread(atlas: Atlas, fitted: FittedSubject, motion: Optional[TemplateMotion] = None,
                      config: Optional[MeshConfig] = None, n_samples: int = 8, seed: int = 0,
                      prior: Optional[CodePrior] = None) -> Dict[str, float]:
    """ES phase and LVEF of the fitted codes and their spread over ``n_samples`` prior draws (module
    docstring): keys ``es_phase``, ``es_phase_mean``, ``es_phase_sd``, ``lvef``, ``lvef_mean``,
    ``lvef_sd`` (phases normalised, LVEF in %), ``n_samples``. ``prior`` (its variances are used)
    defaults to the cohort's (:func:`~.fit.cohort_prior`); ``fitted.prior`` is the narrower one the fit
    used last."""
    config = config or MeshConfig()
    motion = motion or track_template(atlas, config)
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
    return {"es_phase": recovered_es_phase(atlas, fitted), "es_phase_mean": float(es_phases.mean()),
            "es_phase_sd": float(es_phases.std()), "lvef": lvef_of(atlas, fitted, motion, config),
            "lvef_mean": float(np.nanmean(lvefs)), "lvef_sd": float(np.nanstd(lvefs)), "n_samples": int(n_samples)}


__all__ = ["recovered_es_phase", "cyclic_phase_error", "lvef_of", "prediction_spread"]
