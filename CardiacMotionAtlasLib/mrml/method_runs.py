"""Method runs started from the module Logic: inputs taken from the scene (or files) are checked and
written into a work folder, the library's CLI runs there in a background process (progress, Cancel that
ends the process tree), and once it completed its outputs are loaded back as MRML nodes.

A cancelled or failed run changes nothing in the scene: nodes are only created after the CLI exited with
status 0, in the thread that dispatches callbacks (the Slicer GUI polls with ``dispatch="poll"``;
``wait=True`` blocks and dispatches in the caller: the Python console and headless scripts).
Bad input is refused *before* anything starts, with a :class:`MethodInputError` that says what is wrong.

The work folder is a new temporary folder unless the caller gives one: a temporary folder is removed once
the run succeeded and its outputs are loaded (or it was cancelled); after a failure it is kept and its path
is part of :meth:`MethodRun.error_message`. A folder given by the caller is never removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union

from .background import BackgroundCLIRun, CLIRunResult, ProgressCallback
from .common import MRMLBridgeError

PathLike = Union[str, os.PathLike]
INPUT_DIR = "input"
OUTPUT_DIR = "output"


class MethodInputError(MRMLBridgeError, ValueError):
    """The input given to a method run cannot be used (message says why and what to give instead)."""


class MethodRunError(MRMLBridgeError, RuntimeError):
    """A method run failed or was cancelled (message: the method, the CLI's last output lines and the kept
    work folder)."""


@dataclass
class MethodRun:
    """One background method run; ``nodes`` holds the loaded result nodes once it succeeded."""

    method: str
    run: BackgroundCLIRun
    nodes: Dict[str, Any] = field(default_factory=dict)
    load_error: Optional[str] = None

    @property
    def result(self) -> Optional[CLIRunResult]:
        return self.run.result

    @property
    def ok(self) -> bool:
        return self.result is not None and self.result.ok and self.load_error is None

    @property
    def output_dir(self) -> Path:
        return self.run.work_dir / OUTPUT_DIR

    @property
    def work_dir(self) -> Path:
        """The run's work folder (inputs in ``input/``, the CLI's outputs in ``output/``)."""
        return self.run.work_dir

    def cancel(self) -> None:
        self.run.cancel()

    def error_message(self) -> str:
        """'' when ok; else why not (a failed run's message names the work folder, which is kept)."""
        if self.load_error:
            return f"{self.load_error}\n(work folder kept for inspection: {self.work_dir})"
        return self.result.error_message if self.result is not None else "not finished"

    def result_nodes(self) -> Dict[str, Any]:
        """The loaded result nodes (name -> MRML node or node group); :class:`MethodRunError` when the run
        failed, was cancelled or has not finished."""
        if self.ok:
            return self.nodes
        raise MethodRunError(f"the {self.method} run did not succeed: {self.error_message()}")

    def _finish(self) -> None:
        """Remove the temporary work folder after success or cancel; keep it after a failure."""
        self.run.cleanup(failed=self.load_error is not None)


def start_method_run(method: str, args: List[str], load_outputs: Callable[[Path], Dict[str, Any]], *,
                     prepare: Optional[Callable[[Path], None]] = None,
                     on_progress: Optional[ProgressCallback] = None,
                     on_done: Optional[Callable[[MethodRun], None]] = None, wait: bool = True,
                     work_dir: Optional[PathLike] = None, dispatch: str = "poll",
                     python_executable: Optional[str] = None, force_cpu: bool = False) -> MethodRun:
    """Run ``cardiac-atlas <args>`` in ``work_dir`` (default: a new temporary folder, removed after
    success) after ``prepare(work_dir)`` wrote the inputs (it may append arguments naming them to ``args``);
    on success ``load_outputs(work_dir / "output")`` fills ``MethodRun.nodes``; then ``on_done(method_run)``.
    ``wait`` (default) blocks until all of that happened; ``wait=False`` returns at once (callbacks then
    come through ``run.dispatch_pending()`` with ``dispatch="poll"``, as the Slicer GUI does)."""
    owns_folder = work_dir is None
    folder = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="CardiacMotionAtlas-run-"))
    if prepare is not None:
        try:
            (folder / INPUT_DIR).mkdir(parents=True, exist_ok=True)
            prepare(folder)
        except BaseException:
            if owns_folder:  # nothing started: leave nothing behind
                shutil.rmtree(folder, ignore_errors=True)
            raise
    holder: Dict[str, MethodRun] = {}

    def finished(result: CLIRunResult) -> None:
        method_run = holder["run"]
        if result.ok:
            try:
                method_run.nodes = load_outputs(result.work_dir / OUTPUT_DIR)
            except Exception as error:  # report, never leave the caller without on_done
                method_run.load_error = f"{method}: could not load the results: {error}"
        try:
            if on_done is not None:
                on_done(method_run)
        finally:
            method_run._finish()

    run = BackgroundCLIRun(list(args), on_progress, finished, work_dir=folder, owns_work_dir=owns_folder,
                           python_executable=python_executable, dispatch="poll" if wait else dispatch,
                           force_cpu=force_cpu)
    method_run = MethodRun(method, run)
    holder["run"] = method_run
    run.start_and_maybe_wait(wait)
    return method_run


