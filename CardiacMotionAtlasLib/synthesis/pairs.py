"""Annotated CT frame pairs on disk, one folder per sample::

    pair_000/conditioning_ES.nii.gz        the conditioning (ES) frame, HU, its own grid
    pair_000/generated_ED.nii.gz           the generated (ED) frame = conditioning pulled by the flow
    pair_000/flow.nii.gz                   the flow as an ITK displacement field (LPS vectors, vector
                                           NIfTI): Slicer loads it as a grid transform that resamples
                                           conditioning_ES onto generated_ED
    pair_000/flow_ras_mm.nii.gz            the same flow as a 4D NIfTI of its R, A, S components (mm)
    pair_000/labels_ES.nii.gz, labels_generated_ED.nii.gz   labels (when given), warped one-hot
    pair_000/pair.json                     latent, latent mode, model version, convention, files, stats;
                                           written last: a folder with pair.json is complete
    samples.csv                            the sample table, one row per pair: latent, flow magnitude,
                                           folded fraction and (with labels) the implied LVEF and
                                           myocardial volume change (%); written after every pair

Convention (:mod:`.grid`): ``generated_ED(p) = conditioning_ES(p + w(p))`` on the shared grid; ``w``
is the ED->ES material displacement of the generated frame (``source_phase`` 0, ``target_phase`` ES).
Every file is written atomically, and :func:`generate_pairs` skips complete folders on rerun.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
import torch

from ..data.image_sequence import ImageSequence
from ..io.atomic import atomic_write_text
from ..io.displacement_io import read_displacement_field, write_displacement_field
from ..io.nifti import read_nifti, write_nifti
from ..metrics.jacobian import negative_jacobian
from .grid import FrameLike, as_frame, pull_frame
from .sample import GeneratedSample, generate, make_latents
from .train import TrainedSynthesis

PAIR_FORMAT_VERSION = 1
PAIR_FOLDER = "pair_{:03d}"
"""The folder of sample ``i`` (``pair_000``, ``pair_001``, ...)."""
CONVENTION = ("generated_ED(p) = conditioning_ES(p + w(p)); w = flow (RAS mm) on the shared grid: the material at p "
              "in the generated ED frame is at p + w(p) in the ES frame")


def _image(volume: np.ndarray, matrix: np.ndarray, name: str) -> ImageSequence:
    return ImageSequence(np.asarray(volume)[None], matrix, np.zeros(1), name=name)


def write_pair(folder: Union[str, Path], sample: GeneratedSample, frame: np.ndarray, ijk_to_ras: np.ndarray,
               labels: Optional[np.ndarray] = None, *, model_version: str, latent_mode: str = "random",
               extra: Optional[Dict] = None) -> Dict:
    """Write one annotated pair into ``folder`` (see module docstring); returns the JSON record."""
    folder = Path(folder)
    frame, ijk_to_ras = as_frame(frame, ijk_to_ras, "conditioning frame")
    files = {"conditioning": "conditioning_ES.nii.gz", "generated": "generated_ED.nii.gz",
             "flow": "flow.nii.gz", "flow_ras_mm": "flow_ras_mm.nii.gz"}
    write_nifti(_image(frame, ijk_to_ras, "conditioning_ES"), folder / files["conditioning"])
    write_nifti(_image(sample.generated.astype(np.float32), ijk_to_ras, "generated_ED"), folder / files["generated"])
    write_displacement_field(sample.flow, folder / files["flow"])
    write_nifti(ImageSequence(sample.flow.vectors, ijk_to_ras, np.zeros(3), name="flow_RAS_mm"), folder / files["flow_ras_mm"])
    if labels is not None and sample.labels is not None:
        files["labels_conditioning"] = "labels_ES.nii.gz"
        files["labels_generated"] = "labels_generated_ED.nii.gz"
        write_nifti(_image(labels, ijk_to_ras, "labels_ES"), folder / files["labels_conditioning"], labels=True)
        write_nifti(_image(sample.labels, ijk_to_ras, "labels_generated_ED"), folder / files["labels_generated"], labels=True)
    folding = negative_jacobian(sample.flow)
    record = {
        "format_version": PAIR_FORMAT_VERSION,
        "model_version": model_version,
        "latent": [float(v) for v in sample.latent],
        "latent_mode": latent_mode,
        "source_phase": sample.flow.source_phase,
        "target_phase": sample.flow.target_phase,
        "convention": CONVENTION,
        "ijk_to_ras": np.asarray(ijk_to_ras).tolist(),
        "files": files,
        "stats": {**sample.stats, "negative_jacobian_fraction": folding.fraction},
        **(extra or {}),
    }
    atomic_write_text(folder / "pair.json", json.dumps(record, indent=1) + "\n")
    return record


def read_pair(folder: Union[str, Path]) -> Dict:
    """Load a written pair: ``{"record", "conditioning", "generated", "flow", "labels_*"}`` (ImageSequence /
    DisplacementField objects, RAS)."""
    folder = Path(folder)
    record = json.loads((folder / "pair.json").read_text())
    out = {"record": record, "flow": read_displacement_field(folder / record["files"]["flow"])}
    for key in ("conditioning", "generated", "flow_ras_mm"):
        out[key] = read_nifti(folder / record["files"][key])
    for key in ("labels_conditioning", "labels_generated"):
        if key in record["files"]:
            out[key] = read_nifti(folder / record["files"][key], labels=True)
    return out


def check_pair(folder: Union[str, Path], device: Union[str, torch.device] = "cpu") -> float:
    """Max |generated - conditioning pulled by the written flow| (HU) of a written pair: ~0 when the
    annotation agrees with the frames."""
    pair = read_pair(folder)
    conditioning = pair["conditioning"]
    moved = pull_frame(conditioning.array[0], conditioning.ijk_to_ras, pair["flow"], device=device)
    return float(np.abs(moved - pair["generated"].array[0]).max())


def _is_complete(folder: Path, latent: torch.Tensor, version: str) -> bool:
    """A folder written before for this latent by this model version (anything else is rewritten)."""
    try:
        record = json.loads((folder / "pair.json").read_text())
    except (OSError, ValueError):
        return False
    return (record.get("model_version") == version
            and np.allclose(record.get("latent", []), latent.numpy(), atol=1e-6)
            and all((folder / name).is_file() for name in record.get("files", {}).values()))


def _carry_over(previous: Path, folder: Path) -> None:
    """Hard-link (copy where links fail) a complete pair folder into ``folder``, ``pair.json`` last."""
    import os
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    names = sorted(p.name for p in previous.iterdir() if p.is_file() and p.name != "pair.json") + ["pair.json"]
    for name in names:
        try:
            os.link(previous / name, folder / name)
        except OSError:
            shutil.copy2(previous / name, folder / name)


def generate_pairs(trained: TrainedSynthesis, frame: FrameLike, out: Union[str, Path], *,
                   ijk_to_ras: Optional[np.ndarray] = None, labels: Optional[np.ndarray] = None, n: int = 3,
                   mode: str = "random", seed: int = 0, es_phase: float = 0.35, subject_id: str = "",
                   progress=None, resume_from: Optional[Union[str, Path]] = None) -> List[Path]:
    """Sample ``n`` flows for ``frame`` (latents of ``mode``) and write ``out/pair_<i>`` folders; a folder
    already complete for the same latent and model version is kept (rerunning resumes), any other is
    rewritten; with ``resume_from`` (a previous output folder, e.g. the one a staging ``out`` will
    replace) its complete folders are linked into ``out`` instead of recomputed; returns the folders.
    ``progress``: a ProgressReporter or None."""
    volume, matrix = as_frame(frame, ijk_to_ras, "conditioning frame")
    latents = make_latents(mode, n, trained.config.latent_dim, seed)
    out = Path(out)
    folders = [out / PAIR_FOLDER.format(index) for index in range(n)]
    if progress is not None:
        progress.start(n, "write annotated pairs")
    version = trained.model_version
    for index, folder in enumerate(folders):
        previous = None if resume_from is None else Path(resume_from) / folder.name
        if (previous is not None and not _is_complete(folder, latents[index], version)
                and _is_complete(previous, latents[index], version)):
            _carry_over(previous, folder)
        if not _is_complete(folder, latents[index], version):
            (folder / "pair.json").unlink(missing_ok=True)  # the folder is incomplete until the new record
            sample = generate(trained, volume, matrix, labels, latents[index:index + 1], es_phase=es_phase)[0]
            write_pair(folder, sample, volume, matrix, labels, model_version=version, latent_mode=mode,
                       extra={"index": index, "seed": seed, "subject_id": subject_id})
        if progress is not None:
            progress.update(index + 1)
    if progress is not None:
        progress.close()
    write_sample_table(out / SAMPLE_TABLE, folders)
    return folders


SAMPLE_TABLE = "samples.csv"
TABLE_COLUMNS = ("index", "folder", "latent_mode", "seed", "implied_lvef_pct", "myo_change_pct", "max_flow_mm",
                 "mean_flow_mm", "negative_jacobian_fraction", "latent")


def write_sample_table(path: Union[str, Path], folders: List[Path]) -> List[Dict]:
    """Write the CSV table of written pairs (columns :data:`TABLE_COLUMNS`; an index without labels has
    an empty ``implied_lvef_pct``; ``latent`` is space-separated), atomically; returns its rows."""
    import csv
    import io

    rows = []
    for folder in folders:
        record = json.loads((Path(folder) / "pair.json").read_text())
        stats = record.get("stats", {})
        rows.append({"index": record.get("index", len(rows)), "folder": Path(folder).name,
                     "latent_mode": record.get("latent_mode", ""), "seed": record.get("seed", ""),
                     **{key: _cell(stats.get(key)) for key in TABLE_COLUMNS[4:9]},
                     "latent": " ".join(f"{v:.6g}" for v in record.get("latent", []))})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(TABLE_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
    return rows


def _cell(value) -> str:
    if value is None or not np.isfinite(float(value)):
        return ""
    return f"{float(value):.6g}"


__all__ = ["CONVENTION", "PAIR_FOLDER", "PAIR_FORMAT_VERSION", "SAMPLE_TABLE", "TABLE_COLUMNS", "check_pair", "generate_pairs",
           "read_pair", "write_pair", "write_sample_table"]
