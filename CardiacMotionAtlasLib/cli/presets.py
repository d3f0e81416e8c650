"""Named presets ``tiny | demo | default | large`` of every train / fit / estimate command.

Each preset is built from the method configs' own constructors (``tiny()``, the defaults, ``quick()``,
``large()``/``paper()``) and, for ``demo``, from the main job's modules (``main_job/demo_*.py``), so
``--preset demo`` trains and applies exactly what ``cardiac-atlas demo`` does; explicit options
override a preset. Nothing here repeats a number that lives in a config class or a demo module,
except the atlas' demo fit and mesh settings (:data:`ATLAS_DEMO_FIT`, :data:`ATLAS_DEMO_MESH`), which
``main_job/demo_atlas.py`` writes inline in its function; a test checks they stay equal to what the
main job passes (``Testing/Python/cli/test_cli_presets.py``).

==========  =====================================  ====================================================
preset      meaning                                 sizes
==========  =====================================  ====================================================
tiny        tests and smoke runs (seconds)          every config's ``tiny()``; the main job's ``--tiny``
demo        the main job (minutes on 2 CPU cores)   ``AtlasConfig.quick()`` + the demo's fit and mesh;
                                                    NISF++, CardioMorphNet, CVAE as in ``demo_*.py``
default     the configs' defaults (benchmarks)      ``XConfig()``
large       GPU sizes                               ``AtlasConfig.large()``, ``NISFConfig.paper()``,
                                                    ``MotionConfig.large()``, ``SynthConfig.large()``
==========  =====================================  ====================================================
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # the motion package imports torch; presets stay light
    from ..motion.preprocessing import GridRule

PRESETS = ("tiny", "demo", "default", "large")


def check_preset(name: str) -> str:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")
    return name


# --------------------------------------------------------------------------- atlas

def _atlas_demo_fit():
    from ..atlas.config import FitConfig

    return FitConfig(steps=200, points_per_frame=1000)


def _atlas_demo_mesh():
    from ..atlas.config import MeshConfig

    return MeshConfig(resolution=56, tracking_steps=24)


ATLAS_DEMO_FIT = _atlas_demo_fit
"""The main job's atlas fit (``main_job/demo_atlas.py``, size ``quick``): 200 steps, 1000 points/frame."""
ATLAS_DEMO_MESH = _atlas_demo_mesh
"""The main job's atlas meshing (``main_job/demo_atlas.py``, size ``quick``): grid 56, 24 tracking steps."""


@dataclass
class AtlasPreset:
    """Training config, fitting config and meshing config of one preset."""

    name: str
    config: Any  # AtlasConfig
    fit: Any  # FitConfig
    mesh: Any  # MeshConfig


def atlas_preset(name: str) -> AtlasPreset:
    from ..atlas.config import AtlasConfig, FitConfig, MeshConfig

    check_preset(name)
    if name == "tiny":
        return AtlasPreset(name, AtlasConfig.tiny(), FitConfig.tiny(), MeshConfig.tiny())
    if name == "demo":
        return AtlasPreset(name, AtlasConfig.quick(), ATLAS_DEMO_FIT(), ATLAS_DEMO_MESH())
    if name == "large":
        return AtlasPreset(name, AtlasConfig.large(), FitConfig(), MeshConfig())
    return AtlasPreset(name, AtlasConfig(), FitConfig(), MeshConfig())


def recognise_atlas_preset(config) -> Optional[str]:
    """The preset whose training config ``config`` is (seed and step count aside), or None."""
    wanted = asdict(config)
    for name in PRESETS:
        candidate = replace(atlas_preset(name).config, seed=config.seed, steps=config.steps)
        if asdict(candidate) == wanted:
            return name
    return None


def applied_atlas_preset(config, name: Optional[str] = None) -> "tuple[AtlasPreset, str]":
    """The preset a fit/mesh of an atlas trained with ``config`` uses, and where it came from: ``name``
    when given (``--preset`` / the batch's ``preset`` option), else the preset the atlas was trained
    with, else ``default``. Shared by ``atlas fit``/``atlas mesh`` and the batch's ``atlas-fit``."""
    if name:
        return atlas_preset(name), "--preset"
    recognised = recognise_atlas_preset(config)
    if recognised:
        return atlas_preset(recognised), "the atlas' configuration"
    return atlas_preset("default"), "no preset matches the atlas' configuration"


# --------------------------------------------------------------------------- NISF++

def nisf_preset(name: str):
    """The :class:`NISFConfig` (its ``fit`` included) of a preset."""
    from ..nisf import NISFConfig

    check_preset(name)
    if name == "tiny":
        return NISFConfig.tiny()
    if name == "demo":
        from ..main_job.demo_nisf import _quick_config

        return _quick_config()
    return NISFConfig.paper() if name == "large" else NISFConfig()


# --------------------------------------------------------------------------- CardioMorphNet

@dataclass
class MotionPreset:
    name: str
    config: Any  # MotionConfig
    reduction: Optional[GridRule]  # the grid rule stored with a model trained at this preset; None: the full grid


def motion_preset(name: str) -> MotionPreset:
    from ..motion import MotionConfig

    check_preset(name)
    if name in ("tiny", "demo"):
        from ..main_job.demo_motion import DEMO_CONFIG
        from ..motion.preprocessing import PRESET_GRIDS

        config = MotionConfig.tiny() if name == "tiny" else replace(DEMO_CONFIG)
        return MotionPreset(name, config, PRESET_GRIDS[name])
    return MotionPreset(name, MotionConfig.large() if name == "large" else MotionConfig(), None)


# --------------------------------------------------------------------------- CT motion CVAE

def synth_preset(name: str, seed: int = 0):
    """The :class:`SynthConfig` of a preset (``seed`` set)."""
    from ..synthesis import SynthConfig

    check_preset(name)
    if name in ("tiny", "demo"):
        from ..main_job.demo_synth import synth_sizes

        return synth_sizes("tiny" if name == "tiny" else "quick", seed)[0]
    return replace(SynthConfig.large() if name == "large" else SynthConfig(), seed=seed)


__all__ = ["ATLAS_DEMO_FIT", "ATLAS_DEMO_MESH", "AtlasPreset", "MotionPreset", "PRESETS",
           "applied_atlas_preset", "atlas_preset", "check_preset", "motion_preset", "nisf_preset",
           "recognise_atlas_preset", "synth_preset"]
