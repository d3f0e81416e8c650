"""Per-subject pipelines of a cohort batch: ``name -> function(study, out, options) -> key results``.

Each pipeline reads one study (any layout :func:`~CardiacMotionAtlasLib.io.layouts.read_study` knows),
writes its outputs into ``out`` (an empty staging folder; the runner commits it atomically) and returns a
flat dict of scalar key results (clinical indices in ml / % / g, errors in mm, times in s) that go into
the batch summary. Options are declared per pipeline (:class:`OptionSpec`), parsed from the command line
(``--option key=value``) and from manifest columns (per subject; a manifest value wins).

Registered: ``indices`` (SAX segmentation -> clinical indices), ``nisf`` (NISF++ fit of a new subject with
a trained model, 4D labels/intensities, indices of the sampled labels), ``atlas-fit`` (atlas codes of a
new subject from its SAX segmentation, meshes over the cycle with dense correspondence, volume curve),
``motion`` (CardioMorphNet inference on the SAX sequence: DVFs, uncertainty, warped labels, indices,
strain) and ``synth`` (annotated CT frame pairs generated from the subject's CT frame).

Models are loaded once per worker process (cached by path, modification time and device).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from ..cli.presets import PRESETS
from ..errors import CineStudyError, InputFileError
from ..io.atomic import atomic_write_text
from .completion import BatchError

PipelineFn = Callable[[Path, Path, Dict[str, Any]], Dict[str, Any]]
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


@dataclass(frozen=True)
class OptionSpec:
    """One option of a pipeline: name, type (``int``, ``float``, ``str``, ``bool``, ``path``), default
    (``None`` = unset), whether it is required, allowed values and a help line (with units)."""

    name: str
    kind: str = "str"
    default: Any = None
    required: bool = False
    choices: Tuple[str, ...] = ()
    help: str = ""

    def parse(self, value: Any, source: str) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            if self.kind == "path":
                return Path(value)
            return value
        text = value.strip()
        try:
            if self.kind == "int":
                return int(text)
            if self.kind == "float":
                return float(text)
            if self.kind == "bool":
                if text.lower() in _TRUE:
                    return True
                if text.lower() in _FALSE:
                    return False
                raise ValueError(f"expected true/false, got {text!r}")
            if self.kind == "path":
                return Path(text).expanduser()
        except ValueError as error:
            raise BatchError(f"{source}: option {self.name!r}: {error}") from error
        if self.choices and text not in self.choices:
            raise BatchError(f"{source}: option {self.name!r} must be one of {self.choices}, got {text!r}")
        return text


@dataclass(frozen=True)
class Pipeline:
    """A registered per-subject pipeline."""

    name: str
    function: PipelineFn
    options: Tuple[OptionSpec, ...] = ()
    description: str = ""

    def option_names(self) -> Tuple[str, ...]:
        return tuple(spec.name for spec in self.options)

    def parse_options(self, *layers: Tuple[Mapping[str, Any], str]) -> Dict[str, Any]:
        """Merge option layers ``(mapping, source)`` (later wins) into typed values with defaults;
        unknown names or a missing required option raise :class:`BatchError` naming the source."""
        specs = {spec.name: spec for spec in self.options}
        values: Dict[str, Any] = {name: spec.default for name, spec in specs.items()}
        for mapping, source in layers:
            for name, raw in mapping.items():
                if name not in specs:
                    raise BatchError(f"{source}: unknown option {name!r} for pipeline {self.name!r} "
                                     f"(known: {', '.join(sorted(specs)) or 'none'})")
                values[name] = specs[name].parse(raw, source)
        missing = [name for name, spec in specs.items() if spec.required and values[name] is None]
        if missing:
            raise BatchError(f"pipeline {self.name!r} needs option(s) {missing} (--option NAME=VALUE or a "
                             "manifest column)")
        return values


PIPELINES: Dict[str, Pipeline] = {}


def register_pipeline(pipeline: Pipeline, *, replace_existing: bool = False) -> Pipeline:
    """Add a pipeline to :data:`PIPELINES` (its function must be importable on the Dask workers)."""
    if pipeline.name in PIPELINES and not replace_existing:
        raise ValueError(f"pipeline {pipeline.name!r} is already registered")
    PIPELINES[pipeline.name] = pipeline
    return pipeline


def get_pipeline(name: Union[str, Pipeline]) -> Pipeline:
    if isinstance(name, Pipeline):
        return name
    try:
        return PIPELINES[name]
    except KeyError:
        raise BatchError(f"unknown pipeline {name!r}; available: {', '.join(sorted(PIPELINES))}") from None


# --------------------------------------------------------------------------------------------- helpers
DEVICE = OptionSpec("device", "str", "cpu", help="cpu, cuda, cuda:N or auto (per worker)")


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def _require_model(path: Optional[Path], what: str) -> Path:
    if path is None:
        raise BatchError(f"option 'model' ({what} checkpoint) is required")
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, f"no such {what} checkpoint")
    return path


def _model_key(path: Path, device: str) -> Tuple[str, float, str, bool]:
    """Cache key of a loaded model: path, modification time, device and whether half-trained checkpoints
    are accepted now (a model accepted under ``--allow-incomplete`` is not reused by a run that refuses it)."""
    from ..training.completeness import incomplete_allowed

    return os.fspath(path), path.stat().st_mtime, device, incomplete_allowed()


def _finite(indices: Mapping[str, float]) -> Dict[str, float]:
    return {name: round(float(value), 4) for name, value in indices.items() if np.isfinite(value)}


# --------------------------------------------------------------------------------------------- indices
def run_indices(study: Path, out: Path, options: Dict[str, Any]) -> Dict[str, Any]:
    """Clinical indices (ml, %, g) from the study's SAX segmentation at its ED and ES frames."""
    from ..analysis.clinical_indices import clinical_indices_from_labels
    from ..io.layouts import read_study

    cine = read_study(study)
    if not cine.sax or any(s.labels is None for s in cine.sax):
        raise CineStudyError(study, "no SAX segmentation found (seg_sa*.nii.gz or *_gt.nii.gz)")
    labels = cine.sax_stack(labels=True)
    indices = clinical_indices_from_labels(labels, ed_frame=cine.ed_frame, es_frame=cine.es_frame).as_dict()
    if not np.isfinite(indices["LVEF"]):
        raise CineStudyError(study, "LV ejection fraction is undefined (empty LV blood pool at ED?)")
    lv_curve = (np.asarray(labels.array) == 1).reshape(labels.n_frames, -1).sum(1) * labels.voxel_volume_ml()
    _write_json(out / "indices.json", {"subject": cine.subject_id, "ed_frame": cine.ed_frame,
                                       "es_frame": cine.es_frame, "indices": indices,
                                       "lv_volume_ml": lv_curve.tolist(), "phases": np.asarray(labels.phases).tolist()})
    return _finite(indices)


