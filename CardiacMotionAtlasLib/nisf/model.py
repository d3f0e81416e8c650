"""NISF++ model objects: the trained cohort model and one fitted subject.

- :class:`NISFModel` (an ``nn.Module``): the shared :class:`~.network.NISFNetwork` plus the learnables
  of the training subjects (:class:`~.slices.SubjectParameters`), checkpointed by ``training/``;
- :class:`SubjectFit`: the network (frozen) with one subject's prepared slices, latent, pose, slice
  offsets and intensity scales; everything a reconstruction outputs is computed from it.

Subject metadata (frame, slice names and geometries) travels in checkpoints as plain dicts
(:func:`subject_meta` / :func:`subject_from_meta`), so they load with ``weights_only=True``.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn

from .config import NISFConfig
from .data import SliceData, SubjectData
from .frame import StandardFrame
from .network import NISFNetwork
from .slices import SliceTable, SubjectParameters, corrected_slice_geometries, slice_rigid_transforms_ras


class NISFModel(nn.Module):
    """The shared network and the training cohort's learnables (``params``; ``n_slices`` slices in all)."""

    def __init__(self, config: NISFConfig, n_subjects: int, n_slices: int,
                 generator: Optional[torch.Generator] = None) -> None:
        super().__init__()
        self.network = NISFNetwork(config.network)
        self.params = SubjectParameters(n_subjects, n_slices, config.network.latent_dim,
                                        config.network.latent_init_std, generator)


def subject_meta(subject: SubjectData) -> Dict:
    """Plain-dict description of a prepared subject without its pixels (for checkpoints and JSON)."""
    return {
        "subject_id": subject.subject_id, "source": subject.source, "frame": subject.frame.to_dict(),
        "intensity_norm": float(subject.intensity_norm), "n_frames": int(subject.n_frames),
        "cycle_length_s": None if subject.cycle_length_s is None else float(subject.cycle_length_s),
        "slices": [{"name": s.name, "view": s.view, "index_in_study": int(s.index_in_study),
                    "sax_position": s.sax_position, "nominal_ijk_to_ras": s.nominal_ijk_to_ras.tolist(),
                    "shape_yx": [int(v) for v in s.shape_yx]} for s in subject.slices],
    }


def subject_from_meta(meta: Dict) -> SubjectData:
    """A :class:`SubjectData` with geometry only (no pixels) from :func:`subject_meta` output."""
    slices = [SliceData(name=s["name"], view=s["view"], index_in_study=int(s["index_in_study"]),
                        sax_position=s["sax_position"], nominal_ijk_to_ras=np.asarray(s["nominal_ijk_to_ras"], float),
                        shape_yx=tuple(s["shape_yx"]), roi_pixels=np.zeros(0, np.int64), phases=np.zeros(0),
                        intensities=np.zeros((0, 0), np.float32), labels=None) for s in meta["slices"]]
    return SubjectData(subject_id=meta["subject_id"], source=meta["source"],
                       frame=StandardFrame.from_dict(meta["frame"]), slices=slices,
                       intensity_norm=float(meta["intensity_norm"]), n_frames=int(meta["n_frames"]),
                       cycle_length_s=meta.get("cycle_length_s"))


class SubjectFit:
    """One subject as NISF++ represents it (a training subject or a fitted new one).

    Attributes: ``network`` (shared, frozen here), ``subject`` (prepared data), ``params`` (one-subject
    :class:`SubjectParameters`), ``table`` (slice geometry tensors), ``config``, ``device``, ``history``
    (loss trace of the fit, if any), ``adapted`` (the network is this subject's test-time adapted copy).
    """

    def __init__(self, network: NISFNetwork, subject: SubjectData, params: SubjectParameters, config: NISFConfig,
                 device: torch.device, history: Optional[Dict[str, List[float]]] = None) -> None:
        self.network = network
        self.subject = subject
        self.params = params
        self.config = config
        self.device = torch.device(device)
        self.table = SliceTable([subject], self.device)
        self.history = history or {}
        self.adapted = False  # True when ``network`` is this subject's own adapted copy (FitConfig.lr_network)

    # ------------------------------------------------------------------ slice parameters
    def slice_offsets_canonical(self) -> np.ndarray:
        return self.params.slice_offset_matrices(self.table)

    def slice_rigid_transforms_ras(self) -> List[np.ndarray]:
        """Per slice, the 4x4 RAS rigid transform (mm) with corrected = transform @ nominal."""
        return slice_rigid_transforms_ras(self.subject, self.slice_offsets_canonical())

    def corrected_geometries(self) -> List[np.ndarray]:
        """Per slice, the corrected IJK->RAS (equal to the header's for zero offsets)."""
        return corrected_slice_geometries(self.subject, self.slice_offsets_canonical())

    def intensity_scales(self) -> np.ndarray:
        """Per slice, ``s`` with ``observed = s * canonical`` (``s = 1 / (1 + d)``)."""
        return 1.0 / (1.0 + self.params.slice_intensity.detach().double().cpu().numpy())

    def global_pose(self) -> Dict[str, List[float]]:
        return {"rotation_deg": self.params.global_rotation_deg.detach()[0].cpu().tolist(),
                "translation_mm": self.params.global_translation_mm.detach()[0].cpu().tolist()}

    def template_points(self, points_ras: np.ndarray) -> torch.Tensor:
        """Network-space points of RAS points ``(N, 3)`` (float32 tensor on ``device``)."""
        canonical = torch.as_tensor(self.subject.frame.to_canonical(points_ras), dtype=torch.float32,
                                    device=self.device)
        return self.params.template_points(0, canonical, self.subject.frame.scale_mm)

    @property
    def latent(self) -> torch.Tensor:
        return self.params.latents[0]

    # ------------------------------------------------------------------ reports and state
    def geometry_report(self) -> Dict:
        """Plain dict: per slice the nominal and corrected IJK->RAS, the RAS rigid transform, its rotation
        angle (deg) and displacement of the slice centre (mm), and the intensity scale."""
        transforms = self.slice_rigid_transforms_ras()
        corrected = self.corrected_geometries()
        scales = self.intensity_scales()
        slices = []
        for s, transform, geometry, scale in zip(self.subject.slices, transforms, corrected, scales):
            ny, nx = s.shape_yx
            centre = s.nominal_ijk_to_ras @ np.array([(nx - 1) / 2.0, (ny - 1) / 2.0, 0.0, 1.0])
            cosine = np.clip((np.trace(transform[:3, :3]) - 1.0) / 2.0, -1.0, 1.0)
            slices.append({"name": s.name, "view": s.view, "nominal_ijk_to_ras": s.nominal_ijk_to_ras.tolist(),
                           "corrected_ijk_to_ras": geometry.tolist(), "rigid_transform_ras": transform.tolist(),
                           "rotation_deg": float(np.degrees(np.arccos(cosine))),
                           "centre_shift_mm": float(np.linalg.norm((transform @ centre - centre)[:3])),
                           "intensity_scale": float(scale)})
        return {"subject_id": self.subject.subject_id, "source": self.subject.source,
                "frame": self.subject.frame.to_dict(), "global_pose": self.global_pose(),
                "intensity_norm": self.subject.intensity_norm, "slices": slices}

    def state(self) -> Dict:
        """Checkpoint-safe state of this subject (tensors and plain dicts)."""
        return {"params": {k: v.detach().cpu() for k, v in self.params.state_dict().items()},
                "subject": subject_meta(self.subject)}


__all__ = ["NISFModel", "SubjectFit", "subject_meta", "subject_from_meta"]
