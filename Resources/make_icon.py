"""Regenerate the extension and module icons (128x128 PNG): python Resources/make_icon.py"""

from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch

fig = plt.figure(figsize=(1.28, 1.28), dpi=100)
ax = fig.add_axes([0, 0, 1, 1])
ax.set_xlim(-1, 1); ax.set_ylim(-1, 1); ax.set_aspect("equal"); ax.axis("off")
fig.patch.set_alpha(0)
ax.add_patch(FancyBboxPatch((-0.94, -0.94), 1.88, 1.88, boxstyle="round,pad=0,rounding_size=0.28",
                            facecolor="#14325c", edgecolor="none"))
t = np.linspace(0, 2 * np.pi, 400)
x = 16 * np.sin(t) ** 3
y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
s = 0.036
# "motion": a faint larger outline (diastole) behind the filled heart (systole)
ax.plot(x * s * 1.22, y * s * 1.22 + 0.1, color="#f4a3a8", lw=2.0, alpha=0.8)
ax.fill(x * s, y * s + 0.08, color="#d7263d")
# ECG trace
ex = np.array([-0.85, -0.35, -0.25, -0.15, -0.05, 0.05, 0.15, 0.85])
ey = np.array([-0.55, -0.55, -0.45, -0.80, -0.10, -0.62, -0.55, -0.55])
ax.plot(ex, ey, color="white", lw=2.2, solid_joinstyle="round", solid_capstyle="round")
root = Path(__file__).resolve().parent.parent
for target in (root / "Resources" / "CardiacMotionAtlas.png",
               root / "CardiacMotionAtlas" / "Resources" / "Icons" / "CardiacMotionAtlas.png"):
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100, transparent=True)