# --------------------------------------------------------------------------------------------- methods
# Each method pipeline loads its model once per worker (cached by path, modification time and device) and
# calls the method's one runner, which checks the input, writes every output (the runner names the files)
# and returns the key results: a subject gives the same files whether it came through the CLI, the batch,
# the Slicer Logic or the main job.
@functools.lru_cache(maxsize=4)
def _nisf_model(path: str, mtime: float, device: str, allow: bool):
    from ..nisf import load_nisf

    return load_nisf(path, device)


def run_nisf(study: Path, out: Path, options: Dict[str, Any]) -> Dict[str, Any]:
    """NISF++ reconstruction of a new subject (network frozen) by
    :func:`~CardiacMotionAtlasLib.nisf.runner.reconstruct_subject`: 4D intensities and labels, slice
    corrections, the subject fit and ``indices.json``; key results: fit loss, fit time (s), indices."""
    from ..nisf.runner import reconstruct_subject

    model = _require_model(options.get("model"), "NISF++")
    trained = _nisf_model(*_model_key(model, options["device"]))
    run = reconstruct_subject(trained, study, out, steps=options.get("steps"), seed=options.get("seed"),
                              use_labels=bool(options.get("use_labels")), spacing_mm=float(options["spacing"]),
                              phases=options.get("phases"))
    return run.key_results()


