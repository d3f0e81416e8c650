"""Label-intensity consistency for fits without labels: the label head must agree with the slices'
intensities where bSSFP contrast is unambiguous (bright blood pools, dark myocardium).

With intensities only, a network adapted to a subject reproduces the slices' intensities while its label
head keeps the training family's anatomy (on lofted hearts the flat basal myocardium and blood pool of the
ellipsoidal family: ``benchmarks.nisf`` table (7), basal third). This term ties the labels to the observed
intensities: with ``q`` the PSF-averaged class probabilities of a pixel (the fraction of its voxel each
class fills) and ``I`` its observed, intensity-scaled value (normalised units), it penalises blood-pool
probability on pixels darker than the blood/myocardium midpoint ``m`` and myocardium probability on pixels
brighter than it:

    L = mean( (q_LV + q_RV) relu(m - I)^2 + q_myo relu(I - m)^2 )

``m`` is the midpoint of the probability-weighted mean intensities of blood and myocardium in the batch
(detached), so the term follows each subject's contrast. Background is left free (its tissues span the
whole intensity range: fat and atrial blood are bright, lung dark).

Opt-in (``FitConfig.label_consistency_weight``, default 0): measured worse on held-out hearts of the
training family (see the config's comment). Background being free is its flaw: the cheapest way to
satisfy it is to give ambiguous pixels (thin, partial-volume RV; dim basal blood) to the background; and
at a tilted base the wrong labels sit on atrial blood, as bright as the LV's, which it cannot tell apart.
"""

from __future__ import annotations

import torch

BLOOD = (1, 3)
MYOCARDIUM = 2


def blood_myocardium_midpoint(probabilities: torch.Tensor, intensity: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Midpoint (normalised intensity) of the probability-weighted mean intensities of blood (LV + RV)
    and myocardium; ``probabilities`` ``(N, 4)``, ``intensity`` ``(N,)``; detached."""
    with torch.no_grad():
        blood = probabilities[:, list(BLOOD)].sum(1)
        myo = probabilities[:, MYOCARDIUM]
        mean_blood = (blood * intensity).sum() / (blood.sum() + eps)
        mean_myo = (myo * intensity).sum() / (myo.sum() + eps)
        return 0.5 * (mean_blood + mean_myo)


def label_intensity_consistency(probabilities: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
    """The consistency loss above for PSF-averaged class probabilities ``(N, 4)`` and observed,
    intensity-scaled intensities ``(N,)`` (normalised units, blood ~0.8)."""
    target = intensity.detach()
    midpoint = blood_myocardium_midpoint(probabilities, target)
    blood = probabilities[:, list(BLOOD)].sum(1)
    myo = probabilities[:, MYOCARDIUM]
    too_dark = torch.relu(midpoint - target) ** 2
    too_bright = torch.relu(target - midpoint) ** 2
    return (blood * too_dark + myo * too_bright).mean()


__all__ = ["blood_myocardium_midpoint", "label_intensity_consistency"]
