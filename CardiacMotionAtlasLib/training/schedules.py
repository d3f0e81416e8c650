"""Learning-rate schedules shared by every trainer and fitter (atlas, NISF++, CardioMorphNet, CT CVAE)."""

from __future__ import annotations

import math


def cosine_factor(step: int, total: int, final_fraction: float = 0.1) -> float:
    """Multiplier of the base learning rate at optimiser ``step`` of a cosine decay over ``total`` steps:
    1 at step 0, ``final_fraction`` at ``step >= total`` (steps before 0 count as 0; ``total < 1`` as 1).
    Use it as a ``torch.optim.lr_scheduler.LambdaLR`` lambda or to set ``group["lr"]`` directly."""
    progress = min(max(step, 0) / max(total, 1), 1.0)
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


__all__ = ["cosine_factor"]