@functools.lru_cache(maxsize=4)
def _atlas_model(path: str, mtime: float, device: str, allow: bool):
    from ..atlas.model import load_atlas

    return load_atlas(path, device)


@functools.lru_cache(maxsize=4)
def _template_motion(path: str, mtime: float, device: str, allow: bool, mesh_key: Tuple[Any, ...]):
    from ..atlas.config import MeshConfig
    from ..atlas.meshing import track_template

    return track_template(_atlas_model(path, mtime, device, allow), MeshConfig(*mesh_key))


def run_atlas_fit(study: Path, out: Path, options: Dict[str, Any]) -> Dict[str, Any]:
    """Atlas codes of a new subject (networks frozen) and its LV myocardium meshes over the cycle (shared
    faces) by :func:`~CardiacMotionAtlasLib.atlas.runner.run_atlas_fit` (``<subject>_codes.pt``, ``meshes/``,
    ``template/``, ``volume_curve.png/.json``); key results: SDF error (mm), fit time (s), EDV/ESV (ml) and
    EF (%) of the meshed cavity. Fitting and meshing sizes come from ``preset`` (default: the preset the
    atlas was trained with, as ``atlas fit`` does), then ``steps``, ``resolution``, ``tracking_steps``.
    The template motion is computed once per worker and model."""
    from ..atlas.runner import run_atlas_fit as fit_and_publish
    from ..cli.presets import applied_atlas_preset

    model = _require_model(options.get("model"), "atlas")
    key = _model_key(model, options["device"])
    atlas = _atlas_model(*key)
    preset, _ = applied_atlas_preset(atlas.config, options.get("preset"))
    overrides = {name: options[name] for name in ("resolution", "tracking_steps") if options.get(name) is not None}
    mesh_config = replace(preset.mesh, **overrides)
    motion = _template_motion(*key, tuple(getattr(mesh_config, f) for f in mesh_config.__dataclass_fields__))
    run = fit_and_publish(atlas, study, out, setting=options["setting"], phases=int(options["phases"]),
                          fit_config=preset.fit, steps=options.get("steps"), seed=int(options["seed"]),
                          mesh_config=mesh_config, motion=motion, labels=options["labels"],
                          record={"preset": preset.name})
    return {name: round(float(value), 4) for name, value in run.key_results().items()}


@functools.lru_cache(maxsize=4)
def _motion_model(path: str, mtime: float, device: str, allow: bool):
    from ..motion import load_motion

    return load_motion(path, device)


def run_motion(study: Path, out: Path, options: Dict[str, Any]) -> Dict[str, Any]:
    """CardioMorphNet motion of the study's SAX sequence by :func:`~CardiacMotionAtlasLib.motion.runner.run_motion`
    (the preprocessing stored in the model applied): DVFs (``dvf/``), uncertainty, warped labels, indices and
    strain; key results: the clinical indices (ml, %, g) and the mean displacement uncertainty (mm)."""
    from ..motion.runner import run_motion as estimate_and_publish

    model = _require_model(options.get("model"), "CardioMorphNet")
    trained = _motion_model(*_model_key(model, options["device"]))
    run = estimate_and_publish(trained, study, out, samples=options.get("samples"), seed=int(options["seed"]),
                               dvfs=bool(options["dvfs"]))
    return run.key_results()


@functools.lru_cache(maxsize=4)
def _synth_model(path: str, mtime: float, device: str, allow: bool):
    from ..synthesis import load_synthesis

    return load_synthesis(path, device)


