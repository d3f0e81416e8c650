"""Method output folders to method pictures: tiny models run through the Logic (background CLI, the
outputs loaded by ``load_*_outputs``), output folders found in a main-job result tree, and one call
rendering and checking everything a folder set holds (used by ``Resources/make_screenshots.py`` and the
tests).

Output folders are recognised by their files, not their paths (the CLIs and the main job name them
alike): ``volume_curve.json`` + ``meshes/`` (atlas fit), ``intensity.nii.gz`` + ``slices.json`` (NISF++),
``indices.json`` + ``uncertainty.nii.gz`` (CardioMorphNet), ``pair_*/pair.json`` (CT synthesis).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

PathLike = Union[str, os.PathLike]
METHODS = ("atlas", "nisf", "motion", "synth")
PHANTOM_SUBJECT = {"seed": 0, "index": 0}  # the tiny phantom subject the tiny runs use


def _logic():
    from .logic import CardiacMotionAtlasLogic

    return CardiacMotionAtlasLogic(python_executable=sys.executable, force_cpu=True)


def _ok(run: Any) -> Path:
    if not run.ok:
        raise RuntimeError(run.error_message())
    return Path(run.output_dir)


# ------------------------------------------------------------------------------------------ tiny runs
def train_tiny_motion_model(folder: PathLike) -> Path:
    """A CardioMorphNet checkpoint trained in seconds on two tiny phantom subjects."""
    import torch

    from ..motion import MotionConfig, sequence_from_study, train_motion
    from ..phantom.cmr import CMRConfig, simulate_cine
    from ..phantom.heart import PhantomHeart

    torch.set_num_threads(1)
    sequences = [sequence_from_study(simulate_cine(PhantomHeart.from_seed(0, i), CMRConfig.tiny(), seed=i).study,
                                     ed_es_only=True) for i in (1, 2)]
    path = Path(folder) / "motion.pt"
    train_motion(sequences, MotionConfig.tiny().with_changes(seg_steps=6, steps=6), checkpoint_path=path,
                 device="cpu")
    return path


def train_tiny_synth_model(folder: PathLike) -> Path:
    """A CT-synthesis CVAE checkpoint trained in seconds on two tiny phantom CT pairs."""
    import torch

    from ..phantom.heart import PhantomHeart
    from ..synthesis import SynthConfig, phantom_pairs, train_synthesis

    torch.set_num_threads(1)
    config = SynthConfig.tiny()
    pairs = phantom_pairs([PhantomHeart.from_seed(3, i) for i in range(2)], config)
    train_synthesis(pairs, config, out_dir=Path(folder), device="cpu")
    return Path(folder) / "synth.pt"


def run_tiny_atlas(scene: Any, checkpoint: PathLike, work_dir: PathLike) -> Path:
    """Fit the tiny phantom subject's 4-frame label sequence to an atlas (all frames); its output folder."""
    from ..data.image_sequence import ImageSequence
    from ..phantom.heart import PhantomHeart
    from .volumes import image_sequence_to_sequence_node

    heart = PhantomHeart.from_seed(PHANTOM_SUBJECT["seed"], PHANTOM_SUBJECT["index"])
    matrix, shape = heart.bounding_grid(3.0)
    phases = np.arange(4) / 4
    labels = ImageSequence(heart.label_volumes(matrix, shape, phases), matrix, phases, name="labels")
    node = image_sequence_to_sequence_node(scene, labels, "labels", labels=True)
    return _ok(_logic().run_atlas_fit(scene, checkpoint, node, "all", steps=20, phases=6, resolution=24, wait=True,
                                      work_dir=Path(work_dir)))


def run_tiny_nisf(scene: Any, checkpoint: PathLike, work_dir: PathLike) -> Path:
    """Reconstruct the tiny phantom subject with NISF++ (4 mm grid, 3 phases); its output folder."""
    subject = _logic().load_phantom_subject(scene, tiny=True, **PHANTOM_SUBJECT)
    return _ok(_logic().run_nisf_reconstruction(scene, checkpoint, subject.browser, spacing_mm=4.0, phases=3,
                                                steps=10, wait=True, work_dir=Path(work_dir)))


def run_tiny_motion(scene: Any, checkpoint: PathLike, work_dir: PathLike) -> Path:
    """CardioMorphNet on the tiny phantom subject (2 posterior samples, no per-subject refinement); its
    output folder."""
    subject = _logic().load_phantom_subject(scene, tiny=True, **PHANTOM_SUBJECT)
    return _ok(_logic().run_motion_estimation(scene, checkpoint, subject.browser, samples=2, refine_steps=0,
                                              wait=True, work_dir=Path(work_dir)))