# ------------------------------------------------------------------------------------------ inputs
def labels_input(source: Any, setting: str):
    """An ImageSequence of 4D labels from a label sequence node, an ImageSequence, or ``None`` for a path
    (returned as is); checks the frames the atlas ``setting`` needs."""
    from ..data.image_sequence import ImageSequence

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise MethodInputError(f"{path}: no such label file or subject folder")
        return path
    if isinstance(source, ImageSequence):
        labels = source
    elif source is not None and hasattr(source, "IsA") and source.IsA("vtkMRMLSequenceNode"):
        from .volumes import sequence_node_to_image_sequence

        labels = sequence_node_to_image_sequence(source)
    elif source is not None and hasattr(source, "IsA") and source.IsA("vtkMRMLVolumeNode"):
        raise MethodInputError(f"{source.GetName()!r} is a single volume: the atlas needs a label *sequence* "
                               f"(one label map per cardiac phase, labels 2 = LV myocardium)")
    else:
        raise MethodInputError("no label sequence selected: choose a label-map sequence (LV myocardium = 2)")
    needed = 1 if setting == "ed" else 2
    if labels.n_frames < needed:
        raise MethodInputError(f"{labels.name or 'labels'}: {labels.n_frames} frame(s), but setting {setting!r} "
                               f"needs a cycle of at least {needed} frames")
    if not (labels.array == 2).any():
        raise MethodInputError(f"{labels.name or 'labels'}: no LV myocardium (label 2) in the label maps")
    return labels


def cine_study_input(source: Any):
    """A CineStudy from a cine browser node, a CineStudy, or a study folder path (returned as is)."""
    from ..data.cine_study import CineStudy

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_dir():
            raise MethodInputError(f"{path}: not a study folder")
        return path
    if isinstance(source, CineStudy):
        study = source
    elif source is not None and hasattr(source, "IsA") and source.IsA("vtkMRMLSequenceBrowserNode"):
        from .cine import cine_study_from_browser

        try:
            study = cine_study_from_browser(source)
        except MRMLBridgeError as error:
            raise MethodInputError(f"{source.GetName()!r} holds no cine CMR slices (a CT or another sequence?): "
                                   f"NISF++ needs SAX/LAX cine slices ({error})") from error
    elif source is not None and hasattr(source, "IsA") and source.IsA("vtkMRMLVolumeNode"):
        raise MethodInputError(f"{source.GetName()!r} is a single 3D volume (CT?): NISF++ needs cine CMR slices; "
                               f"load a study folder or the phantom subject")
    else:
        raise MethodInputError("no cine study selected: load a study folder or the phantom subject first")
    if study.n_frames < 2:
        raise MethodInputError(f"{study.subject_id}: a single frame; NISF++ needs a cine cycle (>= 2 frames)")
    if not study.sax:
        raise MethodInputError(f"{study.subject_id}: no short-axis slices")
    return study


def ct_frame_input(source: Any, ijk_to_ras=None):
    """A 3D CT frame as an ImageSequence (one frame) from a scalar volume node, an ImageSequence, or a
    NIfTI path (returned as is)."""
    import numpy as np

    from ..data.image_sequence import ImageSequence

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise MethodInputError(f"{path}: no such CT frame file")
        return path
    if isinstance(source, ImageSequence):
        image = source
    elif source is not None and hasattr(source, "IsA") and source.IsA("vtkMRMLScalarVolumeNode") \
            and not source.IsA("vtkMRMLLabelMapVolumeNode"):
        from .volumes import volume_node_ijk_to_ras, volume_node_to_array

        image = ImageSequence(volume_node_to_array(source)[None].astype(np.float32), volume_node_ijk_to_ras(source),
                              np.zeros(1), name=source.GetName())
    elif source is not None and hasattr(source, "IsA") and (source.IsA("vtkMRMLSequenceNode")
                                                            or source.IsA("vtkMRMLSequenceBrowserNode")):
        raise MethodInputError(f"{source.GetName()!r} is a sequence: CT motion synthesis is conditioned on one 3D "
                               f"CT frame (the ES phase); select that volume")
    else:
        raise MethodInputError("no CT frame selected: choose the ES-phase CT volume")
    if image.n_frames != 1 or min(image.shape_zyx) < 8:
        raise MethodInputError(f"{image.name or 'frame'}: shape {image.array.shape} is not one 3D CT volume "
                               f"(cine slices are 2D+t: use NISF++ or the atlas for CMR)")
    if not np.all(np.isfinite(image.array)):
        raise MethodInputError(f"{image.name or 'frame'}: contains NaN or infinite values")
    return image


def write_image_input(image, work_dir: Path, name: str, labels: bool = False) -> str:
    """Write an ImageSequence into the work folder as NIfTI; returns the relative path."""
    from ..io.nifti import write_nifti

    relative = f"{INPUT_DIR}/{name}.nii.gz"
    write_nifti(image, work_dir / relative, labels=labels)
    return relative


def write_labels_input(labels, work_dir: Path) -> str:
    """Write a 4D label map into the work folder (``input/labels.nii.gz``); returns the relative path."""
    return write_image_input(labels, work_dir, "labels", labels=True)


def write_study_input(study, work_dir: Path) -> str:
    """Write a CineStudy into the work folder (UK Biobank-style layout); returns the relative path."""
    from ..io.layout_ukbb import write_ukbb_study

    relative = f"{INPUT_DIR}/study"
    write_ukbb_study(study, work_dir / relative)
    return relative


def absolute(path: Path) -> str:
    return str(Path(path).resolve())


__all__ = ["MethodInputError", "MethodRun", "MethodRunError", "start_method_run", "labels_input", "cine_study_input", "ct_frame_input",
           "write_image_input",
           "write_labels_input", "write_study_input", "INPUT_DIR", "OUTPUT_DIR"]

