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


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def _finite(indices: Mapping[str, float]) -> Dict[str, float]:
    return {name: round(float(value), 4) for name, value in indices.items() if np.isfinite(value)}


# --------------------------------------------------------------------------------------------- indices
def run_indices(study: Path, out: Path, options: Dict[str, Any]) -> Dict[str, Any]:
    """Clinical indices (ml, %, g) from the study's SAX segmentation at its ED and ES frames."""
    from ..analysis.clinical_indices import clinical_indices_from_labels
    from ..io.layouts import read_study
    from ..data.cine_study import CineStudy
    sax_stack = CineStudy.sax_stack  # the data model's method: sax_stack(study, labels=...)

    cine = read_study(study)
    if not cine.sax or any(s.labels is None for s in cine.sax):
        raise CineStudyError(study, "no SAX segmentation found (seg_sa*.nii.gz or *_gt.nii.gz)")
    labels = sax_stack(cine, labels=True)
    indices = clinical_indices_from_labels(labels, ed_frame=cine.ed_frame, es_frame=cine.es_frame).as_dict()
    if not np.isfinite(indices["LVEF"]):
        raise CineStudyError(study, "LV ejection fraction is undefined (empty LV blood pool at ED?)")
    lv_curve = (np.asarray(labels.array) == 1).reshape(labels.n_frames, -1).sum(1) * labels.voxel_volume_ml()
    _write_json(out / "indices.json", {"subject": cine.subject_id, "ed_frame": cine.ed_frame,
                                       "es_frame": cine.es_frame, "indices": indices,
                                       "lv_volume_ml": lv_curve.tolist(), "phases": np.asarray(labels.phases).tolist()})
    return _finite(indices)


# --------------------------------------------------------------------------------------------- NISF++
@functools.lru_cache(maxsize=4)
def _nisf_model(path: str, mtime: float, device: str):
    from ..nisf import load_nisf

    return load_nisf(path, device=device)


def run_nisf(study: Path, out: Path, options: Dict[str, Any]) -> Dict[str, Any]:
    """NISF++ reconstruction of a new subject (network frozen): ``intensity.nii.gz``, ``labels.nii.gz``,
    ``slices.json``, ``subject_fit.pt``; key results: final fit loss and the indices of the sampled labels."""
    from ..analysis.clinical_indices import clinical_indices_from_labels
    from ..analysis.volumes import label_volumes_ml
    from ..io.layouts import read_study
    from ..io.nifti import read_nifti
    from ..nisf import fit_subject, write_reconstruction

    model = _require_model(options.get("model"), "NISF++")
    trained = _nisf_model(os.fspath(model), _mtime(model), options["device"])
    fit_config = trained.config.fit if options.get("steps") is None else replace(trained.config.fit,
                                                                                  steps=options["steps"])
    cine = read_study(study)
    fit = fit_subject(trained, cine, fit_config, use_labels=bool(options.get("use_labels")))
    phases = None if options.get("phases") is None else [i / options["phases"] for i in range(options["phases"])]
    paths = write_reconstruction(fit, out, spacing_mm=float(options["spacing"]), phases=phases)
    labels = read_nifti(paths["labels"], labels=True)
    lv = label_volumes_ml(labels, 1)
    results: Dict[str, Any] = {"fit_loss": float(fit.history["loss"][-1]) if fit.history.get("loss") else float("nan")}
    if np.any(lv > 0) and labels.n_frames > 1:
        results.update(_finite(clinical_indices_from_labels(labels, ed_frame=0, es_frame=int(np.argmin(lv))).as_dict()))
    return results


# --------------------------------------------------------------------------------------------- atlas fit
@functools.lru_cache(maxsize=4)
def _atlas_model(path: str, mtime: float, device: str):
    from ..atlas.model import Atlas

    return Atlas.load(path, device=device)


@functools.lru_cache(maxsize=4)
def _template_motion(path: str, mtime: float, device: str, mesh_key: Tuple[Any, ...]):
    from ..atlas.config import MeshConfig
    from ..atlas.meshing import track_template

    return track_template(_atlas_model(path, mtime, device), MeshConfig(*mesh_key))