def tiny_ct_frame():
    """The ES CT frame and labels (ImageSequences) of tiny phantom heart (3, 5)."""
    from ..phantom.ct import CTConfig, simulate_ct
    from ..phantom.heart import PhantomHeart

    heart = PhantomHeart.from_seed(3, 5)
    ct = simulate_ct(heart, [heart.es_phase], CTConfig.tiny())
    return ct.image, ct.labels, float(heart.es_phase)


def run_tiny_synth(scene: Any, checkpoint: PathLike, work_dir: PathLike) -> Path:
    """Two CT-synthesis samples conditioned on :func:`tiny_ct_frame`; the output folder (the CT frame is
    ``<work_dir>/input/ct_frame.nii.gz``)."""
    image, labels, es_phase = tiny_ct_frame()
    return _ok(_logic().run_ct_synthesis(scene, checkpoint, image, labels, n=2, es_phase=es_phase, wait=True,
                                         work_dir=Path(work_dir)))


def tiny_method_outputs(folder: PathLike, methods: Sequence[str] = METHODS) -> Dict[str, Path]:
    """Train tiny models in ``folder/models`` and run each of ``methods`` through the Logic: the output
    folder of each (``folder/<method>/output``)."""
    from .scene import create_standalone_scene
    from .selftest import train_tiny_models

    folder = Path(folder)
    app = create_standalone_scene()
    outputs: Dict[str, Path] = {}
    try:
        if "atlas" in methods or "nisf" in methods:
            models = train_tiny_models(folder / "models", nisf_steps=200)
            if "atlas" in methods:
                outputs["atlas"] = run_tiny_atlas(app.scene, models["atlas"], folder / "atlas")
            if "nisf" in methods:
                outputs["nisf"] = run_tiny_nisf(app.scene, models["nisf"], folder / "nisf")
        if "motion" in methods:
            model = train_tiny_motion_model(folder / "models")
            outputs["motion"] = run_tiny_motion(app.scene, model, folder / "motion")
        if "synth" in methods:
            outputs["synth"] = run_tiny_synth(app.scene, train_tiny_synth_model(folder / "models"), folder / "synth")
    finally:
        app.close()
    return outputs


# ------------------------------------------------------------------------------------------ discovery
def find_method_outputs(root: PathLike) -> Dict[str, Path]:
    """The first output folder of each method under ``root`` (sorted paths), recognised by its files."""
    root = Path(root)
    found: Dict[str, Path] = {}
    tests = {"atlas": lambda d: (d / "volume_curve.json").is_file() and (d / "meshes").is_dir(),
             "nisf": lambda d: (d / "intensity.nii.gz").is_file() and (d / "slices.json").is_file(),
             "motion": lambda d: (d / "indices.json").is_file() and (d / "uncertainty.nii.gz").is_file(),
             "synth": lambda d: any(d.glob("pair_*/pair.json"))}
    for folder in sorted([root, *[p for p in root.rglob("*") if p.is_dir()]]):
        for method, test in tests.items():
            if method not in found and test(folder):
                found[method] = folder
    return found


def find_study(root: PathLike, subject_id: str) -> Optional[Path]:
    """A study folder named ``subject_id`` under ``root`` (the cine a motion output was estimated from):
    one holding a SAX cine (``sa.nii.gz``, UK Biobank layout), not a method's output folder."""
    for folder in sorted(Path(root).rglob(subject_id)):
        if folder.is_dir() and (folder / "sa.nii.gz").is_file() and not (folder / "indices.json").is_file():
            return folder
    return None


