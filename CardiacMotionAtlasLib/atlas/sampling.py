"""SDF samples of one subject's LV myocardium over its frames, in its LV-aligned local frame (mm).

Three sources, one result (:class:`SubjectData`):

- meshes (:class:`MeshSequence` in RAS mm, closed, shared faces): exact signed point-to-triangle
  distances (:func:`~CardiacMotionAtlasLib.metrics.point_to_surface_distance`, negative inside);
- label maps (:class:`ImageSequence`, label 2 = myocardium): signed Euclidean distance transforms
  (``scipy.ndimage.distance_transform_edt`` with the voxel spacing, half a voxel to the boundary),
  interpolated trilinearly at the sample points;
- the phantom (:class:`PhantomHeart`): its closed myocardium meshes, with the canonical frame taken
  from its ED label map (like real data, not from its parameters).

Samples: ``1 - uniform_fraction`` of them are surface points (uniform over the area) plus Gaussian
offsets of each ``near_std_mm``; the rest are uniform in a box ``box_margin`` x the heart's extent over
all frames. Points are stored in local mm (rotation + translation of RAS, no scaling) so that the
atlas can apply its cohort scale later.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Optional, Sequence

import numpy as np
from scipy import ndimage

from ..data.image_sequence import ImageSequence
from ..data.mesh_sequence import MeshSequence
from ..geometry.affine import apply_affine
from ..metrics.surface import point_to_surface_distance, sample_surface
from ..metrics.topology import mesh_topology
from .config import FIT_SETTINGS, SamplingConfig
from .errors import AtlasDataError
from .frame import MYOCARDIUM_LABEL, CanonicalFrame, canonical_frame_from_labels
from .observed_timing import es_phase_from_volumes


@dataclass
class SubjectData:
    """SDF samples of one subject.

    Attributes:
        subject_id: name used in messages and outputs.
        frame: its canonical frame (RAS <-> canonical).
        phases: ``(F,)`` normalised cardiac phases of the sampled frames (ED = 0).
        points_mm: ``(F, N, 3)`` float32 sample points, LV-aligned local mm (``frame.to_local``).
        sdf_mm: ``(F, N)`` float32 signed distance to the myocardium surface (mm, negative inside).
        es_phase: phase of end-systole when known (ES frame observed or annotated).
        surface_extent_mm: ``(3,)`` largest absolute local coordinate of the surface over all frames.
        blood_volume_ml: ``(F,)`` LV blood-pool volume (ml) of each frame when known (label maps,
            phantoms); the all-frames fit estimates ES from it (:mod:`.observed_timing`).
    """

    subject_id: str
    frame: CanonicalFrame
    phases: np.ndarray
    points_mm: np.ndarray
    sdf_mm: np.ndarray
    es_phase: Optional[float] = None
    surface_extent_mm: np.ndarray = field(default_factory=lambda: np.ones(3))
    blood_volume_ml: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.phases = np.asarray(self.phases, float).reshape(-1)
        if self.blood_volume_ml is not None:
            self.blood_volume_ml = np.asarray(self.blood_volume_ml, float).reshape(-1)
            if self.blood_volume_ml.shape != self.phases.shape:
                raise AtlasDataError(self.subject_id, f"{len(self.blood_volume_ml)} blood-pool volumes for "
                                                      f"{len(self.phases)} frames")
        self.points_mm = np.asarray(self.points_mm, np.float32)
        self.sdf_mm = np.asarray(self.sdf_mm, np.float32)
        n_frames = len(self.phases)
        if n_frames == 0:
            raise AtlasDataError(self.subject_id, "no frames")
        if self.points_mm.shape[:1] != (n_frames,) or self.sdf_mm.shape[:1] != (n_frames,):
            raise AtlasDataError(self.subject_id, f"{n_frames} phases for {self.points_mm.shape[0]} sampled frames")
        if self.points_mm.ndim != 3 or self.points_mm.shape[2] != 3 or self.sdf_mm.shape != self.points_mm.shape[:2]:
            raise AtlasDataError(self.subject_id, "samples must be points (F, N, 3) and sdf (F, N)")
        if not (np.all(np.isfinite(self.points_mm)) and np.all(np.isfinite(self.sdf_mm))):
            raise AtlasDataError(self.subject_id, "SDF samples contain NaN or infinite values")
        if np.any((self.phases < 0) | (self.phases >= 1)):
            raise AtlasDataError(self.subject_id, f"phases must lie in [0, 1), got {self.phases}")

    @property
    def n_frames(self) -> int:
        return len(self.phases)

    def frame_index(self, phase: float) -> int:
        """Index of the frame nearest (cyclically) to ``phase``."""
        distance = np.abs((self.phases - phase + 0.5) % 1.0 - 0.5)
        return int(np.argmin(distance))

    def select(self, frames: Sequence[int]) -> "SubjectData":
        frames = list(frames)
        volumes = None if self.blood_volume_ml is None else self.blood_volume_ml[frames]
        return replace(self, phases=self.phases[frames], points_mm=self.points_mm[frames], sdf_mm=self.sdf_mm[frames],
                       blood_volume_ml=volumes)

    def observed_es_phase(self) -> Optional[float]:
        """ES estimated from the frames' blood-pool volumes (:func:`~.observed_timing.es_phase_from_volumes`;
        None without volumes or with fewer than 3 frames)."""
        if self.blood_volume_ml is None:
            return None
        return es_phase_from_volumes(self.phases, self.blood_volume_ml)

    def observed(self, setting: str) -> "SubjectData":
        """The frames a fitting ``setting`` sees: ``all``, ``ed_es`` (ED = phase 0 and the ES frame) or
        ``ed``. Raises :class:`AtlasDataError` when the frames it needs are missing."""
        if setting not in FIT_SETTINGS:
            raise AtlasDataError(self.subject_id, f"unknown fitting setting {setting!r}; expected one of {FIT_SETTINGS}")
        ed = self.frame_index(0.0)
        if abs((self.phases[ed] + 0.5) % 1.0 - 0.5) > 1e-6:
            raise AtlasDataError(self.subject_id, f"no ED frame (phase 0) among phases {np.round(self.phases, 3)}")
        if setting == "all":
            if self.n_frames < 2:
                raise AtlasDataError(self.subject_id, f"setting 'all' needs at least 2 frames, got {self.n_frames}")
            return self
        if setting == "ed":
            return self.select([ed])
        if self.es_phase is None:
            raise AtlasDataError(self.subject_id, "setting 'ed_es' needs the ES phase (es_phase is unknown)")
        es = self.frame_index(self.es_phase)
        if es == ed or abs((self.phases[es] - self.es_phase + 0.5) % 1.0 - 0.5) > 1e-6:
            raise AtlasDataError(self.subject_id, f"no frame at the ES phase {self.es_phase:.3f}")
        return self.select([ed, es])


def _check_phases(phases: Optional[Iterable[float]], n_frames: int, default: np.ndarray, source: str) -> np.ndarray:
    if phases is None:
        return np.asarray(default, float)
    phases = np.asarray(list(phases), float).reshape(-1)
    if len(phases) != n_frames:
        raise AtlasDataError(source, f"{len(phases)} phases given for {n_frames} frames (wrong frame count)")
    if not np.all(np.isfinite(phases)):
        raise AtlasDataError(source, "phases contain NaN")
    return phases


def _surface_samples(rng: np.random.Generator, surface_points: np.ndarray, n_near: int,
                     stds_mm: Sequence[float]) -> np.ndarray:
    groups = np.array_split(np.arange(n_near), len(stds_mm))
    out = np.empty((n_near, 3))
    chosen = surface_points[rng.integers(0, len(surface_points), n_near)]
    for std, index in zip(stds_mm, groups):
        out[index] = chosen[index] + rng.normal(0.0, std, size=(len(index), 3))
    return out


def _box_samples(rng: np.random.Generator, extent_mm: np.ndarray, n: int, margin: float) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=(n, 3)) * (margin * extent_mm)


def _split(config: SamplingConfig):
    n_uniform = int(round(config.samples_per_frame * config.uniform_fraction))
    return config.samples_per_frame - n_uniform, n_uniform


def subject_from_meshes(mesh: MeshSequence, frame: CanonicalFrame, config: Optional[SamplingConfig] = None,
                        seed: int = 0, es_phase: Optional[float] = None, subject_id: Optional[str] = None,
                        phases: Optional[Iterable[float]] = None) -> SubjectData:
    """SDF samples from closed myocardium meshes (RAS mm, one per frame, shared faces)."""
    config = config or SamplingConfig()
    source = subject_id or mesh.name or "mesh"
    if not np.all(np.isfinite(mesh.vertices)):
        raise AtlasDataError(source, "mesh vertices contain NaN or infinite values")
    topology = mesh_topology(mesh)
    if not topology.is_closed:
        raise AtlasDataError(source, f"myocardium mesh is not closed ({topology.n_boundary_edges} boundary edges)")
    phases = _check_phases(phases, mesh.n_frames, mesh.phases, source)
    rng = np.random.default_rng(seed)
    local = frame.to_local(mesh.vertices)
    extent = np.abs(local).reshape(-1, 3).max(axis=0)
    n_near, n_uniform = _split(config)
    points, sdf = [], []
    for index in range(mesh.n_frames):
        surface = frame.to_local(sample_surface(mesh.vertices[index], mesh.faces, max(n_near, 1000),
                                                seed=int(rng.integers(2**31))))
        frame_points = np.concatenate([_surface_samples(rng, surface, n_near, config.near_std_mm),
                                       _box_samples(rng, extent, n_uniform, config.box_margin)])
        distances = point_to_surface_distance(frame.local_to_ras_points(frame_points), mesh.vertices[index],
                                              mesh.faces, signed=True)
        points.append(frame_points)
        sdf.append(distances)
    return SubjectData(source, frame, phases, np.stack(points), np.stack(sdf), es_phase, extent)


def label_sdf_mm(labels: ImageSequence, frame_index: int, label: int = MYOCARDIUM_LABEL,
                 source: str = "label map") -> np.ndarray:
    """Signed distance (mm, negative inside) to the boundary of ``label`` at the voxel centres of one frame,
    ``(z, y, x)``: Euclidean distance transforms with the voxel spacing, shifted by half a voxel."""
    array = np.asarray(labels.array[frame_index])
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise AtlasDataError(source, f"label map frame {frame_index} contains NaN or infinite values")
    mask = array == label
    if not mask.any():
        raise AtlasDataError(source, f"frame {frame_index} has no LV myocardium (label {label}): empty label map?")
    if mask.all():
        raise AtlasDataError(source, f"frame {frame_index} is all myocardium: no boundary to measure")
    spacing_zyx = labels.spacing[::-1]
    half = 0.5 * float(spacing_zyx.min())
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing_zyx)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing_zyx)
    return np.where(mask, -(inside - half), outside - half)


def subject_from_labels(labels: ImageSequence, config: Optional[SamplingConfig] = None, seed: int = 0,
                        frame: Optional[CanonicalFrame] = None, ed_frame: int = 0,
                        es_frame: Optional[int] = None, subject_id: Optional[str] = None,
                        phases: Optional[Iterable[float]] = None) -> SubjectData:
    """SDF samples from per-frame label maps (``(t, z, y, x)``, labels 0-3, RAS geometry). The canonical
    frame comes from frame ``ed_frame``; ES defaults to the frame of smallest LV blood pool (label 1)."""
    from skimage.measure import marching_cubes

    config = config or SamplingConfig()
    source = subject_id or labels.name or "label map"
    phases = _check_phases(phases, labels.n_frames, labels.phases, source)
    if labels.array.dtype.kind == "f" and not np.all(np.isfinite(labels.array)):
        raise AtlasDataError(source, "label map contains NaN or infinite values")
    frame = frame or canonical_frame_from_labels(labels, ed_frame, source)
    rng = np.random.default_rng(seed)
    n_near, n_uniform = _split(config)
    sdfs = [label_sdf_mm(labels, index, source=source) for index in range(labels.n_frames)]
    surfaces = []
    for sdf in sdfs:
        verts_kji = marching_cubes(sdf, level=0.0)[0]
        surfaces.append(frame.to_local(apply_affine(labels.ijk_to_ras, verts_kji[:, ::-1])))
    extent = np.abs(np.concatenate(surfaces)).max(axis=0)
    ras_to_ijk = np.linalg.inv(labels.ijk_to_ras)
    points, values = [], []
    for sdf, surface in zip(sdfs, surfaces):
        frame_points = np.concatenate([_surface_samples(rng, surface, n_near, config.near_std_mm),
                                       _box_samples(rng, extent, n_uniform, config.box_margin)])
        ijk = apply_affine(ras_to_ijk, frame.local_to_ras_points(frame_points))
        values.append(ndimage.map_coordinates(sdf, ijk[:, ::-1].T, order=1, mode="nearest"))
        points.append(frame_points)
    blood = np.count_nonzero(np.asarray(labels.array) == 1, axis=(1, 2, 3))
    if es_frame is None:
        es_frame = int(np.argmin(blood)) if blood.max() > 0 and labels.n_frames > 1 else None
    elif not 0 <= es_frame < labels.n_frames:
        raise AtlasDataError(source, f"ES frame {es_frame} out of range ({labels.n_frames} frames)")
    es_phase = None if es_frame is None else float(phases[es_frame])
    return SubjectData(source, frame, phases, np.stack(points), np.stack(values), es_phase, extent,
                       blood * labels.voxel_volume_ml())


def phantom_canonical_frame(heart, spacing_mm: float = 2.5) -> CanonicalFrame:
    """The phantom's canonical frame, measured like real data: from its ED label map at ``spacing_mm``."""
    matrix, shape = heart.bounding_grid(spacing_mm)
    labels = heart.label_volume(matrix, shape, 0.0)
    return canonical_frame_from_labels(ImageSequence(labels[None], matrix, np.zeros(1), name=heart.subject_id))


def subject_from_phantom(heart, phases: Iterable[float], config: Optional[SamplingConfig] = None,
                         seed: int = 0, frame: Optional[CanonicalFrame] = None) -> SubjectData:
    """SDF samples of a :class:`PhantomHeart` at ``phases`` from its exact myocardium meshes."""
    phases = np.asarray(list(phases), float)
    mesh = heart.mesh_sequence("myocardium", phases)
    frame = frame or phantom_canonical_frame(heart)
    data = subject_from_meshes(mesh, frame, config, seed, es_phase=float(heart.es_phase),
                               subject_id=heart.subject_id, phases=phases)
    data.blood_volume_ml = np.asarray(heart.lv_volume_ml(phases), float).reshape(-1)
    return data


__all__ = ["SubjectData", "subject_from_meshes", "subject_from_labels", "subject_from_phantom",
           "phantom_canonical_frame", "label_sdf_mm"]