def _atlas_subject(study: Path, source: str, sampling, seed: int):
    """SDF samples of the subject: its SAX segmentation (frames with myocardium), or the phantom's
    isotropic ground-truth labels (``source='ground_truth'``)."""
    from ..atlas.inputs import subject_from_label_input
    from ..atlas.sampling import subject_from_labels
    from ..data.image_sequence import ImageSequence
    from ..io.layouts import read_study
    from ..data.cine_study import CineStudy
    sax_stack = CineStudy.sax_stack  # the data model's method: sax_stack(study, labels=...)

    if source == "ground_truth":
        return subject_from_label_input(study, sampling, seed)
    cine = read_study(study)
    if not cine.sax or any(s.labels is None for s in cine.sax):
        raise CineStudyError(study, "no SAX segmentation found (the atlas fit needs LV myocardium labels)")
    labels = sax_stack(cine, labels=True)
    array = np.asarray(labels.array)
    frames = [i for i in range(labels.n_frames) if np.any(array[i] == 2)]
    if not frames:
        raise CineStudyError(study, "the SAX segmentation has no LV myocardium (label 2) in any frame")
    phases = np.asarray(labels.phases, float)[frames]
    subset = ImageSequence(array[frames], labels.ijk_to_ras, phases, labels.cycle_length_s, name=cine.subject_id)
    ed = frames.index(cine.ed_frame) if cine.ed_frame in frames else 0
    es = frames.index(cine.es_frame) if cine.es_frame in frames else None
    return subject_from_labels(subset, sampling, seed=seed, ed_frame=ed, es_frame=es, subject_id=cine.subject_id,
                               phases=phases)


def run_atlas_fit(study: Path, out: Path, options: Dict[str, Any]) -> Dict[str, Any]:
    """Atlas codes of a new subject (networks frozen) and its LV myocardium meshes over the cycle (shared
    faces): ``codes.pt``, ``meshes/*.vtp``, ``volume_curve.json``; key results: SDF error (mm), fit time (s),
    EDV/ESV (ml) and EF (%) of the meshed cavity."""
    from ..atlas.config import FitConfig, MeshConfig
    from ..atlas.evaluation import cavity_volume_curve
    from ..atlas.fit import fit_subject
    from ..atlas.meshing import subject_mesh_sequence
    from ..io.meshes import write_mesh_sequence

    model = _require_model(options.get("model"), "atlas")
    key = (os.fspath(model), _mtime(model), options["device"])
    atlas = _atlas_model(*key)
    mesh_config = MeshConfig()
    overrides = {name: options[name] for name in ("resolution", "tracking_steps") if options.get(name) is not None}
    mesh_config = replace(mesh_config, **overrides)
    motion = _template_motion(*key, tuple(getattr(mesh_config, f) for f in mesh_config.__dataclass_fields__))
    data = _atlas_subject(study, options["labels"], atlas.config.sampling, int(options["seed"]))
    fit_config = FitConfig(seed=int(options["seed"]))
    if options.get("steps") is not None:
        fit_config = replace(fit_config, steps=int(options["steps"]))
    fitted = fit_subject(atlas, data, options["setting"], fit_config)
    fitted.save(out / "codes.pt", fit_config)
    phases = np.arange(int(options["phases"])) / int(options["phases"])
    mesh = subject_mesh_sequence(atlas, fitted, phases, motion=motion, config=mesh_config)
    write_mesh_sequence(mesh, out / "meshes", name="myocardium")
    curve = cavity_volume_curve(mesh, fitted.frame)
    edv, esv = float(curve[0]), float(np.min(curve))
    _write_json(out / "volume_curve.json", {"subject": fitted.subject_id, "setting": options["setting"],
                                            "phases": phases.tolist(), "lv_ml": curve.tolist()})
    return {"sdf_error_mm": round(float(fitted.sdf_error_mm), 4), "fit_s": round(float(fitted.seconds), 3),
            "LVEDV": round(edv, 3), "LVESV": round(esv, 3),
            "LVEF": round(100.0 * (edv - esv) / edv, 3) if edv > 0 else float("nan")}


# --------------------------------------------------------------------------------------------- motion
@functools.lru_cache(maxsize=4)
def _motion_model(path: str, mtime: float, device: str):
    from ..motion import load_motion

    return load_motion(path, device=device)


