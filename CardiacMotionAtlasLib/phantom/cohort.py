"""A phantom cohort on disk: every subject as a UK Biobank-style study plus its ground truth.

Per subject folder ``<out>/<subject_id>/``::

    sa.nii.gz, la_2ch.nii.gz, la_3ch.nii.gz, la_4ch.nii.gz      cine CMR (nominal geometry)
    seg_sa.nii.gz, seg_sa_ED.nii.gz, seg_sa_ES.nii.gz, seg_la_<v>_ED/ES.nii.gz, study.json
    ct_ED.nii.gz, ct_ES.nii.gz, seg_ct_ED.nii.gz, seg_ct_ES.nii.gz   CT phases (HU) and labels
    ground_truth/labels_iso.nii.gz        labels on an isotropic RAS grid at ~``gt_frames`` cine phases (ES included)
    ground_truth/flow_ED_to_ES.nii.gz     exact displacement field on that grid (ITK/Slicer convention)
    ground_truth/flow_ct_ES_to_ED.nii.gz  exact ES->ED flow on the CT grid
    ground_truth/meshes/<surface>_<nnn>.vtp  closed surfaces with fixed connectivity at ``gt_frames``
    phantom.json                          parameters, true indices, volume curves, slice misalignments
                                          and intensity scales, the acquisition (``"acquisition"``: with
                                          ``randomised``, the pose and every drawn CMR/CT protocol value);
                                          written last = the subject is complete

Every file is written atomically, and a subject whose ``phantom.json`` exists is skipped on rerun, so
an interrupted cohort resumes where it stopped.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from ..data.image_sequence import ImageSequence
from ..io.atomic import atomic_write_text
from ..io.displacement_io import write_displacement_field
from ..io.layout_ukbb import write_ukbb_study
from ..io.meshes import write_mesh_sequence
from ..io.nifti import write_nifti
from .acquisition import AcquisitionRanges, check_acquisition, randomise_subject, subject_rng
from .cmr import CMRConfig, simulate_cine
from .ct import CTConfig, simulate_ct
from .families import DEFAULT_FAMILY, check_family, make_heart
from .heart_base import AnalyticHeart

COHORT_FORMAT_VERSION = 1
SIDECAR = "phantom.json"
GT_SURFACES = ("myocardium", "lv_cavity")


@dataclass
class CohortConfig:
    """What to generate. ``tiny()`` is for tests (seconds per subject). ``family`` names the phantom
    family (:data:`~.families.FAMILY_CHOICES`; ``mixed`` alternates them). ``acquisition``: ``fixed``
    (every subject with ``cmr``/``ct`` and the family's pose) or ``randomised`` (pose and protocols drawn
    per subject from ``acquisition_ranges`` on top of ``cmr``/``ct``, see :mod:`.acquisition`)."""

    n_subjects: int = 6
    seed: int = 0
    family: str = DEFAULT_FAMILY
    abnormal_fraction: float = 0.3
    cmr: CMRConfig = field(default_factory=CMRConfig)
    ct: Optional[CTConfig] = field(default_factory=CTConfig)
    gt_spacing_mm: float = 1.5
    gt_frames: int = 10
    acquisition: str = "fixed"
    acquisition_ranges: AcquisitionRanges = field(default_factory=AcquisitionRanges)

    @classmethod
    def tiny(cls, n_subjects: int = 2, acquisition: str = "fixed") -> "CohortConfig":
        return cls(n_subjects=n_subjects, cmr=CMRConfig.tiny(), ct=CTConfig.tiny(), gt_spacing_mm=4.0, gt_frames=4,
                   acquisition=check_acquisition(acquisition), acquisition_ranges=AcquisitionRanges.tiny())

    def to_dict(self) -> Dict:
        return asdict(self)


def subject_is_complete(folder: Path) -> bool:
    return (Path(folder) / SIDECAR).is_file()


def subject_index(heart) -> int:
    """Cohort index of a heart, from the trailing digits of its subject id (``phantom007`` -> 7)."""
    match = re.search(r"(\d+)$", heart.subject_id)
    if match is None:
        raise ValueError(f"subject id {heart.subject_id!r} has no trailing index; pass index= explicitly")
    return int(match.group(1))


def subject_acquisition(heart, config: CohortConfig, index: int) -> Tuple[CMRConfig, Optional[CTConfig], Dict]:
    """(CMR config, CT config or None, acquisition record) of subject ``index``. With ``randomised``
    the heart is posed in the scanner (deterministic in ``config.seed`` and ``index``, idempotent)."""
    if check_acquisition(config.acquisition) == "fixed":
        return config.cmr, config.ct, {"mode": "fixed"}
    return randomise_subject(heart, subject_rng(config.seed, index), config.cmr, config.ct,
                             config.acquisition_ranges)


def write_subject(heart: AnalyticHeart, folder: Path, config: CohortConfig,
                  progress: Optional[Callable[[str], None]] = None, index: Optional[int] = None) -> Dict:
    """Simulate and write one subject (see module docstring); returns the sidecar dict. ``index`` is
    the subject's cohort index (default: from its id), which seeds a ``randomised`` acquisition."""
    folder = Path(folder)
    note = progress or (lambda message: None)
    cmr, ct_config, acquisition = subject_acquisition(heart, config, subject_index(heart) if index is None else index)
    note("CMR")
    simulated = simulate_cine(heart, cmr, seed=config.seed)
    write_ukbb_study(simulated.study, folder)
    files = ["sa.nii.gz"] + [f"la_{v.lower()}.nii.gz" for v in cmr.lax_views]

    es_phase = heart.es_phase
    gt = folder / "ground_truth"
    if ct_config is not None:
        note("CT")
        ct = simulate_ct(heart, [0.0, es_phase], ct_config, seed=config.seed)
        for index, tag in enumerate(("ED", "ES")):
            write_nifti(_frame(ct.image, index, f"ct_{tag}"), folder / f"ct_{tag}.nii.gz")
            write_nifti(_frame(ct.labels, index, f"seg_ct_{tag}"), folder / f"seg_ct_{tag}.nii.gz", labels=True)
            files += [f"ct_{tag}.nii.gz", f"seg_ct_{tag}.nii.gz"]
        write_displacement_field(ct.flow(es_phase, 0.0), gt / "flow_ct_ES_to_ED.nii.gz")
        files.append("ground_truth/flow_ct_ES_to_ED.nii.gz")

    note("ground truth")
    n_cine = cmr.n_frames
    step = max(1, n_cine // config.gt_frames)
    gt_frames = sorted(set(range(0, n_cine, step)) | {simulated.study.es_frame})
    gt_phases = np.asarray(gt_frames, float) / n_cine  # cine frames, ES included
    matrix, shape = heart.bounding_grid(config.gt_spacing_mm)
    labels = heart.label_volumes(matrix, shape, gt_phases)
    write_nifti(ImageSequence(labels, matrix, gt_phases, heart.cycle_length_s, name="labels_iso"),
                gt / "labels_iso.nii.gz", labels=True)
    write_displacement_field(heart.displacement_field(matrix, shape, 0.0, es_phase), gt / "flow_ED_to_ES.nii.gz")
    files += ["ground_truth/labels_iso.nii.gz", "ground_truth/flow_ED_to_ES.nii.gz"]
    for surface in GT_SURFACES:
        paths = write_mesh_sequence(heart.mesh_sequence(surface, gt_phases), gt / "meshes", name=surface)
        files += [str(p.relative_to(folder)) for p in paths]

    curve_phases = np.arange(cmr.n_frames) / cmr.n_frames
    sidecar = {
        "format_version": COHORT_FORMAT_VERSION,
        "subject_id": heart.subject_id,
        "family": heart.family,
        "parameters": heart.params.to_dict(),
        "clinical_indices": heart.clinical_indices(),
        "es_phase": es_phase,
        "es_frame": simulated.study.es_frame,
        "cycle_length_s": heart.cycle_length_s,
        "volume_curve": {"phases": curve_phases.tolist(),
                         "lv_ml": np.asarray(heart.lv_volume_ml(curve_phases)).tolist(),
                         "rv_ml": np.asarray(heart.rv_volume_ml(curve_phases)).tolist()},
        "gt_phases": gt_phases.tolist(),
        "gt_cine_frames": gt_frames,
        "gt_es_index": gt_frames.index(simulated.study.es_frame),
        "slices": [t.to_dict() for t in simulated.truth],
        "local_to_ras": heart.local_to_ras.tolist(),
        "config": config.to_dict(),
        "acquisition": acquisition,
        "files": files,
    }
    atomic_write_text(folder / SIDECAR, json.dumps(sidecar, indent=1))
    return sidecar


def _frame(sequence: ImageSequence, index: int, name: str) -> ImageSequence:
    return ImageSequence(sequence.array[index:index + 1], sequence.ijk_to_ras, sequence.phases[index:index + 1],
                         sequence.cycle_length_s, name=name)


def cohort_hearts(config: CohortConfig) -> List[AnalyticHeart]:
    """The cohort's hearts (deterministic in ``config.family`` and ``config.seed``), posed in the scanner
    as written when the acquisition is ``randomised``."""
    check_family(config.family)
    hearts = [make_heart(config.family, config.seed, i, abnormal_fraction=config.abnormal_fraction)
              for i in range(config.n_subjects)]
    for index, heart in enumerate(hearts):  # randomised acquisition: the subject's pose in the scanner
        subject_acquisition(heart, config, index)
    return hearts


def write_cohort(out: Path, config: CohortConfig, progress=None) -> List[Path]:
    """Write every subject that is not complete yet; returns all subject folders. ``progress`` is a
    :class:`~CardiacMotionAtlasLib.training.progress.ProgressReporter` (or None)."""
    out = Path(out)
    hearts = cohort_hearts(config)
    folders = [out / heart.subject_id for heart in hearts]
    if progress is not None:
        progress.start(len(hearts), "phantom cohort")
    for index, (heart, folder) in enumerate(zip(hearts, folders)):
        if not subject_is_complete(folder):
            write_subject(heart, folder, config, index=index)
        if progress is not None:
            progress.update(index + 1, subject=heart.subject_id)
    if progress is not None:
        progress.close()
    return folders


__all__ = ["COHORT_FORMAT_VERSION", "CohortConfig", "GT_SURFACES", "SIDECAR", "cohort_hearts",
           "subject_acquisition", "subject_index", "subject_is_complete", "write_cohort", "write_subject"]
