"""The phantom's contraction law over the cardiac cycle.

``contraction(t)`` is 0 at end-diastole (t = 0) and 1 at end-systole, then falls back through rapid
filling, diastasis and the atrial kick. The LV cavity volume is ``EDV * (1 - EF * contraction(t))``.
Every segment is a cosine ramp, so the curve is C1 and periodic.

Shape (fractions of the cycle, from Wiggers-diagram timings; e.g. Guyton & Hall, Textbook of Medical
Physiology, ch. 9): ejection ED -> ES (~35 % of the cycle, fastest early), rapid filling to ~25 % of
the stroke volume left (~20 % of the cycle), diastasis (slow filling), atrial kick (~15-25 % of the
stroke volume, last ~15 % of the cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def systolic_phase_from_heart_rate(heart_rate_bpm: float) -> float:
    """Normalised phase of end-systole. Systole lasts roughly 0.45 - 0.0019 * HR seconds (a linear
    fit of the HR dependence of the QT / ejection interval, good for 50-110 bpm), so ES falls at
    ~0.31 of the cycle at 60 bpm and ~0.40 at 90 bpm."""
    rr_s = 60.0 / heart_rate_bpm
    systole_s = 0.45 - 0.0019 * heart_rate_bpm
    return float(np.clip(systole_s / rr_s, 0.25, 0.45))


@dataclass(frozen=True)
class ContractionCurve:
    """Piecewise cosine contraction curve; phases are normalised to [0, 1).

    Attributes:
        es_phase: end-systole (contraction = 1).
        rapid_filling_end: end of rapid filling.
        residual_after_rapid_filling: contraction left after rapid filling (fraction of stroke volume).
        atrial_kick_start: start of the atrial contraction.
        residual_before_kick: contraction left at the start of the atrial kick.
        ejection_skew: > 1 makes ejection fastest early (rapid ejection).
    """

    es_phase: float = 0.35
    rapid_filling_end: float = 0.55
    residual_after_rapid_filling: float = 0.3
    atrial_kick_start: float = 0.85
    residual_before_kick: float = 0.22
    ejection_skew: float = 1.5

    @classmethod
    def for_heart_rate(cls, heart_rate_bpm: float, atrial_fraction: float = 0.2) -> "ContractionCurve":
        es = systolic_phase_from_heart_rate(heart_rate_bpm)
        rapid_end = es + 0.18 + 0.0 * heart_rate_bpm
        kick = max(rapid_end + 0.1, 0.85)
        return cls(
            es_phase=es,
            rapid_filling_end=rapid_end,
            residual_after_rapid_filling=atrial_fraction + 0.08,
            atrial_kick_start=kick,
            residual_before_kick=atrial_fraction,
        )

    def __call__(self, phase) -> np.ndarray:
        t = np.mod(np.asarray(phase, dtype=float), 1.0)
        out = np.zeros_like(t)

        def ramp(u: np.ndarray) -> np.ndarray:  # 0 -> 1, zero slope at both ends
            return 0.5 - 0.5 * np.cos(np.pi * np.clip(u, 0.0, 1.0))

        es, rf, kick = self.es_phase, self.rapid_filling_end, self.atrial_kick_start
        ejection = t < es
        u = (t[ejection] / es) ** (1.0 / self.ejection_skew)
        out[ejection] = ramp(u)
        filling = (t >= es) & (t < rf)
        out[filling] = 1.0 - (1.0 - self.residual_after_rapid_filling) * ramp((t[filling] - es) / (rf - es))
        diastasis = (t >= rf) & (t < kick)
        out[diastasis] = self.residual_after_rapid_filling - (
            self.residual_after_rapid_filling - self.residual_before_kick
        ) * ramp((t[diastasis] - rf) / (kick - rf))
        atrial = t >= kick
        out[atrial] = self.residual_before_kick * (1.0 - ramp((t[atrial] - kick) / (1.0 - kick)))
        return out


__all__ = ["ContractionCurve", "systolic_phase_from_heart_rate"]