# ------------------------------------------------------------------------------------------ render all
def render_method_folders(outputs: Dict[str, Path], out_dir: Optional[PathLike] = None,
                          study_root: Optional[PathLike] = None, size: Sequence[int] = (480, 400)
                          ) -> Dict[str, Dict[str, float]]:
    """Load each output folder with its loader into a fresh standalone scene, render its pictures (PNG
    files in ``out_dir``: ``<method>_*.png`` and ``<method>_volume_curve.png``) and check them; returns
    the checks' numbers per method. The motion cine comes from the study named like its subject under
    ``study_root``, else from the tiny phantom subject."""
    from .method_outputs import load_atlas_fit_outputs, load_motion_outputs, load_nisf_outputs, load_synth_outputs
    from .render_chart import check_chart_picture, render_plot_chart
    from .render_method_checks import check_method_pictures
    from .render_methods import (render_atlas_outputs, render_motion_outputs, render_nisf_outputs,
                                 render_synth_outputs)
    from .scene import create_standalone_scene

    out = Path(out_dir) if out_dir is not None else None
    numbers: Dict[str, Dict[str, float]] = {}
    for method, folder in outputs.items():
        app = create_standalone_scene()
        try:
            if method == "atlas":
                nodes = load_atlas_fit_outputs(app.scene, folder)
                result = render_atlas_outputs(app, nodes, out, size)
            elif method == "nisf":
                nodes = load_nisf_outputs(app.scene, folder)
                result = render_nisf_outputs(app, nodes, out, size)
            elif method == "motion":
                nodes = load_motion_outputs(app.scene, folder)
                result = render_motion_outputs(app, nodes, motion_cine_frame(app.scene, nodes, folder, study_root),
                                               out, size)
            elif method == "synth":
                nodes = load_synth_outputs(app.scene, folder)
                result = render_synth_outputs(app, nodes, synth_ct_frame(app.scene, folder), out, size)
            else:
                continue
            numbers[method] = check_method_pictures(result)
            if "volume_curves" in nodes:
                chart = render_plot_chart(nodes["volume_curves"].chart,
                                          out / f"{method}_volume_curve.png" if out else None, (int(size[0]), 320))
                numbers[method].update({f"volume_curve.{k}": v for k, v in check_chart_picture(chart).items()})
        finally:
            app.close()
    return numbers


def motion_cine_frame(scene: Any, nodes: Dict[str, Any], folder: PathLike, study_root: Optional[PathLike]) -> Any:
    """The cine SAX slice (at ES) through the heart of a motion output's subject: loaded from its study
    under ``study_root`` when found, else the tiny phantom subject (the tiny runs' input)."""
    from .logic import CardiacMotionAtlasLogic
    from .render_methods import bounds_corners, label_bounds, volume_array
    from .render_phantom import _cine_slice_through, _frame_index

    record = json.loads((Path(folder) / "indices.json").read_text())
    study = find_study(study_root, str(record["subject_id"])) if study_root is not None else None
    logic = CardiacMotionAtlasLogic()
    cine = logic.load_study(scene, study) if study is not None else \
        logic.load_phantom_subject(scene, tiny=True, **PHANTOM_SUBJECT).cine
    es_phase = float(nodes["ed_to_es_transform"].GetAttribute("CardiacMotionAtlas.TargetPhase") or 0.35)
    cine.browser.SetSelectedItemNumber(_frame_index(next(iter(cine.image_sequences.values())), es_phase))
    labels = nodes["browser"].GetProxyNode(nodes["label_sequence"])
    centre = bounds_corners(label_bounds(*volume_array(labels))).mean(axis=0)
    return cine.proxy(_cine_slice_through(cine, centre))


def synth_ct_frame(scene: Any, folder: PathLike) -> Any:
    """The conditioning CT frame of a synthesis output: ``input/ct_frame.nii.gz`` beside it (a Logic run),
    else the frame its ``pair.json`` names, else the tiny phantom CT frame."""
    from ..io.nifti import read_nifti
    from .volumes import add_volume_node

    folder = Path(folder)
    candidates: List[Path] = [folder.parent / "input" / "ct_frame.nii.gz"]
    for pair in sorted(folder.glob("pair_*/pair.json")):
        files = json.loads(pair.read_text()).get("files", {})
        candidates += [pair.parent / files[k] for k in ("conditioning", "frame", "es_frame") if k in files]
    for path in candidates:
        if path.is_file():
            image = read_nifti(path)
            return add_volume_node(scene, image.array[0], image.ijk_to_ras, "CT frame")
    image, _, _ = tiny_ct_frame()
    return add_volume_node(scene, image.array[0], image.ijk_to_ras, "CT frame")


__all__ = ["METHODS", "find_method_outputs", "find_study", "motion_cine_frame", "render_method_folders",
           "run_tiny_atlas", "run_tiny_motion", "run_tiny_nisf", "run_tiny_synth", "synth_ct_frame",
           "tiny_ct_frame", "tiny_method_outputs", "train_tiny_motion_model", "train_tiny_synth_model"]
