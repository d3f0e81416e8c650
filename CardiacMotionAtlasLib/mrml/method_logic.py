"""The method runs of the GUI-free Logic: atlas fit, NISF++ reconstruction, CardioMorphNet motion and CT
motion synthesis, each the library's CLI in a background process whose outputs are loaded as MRML nodes.

Every ``run_*`` method checks its input first (:class:`MethodInputError`), then the Python packages
(:class:`~.dependencies.MissingDependencyError`, whose message is the install offer: a missing torch never
ends in the child's traceback), then starts. By default it **blocks** until the result nodes exist
(``wait=True``: the Python console, headless scripts) and returns the :class:`MethodRun` whose ``nodes``
hold them (``run.result_nodes()`` raises when the run failed); ``wait=False`` returns at once and the
caller polls ``run.run.dispatch_pending()`` (the Slicer GUI, from a QTimer). ``device``: ``auto`` (CUDA
when present), ``cpu`` (CUDA hidden from the child) or ``cuda[:N]``. A temporary work folder is removed
after success and kept, with its path in the message, after a failure.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, List, Optional, Union

import numpy as np

from .background import ProgressCallback
from .method_runs import (OUTPUT_DIR, MethodInputError, MethodRun, absolute, cine_study_input, ct_frame_input,
                          labels_input, start_method_run, write_image_input, write_labels_input, write_study_input)

PathLike = Union[str, os.PathLike]
DoneCallback = Optional[Callable[[MethodRun], None]]
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def check_device(device: str) -> str:
    """``device`` if it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, else :class:`MethodInputError`."""
    text = str(device).strip().lower()
    if not DEVICE_PATTERN.match(text):
        raise MethodInputError(f"unknown device {device!r}: use auto (CUDA when present), cpu or cuda")
    return text


class MethodRunsMixin:
    """The ``run_*`` methods of :class:`~.logic.CardiacMotionAtlasLogic` (see module docstring); the class
    using it provides ``python_executable``, ``force_cpu`` and ``check_dependencies()``."""

    python_executable: Optional[str]
    force_cpu: bool

    def check_dependencies(self) -> None:  # pragma: no cover - provided by the Logic
        raise NotImplementedError

    def _start(self, method: str, args: List[str], loader, prepare, device: str, on_progress, on_done, wait,
               work_dir, dispatch) -> MethodRun:
        self.check_dependencies()
        return start_method_run(method, args, loader, prepare=prepare, on_progress=on_progress, on_done=on_done,
                                wait=wait, work_dir=work_dir, dispatch=dispatch,
                                python_executable=self.python_executable,
                                force_cpu=self.force_cpu or device == "cpu")

    def run_atlas_fit(self, scene: Any, atlas_checkpoint: PathLike, labels: Any, setting: str = "all", *,
                      steps: Optional[int] = None, phases: int = 25, resolution: Optional[int] = None,
                      device: str = "auto", on_progress: Optional[ProgressCallback] = None,
                      on_done: DoneCallback = None, wait: bool = True,
                      work_dir: Optional[PathLike] = None, dispatch: str = "poll") -> MethodRun:
        """Fit a subject to the NDF atlas (networks frozen) from ``labels`` (a label-map sequence node,
        an ImageSequence, a label file or a phantom subject folder) observing ``setting`` (``all``,
        ``ed_es`` or ``ed``), then load its mesh sequence, the template and the volume curve (see
        :func:`~CardiacMotionAtlasLib.mrml.method_outputs.load_atlas_fit_outputs`)."""
        from .method_outputs import load_atlas_fit_outputs

        if setting not in ("all", "ed_es", "ed"):
            raise MethodInputError(f"unknown setting {setting!r}: use all, ed_es or ed")
        checkpoint = Path(atlas_checkpoint)
        if not checkpoint.is_file():
            raise MethodInputError(f"{checkpoint}: no atlas checkpoint (train one, or pick one from the registry)")
        device = check_device(device)
        source = labels_input(labels, setting)
        args = ["atlas", "fit", "--atlas", absolute(checkpoint), "--setting", setting, "--phases", str(int(phases)),
                "--device", device, "--out", OUTPUT_DIR]
        if steps is not None:
            args += ["--steps", str(int(steps))]
        if resolution is not None:
            args += ["--resolution", str(int(resolution))]

        def prepare(folder: Path) -> None:
            args.extend(["--labels", absolute(source) if isinstance(source, Path) else
                         write_labels_input(source, folder)])

        return self._start("atlas", args, lambda out: load_atlas_fit_outputs(scene, out), prepare, device,
                           on_progress, on_done, wait, work_dir, dispatch)

    def run_nisf_reconstruction(self, scene: Any, model_checkpoint: PathLike, study: Any, *,
                                spacing_mm: float = 1.25, phases: Optional[int] = None, steps: Optional[int] = None,
                                use_labels: bool = False, device: str = "auto",
                                on_progress: Optional[ProgressCallback] = None, on_done: DoneCallback = None,
                                wait: bool = True, work_dir: Optional[PathLike] = None,
                                dispatch: str = "poll") -> MethodRun:
        """Reconstruct a subject's 4D intensities and labels with NISF++ from its cine slices (``study``: the
        cine browser node of a loaded study, a CineStudy or a study folder), then load the super-resolved
        sequences, the ED segmentation and the corrected slice planes (see
        :func:`~CardiacMotionAtlasLib.mrml.method_outputs.load_nisf_outputs`)."""
        from .method_outputs import load_nisf_outputs

        checkpoint = Path(model_checkpoint)
        if not checkpoint.is_file():
            raise MethodInputError(f"{checkpoint}: no NISF++ checkpoint (train one, or pick one from the registry)")
        if spacing_mm <= 0:
            raise MethodInputError(f"grid spacing must be > 0 mm, got {spacing_mm}")
        device = check_device(device)
        source = cine_study_input(study)
        args = ["nisf", "reconstruct", "--model", absolute(checkpoint), "--out", OUTPUT_DIR, "--spacing",
                str(float(spacing_mm)), "--device", device]
        if phases is not None:
            args += ["--phases", str(int(phases))]
        if steps is not None:
            args += ["--steps", str(int(steps))]
        if use_labels:
            args += ["--use-labels"]

        def prepare(folder: Path) -> None:
            args.extend(["--study", absolute(source) if isinstance(source, Path) else write_study_input(source, folder)])

        return self._start("nisf", args, lambda out: load_nisf_outputs(scene, out), prepare, device,
                           on_progress, on_done, wait, work_dir, dispatch)

    def motion_training_settings(self, model_checkpoint: PathLike):
        """The grid reduction a CardioMorphNet checkpoint was trained with (see
        :mod:`~CardiacMotionAtlasLib.mrml.motion_settings`): what :meth:`run_motion_estimation` applies."""
        from .motion_settings import read_motion_training_settings

        return read_motion_training_settings(model_checkpoint)

    def run_motion_estimation(self, scene: Any, model_checkpoint: PathLike, study: Any, *,
                              samples: Optional[int] = None, factor: Optional[int] = None,
                              crop: Optional[int] = None, frames: Optional[int] = None,
                              refine_steps: Optional[int] = None, device: str = "auto",
                              on_progress: Optional[ProgressCallback] = None, on_done: DoneCallback = None,
                              wait: bool = True, work_dir: Optional[PathLike] = None,
                              dispatch: str = "poll") -> MethodRun:
        """CardioMorphNet motion of a cine SAX study (a loaded study's browser, a CineStudy or a study
        folder), then load the ED->ES grid transform, uncertainty and warped-label sequences, the ED
        myocardium with uncertainty scalars, indices (with 95 % bounds), volume curves and strain (see
        :func:`~CardiacMotionAtlasLib.mrml.method_outputs.load_motion_outputs`). ``factor``/``crop``/
        ``frames`` default to those the model was trained with (:meth:`motion_training_settings`); other
        values than the stored ones are refused (:class:`MethodInputError`). ``refine_steps``: per-subject
        refinement of the posterior mean (default: the model's; 0: off)."""
        from .method_outputs import load_motion_outputs

        checkpoint = Path(model_checkpoint)
        if not checkpoint.is_file():
            raise MethodInputError(f"{checkpoint}: no CardioMorphNet checkpoint (train one, or pick one from the registry)")
        device = check_device(device)
        source = cine_study_input(study)
        stored = self.motion_training_settings(checkpoint)
        stored.check(checkpoint, factor, crop, frames)
        args = ["motion", "estimate", "--model", absolute(checkpoint), "--out", OUTPUT_DIR, "--device", device,
                *stored.cli_arguments(factor, crop, frames)]
        if samples is not None:
            args += ["--samples", str(int(samples))]
        if refine_steps is not None:
            args += ["--refine-steps", str(int(refine_steps))]

        def prepare(folder: Path) -> None:
            args.extend(["--study", absolute(source) if isinstance(source, Path) else write_study_input(source, folder)])

        return self._start("motion", args, lambda out: load_motion_outputs(scene, out), prepare, device,
                           on_progress, on_done, wait, work_dir, dispatch)

    def run_ct_synthesis(self, scene: Any, model_checkpoint: PathLike, frame: Any, labels: Any = None, *,
                         n: int = 3, mode: str = "random", seed: int = 0, es_phase: float = 0.35,
                         device: str = "auto", on_progress: Optional[ProgressCallback] = None,
                         on_done: DoneCallback = None, wait: bool = True, work_dir: Optional[PathLike] = None,
                         dispatch: str = "poll") -> MethodRun:
        """Sample ``n`` flows with the CT motion CVAE conditioned on ``frame`` (the ES-phase CT: a scalar
        volume node, an ImageSequence or a NIfTI file; ``labels``: its label map node/file, optional), warp
        it into generated ED frames and load them (see
        :func:`~CardiacMotionAtlasLib.mrml.method_outputs.load_synth_outputs`). The annotated pairs are
        files in ``run.output_dir``: pass ``work_dir`` to keep them (a temporary folder is removed)."""
        from ..data.image_sequence import ImageSequence
        from .method_outputs import load_synth_outputs

        checkpoint = Path(model_checkpoint)
        if not checkpoint.is_file():
            raise MethodInputError(f"{checkpoint}: no CT synthesis checkpoint (synth.pt from 'cardiac-atlas synth train')")
        if n < 1 or mode not in ("random", "line", "grid"):
            raise MethodInputError(f"need n >= 1 and mode random|line|grid, got n={n}, mode={mode!r}")
        device = check_device(device)
        image = ct_frame_input(frame)
        label_image = None
        if labels is not None:
            if isinstance(labels, (str, os.PathLike, ImageSequence)):
                label_image = labels
            elif hasattr(labels, "IsA") and labels.IsA("vtkMRMLLabelMapVolumeNode"):
                from .volumes import volume_node_ijk_to_ras, volume_node_to_array

                label_image = ImageSequence(volume_node_to_array(labels)[None], volume_node_ijk_to_ras(labels),
                                            np.zeros(1), name=labels.GetName())
            else:
                raise MethodInputError("labels must be a label-map volume node or a NIfTI file")
        args = ["synth", "sample", "--model", absolute(checkpoint), "--out", OUTPUT_DIR, "--n", str(int(n)),
                "--mode", mode, "--seed", str(int(seed)), "--es-phase", str(float(es_phase)), "--device", device]

        def prepare(folder: Path) -> None:
            args.extend(["--frame", absolute(image) if isinstance(image, Path) else
                         write_image_input(image, folder, "ct_frame")])
            if label_image is not None:
                args.extend(["--labels", absolute(Path(label_image)) if not isinstance(label_image, ImageSequence)
                             else write_image_input(label_image, folder, "ct_labels", labels=True)])

        return self._start("synth", args, lambda out: load_synth_outputs(scene, out), prepare, device,
                           on_progress, on_done, wait, work_dir, dispatch)


__all__ = ["DEVICE_PATTERN", "MethodRunsMixin", "check_device"]