def run_synth(study: Path, out: Path, options: Dict[str, Any]) -> Dict[str, Any]:
    """Annotated CT frame pairs generated from the subject's CT frame (``options['frame']`` in the study
    folder, with ``seg_<frame>`` labels when present) by
    :func:`~CardiacMotionAtlasLib.synthesis.runner.run_synthesis` (``pair_<i>/``, ``samples.csv``); key
    results: pairs written, the samples' implied LVEF mean and sd (%), the largest flow (mm), time (s)."""
    from ..synthesis.runner import run_synthesis

    model = _require_model(options.get("model"), "CT flow CVAE")
    trained = _synth_model(*_model_key(model, options["device"]))
    run = run_synthesis(trained, study, out, frame_name=options["frame"], labels_beside=True, n=int(options["n"]),
                        seed=int(options["seed"]), subject_id=Path(study).name)
    return _finite(run.key_results())


register_pipeline(Pipeline("indices", run_indices, (DEVICE,), "clinical indices from the SAX segmentation"))
register_pipeline(Pipeline("nisf", run_nisf, (
    OptionSpec("model", "path", required=True, help="NISF++ checkpoint from 'nisf train'"),
    OptionSpec("steps", "int", help="fitting steps (default: the model's fit config)"),
    OptionSpec("spacing", "float", 2.0, help="isotropic output grid spacing (mm)"),
    OptionSpec("phases", "int", help="equally spaced output phases (default: the study's frames)"),
    OptionSpec("use_labels", "bool", False, help="also fit the study's labels"),
    OptionSpec("seed", "int", help="fitting seed (default: the model's fit config)"),
    DEVICE), "NISF++ reconstruction of each subject"))
register_pipeline(Pipeline("atlas-fit", run_atlas_fit, (
    OptionSpec("model", "path", required=True, help="atlas checkpoint (atlas.pt)"),
    OptionSpec("setting", "str", "all", choices=("all", "ed_es", "ed"), help="frames the fit observes"),
    OptionSpec("labels", "str", "sax", choices=("sax", "ground_truth"),
               help="SAX segmentation, or a phantom folder's isotropic ground-truth labels"),
    OptionSpec("preset", "str", choices=PRESETS,
               help="fitting and meshing sizes (default: the preset the atlas was trained with)"),
    OptionSpec("steps", "int", help="fitting steps (default: the preset's)"),
    OptionSpec("phases", "int", 25, help="output meshes per cycle"),
    OptionSpec("resolution", "int", help="template marching-cubes grid (default: the preset's)"),
    OptionSpec("tracking_steps", "int", help="template tracking steps per cycle (default: the preset's)"),
    OptionSpec("seed", "int", 0, help="sampling and fitting seed"),
    DEVICE), "atlas codes, meshes and volume curve of each subject"))
register_pipeline(Pipeline("motion", run_motion, (
    OptionSpec("model", "path", required=True, help="CardioMorphNet checkpoint from training (motion.pt)"),
    OptionSpec("samples", "int", help="posterior samples (default: the model's config)"),
    OptionSpec("dvfs", "bool", True, help="write the displacement fields (dvf/)"),
    OptionSpec("seed", "int", 0, help="posterior sampling seed"),
    DEVICE), "CardioMorphNet DVFs, uncertainty, warped labels, indices and strain of each subject"))
register_pipeline(Pipeline("synth", run_synth, (
    OptionSpec("model", "path", required=True, help="CT flow CVAE checkpoint (synth.pt)"),
    OptionSpec("frame", "str", "ct_ES.nii.gz", help="CT frame to condition on, in the study folder"),
    OptionSpec("n", "int", 3, help="annotated pairs per subject"),
    OptionSpec("seed", "int", 0, help="latent sampling seed"),
    DEVICE), "annotated CT frame pairs generated from each subject's CT frame"))


__all__ = ["OptionSpec", "PIPELINES", "Pipeline", "PipelineFn", "get_pipeline", "register_pipeline",
           "run_atlas_fit", "run_indices", "run_motion", "run_nisf", "run_synth"]