def run_motion(study: Path, out: Path, options: Dict[str, Any]) -> Dict[str, Any]:
    """CardioMorphNet motion of the study's SAX sequence: DVFs (``dvf/``), uncertainty, warped labels,
    indices and strain (:func:`~CardiacMotionAtlasLib.motion.write_motion_outputs`); key results: the
    clinical indices (ml, %, g) of the warped segmentation and the mean displacement uncertainty (mm)."""
    from ..io.layouts import read_study
    from ..motion import estimate_motion, sequence_from_study, write_motion_outputs

    model = _require_model(options.get("model"), "CardioMorphNet")
    trained = _motion_model(os.fspath(model), _mtime(model), options["device"])
    sequence = sequence_from_study(read_study(study))
    estimate = estimate_motion(trained, sequence, samples=options.get("samples"), seed=int(options["seed"]))
    write_motion_outputs(estimate, out, dvfs=bool(options["dvfs"]))
    results = _finite(estimate.indices)
    results["displacement_std_mm"] = round(float(np.mean(estimate.displacement_std_mm())), 4)
    return results


# --------------------------------------------------------------------------------------------- synth
@functools.lru_cache(maxsize=4)
def _synth_model(path: str, mtime: float, device: str):
    from ..synthesis import load_synthesis

    return load_synthesis(path, device=device)


def run_synth(study: Path, out: Path, options: Dict[str, Any]) -> Dict[str, Any]:
    """Annotated CT frame pairs generated from the subject's CT frame (``options['frame']``, default the
    phantom layout's ``ct_ES.nii.gz``, with ``seg_<frame>`` labels when present): ``pair_<i>/`` folders
    (frame pair, exact flow, labels; see :func:`~CardiacMotionAtlasLib.synthesis.generate_pairs`); key
    result: the number of pairs written."""
    from ..io.nifti import read_nifti
    from ..synthesis import generate_pairs, read_pair

    model = _require_model(options.get("model"), "CT flow CVAE")
    trained = _synth_model(os.fspath(model), _mtime(model), options["device"])
    frame_path = Path(study) / options["frame"] if Path(study).is_dir() else Path(study)
    if not frame_path.is_file():
        raise InputFileError(frame_path, "no CT frame to condition on (option 'frame')")
    frame = read_nifti(frame_path)
    label_path = frame_path.with_name("seg_" + frame_path.name)
    labels = read_nifti(label_path, labels=True).array[0] if label_path.is_file() else None
    folders = generate_pairs(trained, frame, out, labels=labels, n=int(options["n"]), seed=int(options["seed"]),
                             subject_id=Path(study).name)
    return {"pairs": len(folders)}


register_pipeline(Pipeline("indices", run_indices, (DEVICE,), "clinical indices from the SAX segmentation"))
register_pipeline(Pipeline("nisf", run_nisf, (
    OptionSpec("model", "path", required=True, help="NISF++ checkpoint from 'nisf train'"),
    OptionSpec("steps", "int", help="fitting steps (default: the model's fit config)"),
    OptionSpec("spacing", "float", 2.0, help="isotropic output grid spacing (mm)"),
    OptionSpec("phases", "int", help="equally spaced output phases (default: the study's frames)"),
    OptionSpec("use_labels", "bool", False, help="also fit the study's labels"),
    DEVICE), "NISF++ reconstruction of each subject"))
register_pipeline(Pipeline("atlas-fit", run_atlas_fit, (
    OptionSpec("model", "path", required=True, help="atlas checkpoint (atlas.pt)"),
    OptionSpec("setting", "str", "all", choices=("all", "ed_es", "ed"), help="frames the fit observes"),
    OptionSpec("labels", "str", "sax", choices=("sax", "ground_truth"),
               help="SAX segmentation, or a phantom folder's isotropic ground-truth labels"),
    OptionSpec("steps", "int", help="fitting steps (default: FitConfig)"),
    OptionSpec("phases", "int", 25, help="output meshes per cycle"),
    OptionSpec("resolution", "int", help="template marching-cubes grid (default 72)"),
    OptionSpec("tracking_steps", "int", help="template tracking steps per cycle (default 48)"),
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
