"""The atlas' one runner: fit a new subject's codes (networks frozen), mesh it over the cycle and publish
every output at once. The CLI (``cardiac-atlas atlas fit``), the Dask batch (``atlas-fit``), the Slicer
Logic (which runs the CLI) and the main job (``main_job/demo_atlas.py``) all call :func:`run_atlas_fit`.

Outputs, written into a staging folder beside ``out`` and published at once (a failure leaves nothing at
``out``; :func:`~CardiacMotionAtlasLib.io.atomic.staged_output_dir`), named here and nowhere else:

- ``<subject>_codes.pt``: the fitted codes, canonical frame and fit config (checkpoint kind
  ``atlas_subject``; ``cardiac-atlas atlas mesh --subject`` re-meshes it);
- ``meshes/<subject>_atlas_myocardium_NNN.vtp``: the subject's LV myocardium at ``phases`` equally spaced
  normalised cycle phases (RAS mm, ED = phase 0), one vertex set and face list shared by every frame
  (dense correspondence), point data ``displacement_mm`` (distance from the ED position, mm);
- ``template/atlas_template_myocardium_NNN.vtp`` (unless ``write_template=False``): the atlas template at
  the same phases (canonical heart frame scaled to mm by the training subjects' mean scale), same faces;
- ``volume_curve.png`` and ``volume_curve.json``: the LV cavity volume (ml) of the meshes over the cycle,
  with the subject, setting, phases, SDF error (mm), fit time (s), the fit and meshing sizes, the key
  results (EDV/ESV ml, EF %) and the caller's ``record`` entries (the CLI adds the preset and the atlas'
  training step and completeness).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np

from ..data.mesh_sequence import MeshSequence
from ..errors import CineStudyError, InputFileError
from ..training.progress import ProgressReporter
from .config import FIT_SETTINGS, FitConfig, MeshConfig
from .errors import AtlasConfigError
from .fit import FittedSubject
from .meshing import TemplateMotion
from .model import Atlas
from .sampling import SubjectData

PathLike = Union[str, os.PathLike]
LABEL_SOURCES = ("auto", "sax", "ground_truth")
CODES_SUFFIX = "_codes.pt"
MESHES_DIR = "meshes"
TEMPLATE_DIR = "template"
CURVE_PNG = "volume_curve.png"
CURVE_JSON = "volume_curve.json"


@dataclass(frozen=True, eq=False)
class AtlasFitRun:
    """What :func:`run_atlas_fit` computed and published.

    ``fitted``: the codes and canonical frame; ``meshes``: the subject's myocardium at ``phases``
    (normalised, ED = 0; RAS mm, shared faces); ``template``: the template at the same phases (None when
    not written); ``lv_ml``: the cavity volume (ml) of each mesh; ``motion``: the tracked template used
    (reusable for other subjects of the same atlas and ``mesh_config``); ``paths``: name -> published path
    under ``out`` (``codes``, ``meshes``, ``template``, ``volume_curve_png``, ``volume_curve_json``).
    """

    subject_id: str
    setting: str
    fitted: FittedSubject
    meshes: MeshSequence
    template: Optional[MeshSequence]
    phases: np.ndarray
    lv_ml: np.ndarray
    fit_config: FitConfig
    mesh_config: MeshConfig
    motion: TemplateMotion
    paths: Dict[str, Path] = field(default_factory=dict)

    def key_results(self) -> Dict[str, float]:
        """Flat scalars for a cohort summary: ``sdf_error_mm`` (mm, on the observed samples), ``fit_s``
        (s), ``LVEDV``/``LVESV`` (ml: the cavity at phase 0 and its minimum over the cycle), ``LVEF`` (%)."""
        edv, esv = float(self.lv_ml[0]), float(np.min(self.lv_ml))
        return {"sdf_error_mm": float(self.fitted.sdf_error_mm), "fit_s": float(self.fitted.seconds),
                "LVEDV": edv, "LVESV": esv, "LVEF": 100.0 * (edv - esv) / edv if edv > 0 else float("nan")}


def _subject_from_path(path: Path, sampling, seed: int, labels: str, label_convention: Optional[str]) -> SubjectData:
    """SDF samples of a study folder, phantom subject folder or bare label map, after a header pre-flight
    (every problem raised at once). ``labels``: ``auto`` (a phantom folder's ground truth, a study's SAX
    segmentation, a bare file's labels), ``sax`` (the SAX segmentation even in a phantom folder) or
    ``ground_truth`` (a phantom folder's ``ground_truth/labels_iso.nii.gz``)."""
    from ..io.cohort import entry_for
    from ..io.cohort_scan import raise_problems, scan_study
    from .inputs import PHANTOM_LABELS, subject_from_entry

    entry = entry_for(path, label_convention, bare_files_are_labels=True)
    if labels == "ground_truth" and not entry.ground_truth:
        raise InputFileError(path, f"no {PHANTOM_LABELS} (not a phantom subject folder)")
    if labels == "sax":
        if entry.layout in ("labels", "ground_truth"):
            raise CineStudyError(path, "no SAX segmentation found (the atlas fit needs LV myocardium labels)")
        entry = replace(entry, ground_truth=False)
    raise_problems([scan_study(entry, ("labels",))])
    return subject_from_entry(entry, sampling, seed)


def _configs(fit_config: Optional[FitConfig], mesh_config: Optional[MeshConfig], seed: Optional[int],
             steps: Optional[int], points_per_frame: Optional[int], resolution: Optional[int],
             tracking_steps: Optional[int]):
    fit_config = fit_config or FitConfig()
    overrides = {"seed": seed, "steps": steps, "points_per_frame": points_per_frame}
    fit_config = replace(fit_config, **{k: int(v) for k, v in overrides.items() if v is not None})
    mesh_config = mesh_config or MeshConfig()
    overrides = {"resolution": resolution, "tracking_steps": tracking_steps}
    return fit_config, replace(mesh_config, **{k: int(v) for k, v in overrides.items() if v is not None})


def run_atlas_fit(atlas: Atlas, subject: Union[SubjectData, PathLike], out: PathLike, *, setting: str = "all",
                  phases: int = 25, fit_config: Optional[FitConfig] = None, mesh_config: Optional[MeshConfig] = None,
                  steps: Optional[int] = None, points_per_frame: Optional[int] = None,
                  resolution: Optional[int] = None, tracking_steps: Optional[int] = None,
                  seed: Optional[int] = None, motion: Optional[TemplateMotion] = None, labels: str = "auto",
                  label_convention: Optional[str] = None, write_template: bool = True,
                  record: Optional[Mapping[str, Any]] = None,
                  progress: Optional[ProgressReporter] = None) -> AtlasFitRun:
    """Fit ``subject``'s codes from the frames ``setting`` observes (``all``, ``ed_es`` or ``ed``), mesh it
    at ``phases`` equally spaced cycle phases and publish every output into ``out`` (module docstring).

    ``subject``: SDF samples (:class:`SubjectData`), or a study folder / phantom subject folder / bare 4D
    label map read here after a header pre-flight, with the atlas' stored sampling config (paths only:
    ``labels`` = ``auto`` (a phantom folder's ground truth, a study's SAX segmentation, a bare file's
    labels), ``sax`` or ``ground_truth``; ``label_convention`` of a bare file; the sampling seed is the
    fit's seed). ``fit_config`` / ``mesh_config`` (default
    ``FitConfig()`` / ``MeshConfig()``) are overridden by ``steps``, ``points_per_frame``, ``seed`` and
    ``resolution``, ``tracking_steps`` when given. ``motion``: a template tracked with that mesh config
    (computed here when None; pass it to reuse it across subjects). ``record``: extra JSON-able entries of
    ``volume_curve.json``. Raises the library's input errors naming the file, :class:`AtlasConfigError`
    for bad options; nothing is left at ``out`` on failure."""
    from ..analysis.volume_curves import VolumeCurve, plot_volume_curves
    from ..io.atomic import atomic_write_text, staged_output_dir
    from ..io.meshes import write_mesh_sequence
    from .evaluation import cavity_volume_curve
    from .fit import fit_subject
    from .meshing import subject_mesh_sequence, template_mesh_sequence, track_template

    if setting not in FIT_SETTINGS:
        raise AtlasConfigError(f"setting must be one of {FIT_SETTINGS}, got {setting!r}")
    if labels not in LABEL_SOURCES:
        raise AtlasConfigError(f"labels must be one of {LABEL_SOURCES}, got {labels!r}")
    if int(phases) < 1:
        raise AtlasConfigError(f"phases must be >= 1, got {phases}")
    fit_config, mesh_config = _configs(fit_config, mesh_config, seed, steps, points_per_frame, resolution,
                                       tracking_steps)
    if isinstance(subject, (str, os.PathLike)):
        subject = _subject_from_path(Path(subject), atlas.config.sampling, fit_config.seed, labels, label_convention)

    fitted = fit_subject(atlas, subject, setting, fit_config, progress=progress)
    cycle = np.arange(int(phases)) / int(phases)
    motion = motion if motion is not None else track_template(atlas, mesh_config)
    meshes = subject_mesh_sequence(atlas, fitted, cycle, motion, mesh_config)
    template = template_mesh_sequence(atlas, cycle, motion, mesh_config) if write_template else None
    lv_ml = cavity_volume_curve(meshes, fitted.frame)
    run = AtlasFitRun(fitted.subject_id, setting, fitted, meshes, template, cycle, lv_ml, fit_config, mesh_config,
                      motion)
    final = Path(out)
    names = {"codes": f"{fitted.subject_id}{CODES_SUFFIX}", "meshes": MESHES_DIR, "volume_curve_png": CURVE_PNG,
             "volume_curve_json": CURVE_JSON, **({"template": TEMPLATE_DIR} if write_template else {})}
    with staged_output_dir(final) as staging:  # every output appears at once, or none
        fitted.save(staging / names["codes"], fit_config)
        write_mesh_sequence(meshes, staging / MESHES_DIR, name=meshes.name)
        if template is not None:
            write_mesh_sequence(template, staging / TEMPLATE_DIR, name=template.name)
        plot_volume_curves(VolumeCurve(cycle, lv_ml, f"{fitted.subject_id} LV (atlas, {setting})"),
                           staging / CURVE_PNG)
        atomic_write_text(staging / CURVE_JSON, json.dumps(
            {"subject": fitted.subject_id, "setting": setting, "phases": cycle.tolist(), "lv_ml": lv_ml.tolist(),
             "sdf_error_mm": fitted.sdf_error_mm, "fit_seconds": fitted.seconds, "fit_steps": fit_config.steps,
             "points_per_frame": fit_config.points_per_frame, "mesh_resolution": mesh_config.resolution,
             "tracking_steps": mesh_config.tracking_steps, "key_results": run.key_results(), **dict(record or {})},
            indent=1))
    return replace(run, paths={name: final / relative for name, relative in names.items()})


__all__ = ["AtlasFitRun", "run_atlas_fit", "LABEL_SOURCES"]
