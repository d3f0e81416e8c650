"""Shape-to-motion prior: the training cohort's full codes regressed from what one ED frame shows.

Why: ``D1`` does not depend on time, so one shape code ``c_p`` carries a subject's ED shape *and* its
motion (where ``D1^-1`` takes the template's later phases). A fit to the ED frame alone pins only the
directions of ``c_p`` that change the ED surface; the others (how much the wall moves) stay at the cohort
mean, and ``c_t`` (timing) is not observed at all. The phantom, like patients, ties motion to shape
(dilated, spherical ventricles with thin walls contract less), so the cohort can predict what ED hides.

How (all codes in the atlas' canonical code space, no units):

1. every training subject's ED frame is fitted exactly as a new subject's would be (networks frozen,
   setting ``ed``), giving its *ED code* ``e_i`` (``shape_code_dim``; :func:`.fit.fit_shape_motion_prior`,
   which fits and then calls :func:`regress_shape_motion_prior` here: this module needs no fitting, so the
   model can import it);
2. the subjects' learned full codes ``y_i = (c_p, c_t)_i`` are regressed on ``e_i`` by ridge regression
   (intercept unpenalised), the ridge strength chosen by exact leave-one-out error over a log grid;
3. a new subject's ED code ``e`` then predicts ``y(e) = ybar + (e - ebar) W``; the leave-one-out residual
   variance per dimension (floored) is the Gaussian prior around that prediction (:mod:`.fit` uses it for
   ``ed``, and as the prior of ``c_t`` and ``c_p`` in ``ed_es``).

With ``alpha -> inf`` the prediction is the cohort mean (the plain prior), so the regression can only
help where leave-one-out error says it does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence, Tuple

import numpy as np
import torch

from .errors import AtlasDataError

DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-3, 4, 29))
"""Ridge strengths searched by leave-one-out (relative to the number of training subjects)."""
VARIANCE_FLOOR = 1e-4
"""Smallest prior variance per code dimension (code units squared)."""


def ridge_leave_one_out(x: np.ndarray, y: np.ndarray, alphas: Sequence[float] = DEFAULT_ALPHAS
                        ) -> Tuple[np.ndarray, float, np.ndarray]:
    """Ridge regression of ``y`` ``(n, q)`` on ``x`` ``(n, p)`` with an unpenalised intercept.

    Returns ``(W (p, q), alpha, loo_residuals (n, q))`` for the ``alpha`` with the smallest exact
    leave-one-out squared error (hat-matrix identity on centred data, ``r_i / (1 - h_ii - 1/n)``)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < 3:
        raise AtlasDataError(None, f"a shape-to-motion prior needs >= 3 training subjects, got {n}")
    xc, yc = x - x.mean(0), y - y.mean(0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    best = None
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)
        hat = (u * shrink) @ u.T
        leverage = np.clip(1.0 - np.diag(hat) - 1.0 / n, 1e-6, None)
        residuals = (yc - hat @ yc) / leverage[:, None]
        error = float((residuals**2).sum())
        if best is None or error < best[0]:
            best = (error, float(alpha), residuals)
    _, alpha, residuals = best
    weights = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ yc)
    return weights, alpha, residuals


@dataclass
class ShapeMotionPrior:
    """Linear map from an ED code to a full code ``(c_p, c_t)`` with a diagonal Gaussian around it.

    ``input_mean`` ``(Lp,)``, ``weights`` ``(Lp, Lp + Lt)``, ``output_mean`` ``(Lp + Lt,)``,
    ``residual_var`` ``(Lp + Lt,)`` (leave-one-out); ``alpha`` the ridge strength; ``explained`` the
    fraction of the codes' variance that leave-one-out prediction explains (0 = no better than the mean)."""

    input_mean: np.ndarray
    weights: np.ndarray
    output_mean: np.ndarray
    residual_var: np.ndarray
    shape_code_dim: int
    alpha: float = 0.0
    explained: float = 0.0

    def predict(self, ed_shape_code: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(c_p (Lp,), c_t (Lt,))`` predicted from an ED code ``(Lp,)`` (same device and dtype)."""
        e = ed_shape_code.detach().cpu().numpy().astype(float)
        code = self.output_mean + (e - self.input_mean) @ self.weights
        out = torch.as_tensor(code, dtype=ed_shape_code.dtype, device=ed_shape_code.device)
        return out[:self.shape_code_dim], out[self.shape_code_dim:]

    def variances(self, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
        """Prior variances ``(Lp,)``, ``(Lt,)`` around the prediction (float32 on ``device``)."""
        var = torch.as_tensor(self.residual_var, dtype=torch.float32, device=device)
        return var[:self.shape_code_dim], var[self.shape_code_dim:]

    def to_dict(self) -> Dict:
        """Plain lists and floats (checkpoint ``extra``, read back with ``weights_only=True``)."""
        return {"input_mean": self.input_mean.tolist(), "weights": self.weights.tolist(),
                "output_mean": self.output_mean.tolist(), "residual_var": self.residual_var.tolist(),
                "shape_code_dim": int(self.shape_code_dim), "alpha": float(self.alpha),
                "explained": float(self.explained)}

    @classmethod
    def from_dict(cls, data: Dict) -> "ShapeMotionPrior":
        arrays = {k: np.asarray(data[k], float) for k in ("input_mean", "weights", "output_mean", "residual_var")}
        return cls(**arrays, shape_code_dim=int(data["shape_code_dim"]), alpha=float(data.get("alpha", 0.0)),
                   explained=float(data.get("explained", 0.0)))


def regress_shape_motion_prior(ed_codes: np.ndarray, full_codes: np.ndarray, shape_code_dim: int,
                               alphas: Sequence[float] = DEFAULT_ALPHAS) -> ShapeMotionPrior:
    """The prior from training subjects' ED codes ``(n, Lp)`` and learned full codes ``(n, Lp + Lt)``."""
    ed_codes, full_codes = np.asarray(ed_codes, float), np.asarray(full_codes, float)
    if ed_codes.shape[0] != full_codes.shape[0] or ed_codes.shape[1] != shape_code_dim:
        raise AtlasDataError(None, f"ED codes {ed_codes.shape} do not match full codes {full_codes.shape}")
    weights, alpha, residuals = ridge_leave_one_out(ed_codes, full_codes, alphas)
    total = float(((full_codes - full_codes.mean(0)) ** 2).sum())
    explained = 1.0 - float((residuals**2).sum()) / total if total > 0 else 0.0
    return ShapeMotionPrior(ed_codes.mean(0), weights, full_codes.mean(0),
                            np.maximum((residuals**2).mean(0), VARIANCE_FLOOR), shape_code_dim, alpha, explained)


__all__ = ["ShapeMotionPrior", "ridge_leave_one_out", "regress_shape_motion_prior", "DEFAULT_ALPHAS"]
