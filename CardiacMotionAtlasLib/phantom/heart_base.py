"""What every phantom heart answers, whatever its family: exact labels, trajectories, flows, meshes and
volumes at any (RAS point, phase), given a few family-specific pieces.

A family implements, in its LV frame (mm; +z base -> apex, +x towards the RV): the motion law
(``self.motion.forward``/``inverse`` between material (ED) and spatial points, ``self.motion.centre``),
the tissue class of material points (``material_tissue_local``), a mask of points that can hold heart
tissue at some phase (``_near_heart``), its closed material surfaces (``_build_surface``), exact volumes
(``lv_volume_ml``, ``rv_volume_ml``, ``myocardium_volume_ml``) and the points that bound it
(``_extent_points_local``). :class:`AnalyticHeart` turns these into every query in RAS mm, vectorised
over points ``(..., 3)``.
"""

from __future__ import annotations

from typing import Dict, Iterable, Tuple

import numpy as np

from ..data.displacement_field import DisplacementField
from ..data.mesh_sequence import MeshSequence
from ..geometry.affine import apply_affine
from .background import background_tissue
from .tissues import LABEL_OF_TISSUE

NOT_HEART = 255
MYOCARDIAL_DENSITY_G_PER_ML = 1.05


def grid_points_ras(ijk_to_ras: np.ndarray, shape_zyx: Tuple[int, int, int]) -> np.ndarray:
    """RAS mm of every voxel centre of a grid, ``(z, y, x, 3)``."""
    nz, ny, nx = shape_zyx
    k, j, i = np.meshgrid(np.arange(nz, dtype=float), np.arange(ny, dtype=float), np.arange(nx, dtype=float),
                          indexing="ij")
    matrix = np.asarray(ijk_to_ras, float)
    return (i[..., None] * matrix[:3, 0] + j[..., None] * matrix[:3, 1] + k[..., None] * matrix[:3, 2]
            + matrix[:3, 3])


def lv_frame_to_ras(params) -> np.ndarray:
    """4x4 matrix from the LV frame (x towards RV, z base->apex, mm) to RAS mm, from a family's parameters
    (``lv_axis_ras``, ``rv_direction_ras`` orthogonalised against the axis, ``heart_centre_ras``)."""
    axis = np.asarray(params.lv_axis_ras, float)
    axis /= np.linalg.norm(axis)
    towards_rv = np.asarray(params.rv_direction_ras, float)
    towards_rv = towards_rv - towards_rv.dot(axis) * axis
    towards_rv /= np.linalg.norm(towards_rv)
    matrix = np.eye(4)
    matrix[:3, 0] = towards_rv
    matrix[:3, 1] = np.cross(axis, towards_rv)
    matrix[:3, 2] = axis
    matrix[:3, 3] = params.heart_centre_ras
    return matrix


class AnalyticHeart:
    """Family-independent queries of a phantom heart (see module docstring). A subclass sets ``params``
    (with ``subject_id``, ``kind``, ``seed``, ``heart_rate_bpm``, ``blood_hu``, ``to_dict()``), ``curve``
    (with ``es_phase``), ``motion``, ``local_to_ras``/``ras_to_local`` and ``_surface_cache = {}``."""

    family = "abstract"

    # ------------------------------------------------------------------ family hooks
    def material_tissue_local(self, material: np.ndarray) -> np.ndarray:
        """Heart tissue class of material points (LV frame, mm), :data:`NOT_HEART` elsewhere."""
        raise NotImplementedError

    def _near_heart(self, points_local: np.ndarray) -> np.ndarray:
        """Mask of spatial points (LV frame) that may hold heart tissue at some phase."""
        raise NotImplementedError

    def _build_surface(self, name: str, n_rings: int, n_around: int) -> Tuple[np.ndarray, np.ndarray]:
        """Closed material surface at ED (LV frame): (vertices, faces), faces counter-clockwise from outside."""
        raise NotImplementedError

    def _extent_points_local(self) -> np.ndarray:
        """Material points (LV frame) whose bounding box holds the LV and RV at every phase."""
        raise NotImplementedError

    def lv_volume_ml(self, phase) -> np.ndarray:
        """Exact LV blood-pool volume (ml) at ``phase`` (scalar or array)."""
        raise NotImplementedError

    def rv_volume_ml(self, phase) -> np.ndarray:
        """RV blood-pool volume (ml) at ``phase``."""
        raise NotImplementedError

    def myocardium_volume_ml(self) -> float:
        """LV myocardial volume (ml), constant over the cycle."""
        raise NotImplementedError

    # ------------------------------------------------------------------ frames
    @property
    def subject_id(self) -> str:
        return self.params.subject_id

    @property
    def cycle_length_s(self) -> float:
        return 60.0 / self.params.heart_rate_bpm

    @property
    def es_phase(self) -> float:
        return self.curve.es_phase

    @property
    def centre_ras(self) -> np.ndarray:
        """RAS mm of the contraction centre (on the LV long axis, mid-cavity)."""
        return apply_affine(self.local_to_ras, self.motion.centre)

    @property
    def long_axis_ras(self) -> np.ndarray:
        """Unit base->apex direction in RAS."""
        return self.local_to_ras[:3, 2].copy()

    def set_pose(self, local_to_ras: np.ndarray) -> None:
        """Place the heart in the scanner: a new rigid LV-frame -> RAS matrix (4x4, mm). The anatomy and
        the motion (LV frame) are unchanged; the parameters record the new axis, RV direction and centre."""
        matrix = np.asarray(local_to_ras, float)
        rotation = matrix[:3, :3]
        if not np.allclose(rotation.T @ rotation, np.eye(3), atol=1e-6) or np.linalg.det(rotation) <= 0:
            raise ValueError("set_pose needs a rigid (rotation + translation) matrix")
        self.local_to_ras = matrix.copy()
        self.ras_to_local = np.linalg.inv(self.local_to_ras)
        self.params.lv_axis_ras = tuple(float(v) for v in rotation[:, 2])
        self.params.rv_direction_ras = tuple(float(v) for v in rotation[:, 0])
        self.params.heart_centre_ras = tuple(float(v) for v in matrix[:3, 3])

    def to_local(self, points_ras: np.ndarray) -> np.ndarray:
        return apply_affine(self.ras_to_local, points_ras)

    def to_ras(self, points_local: np.ndarray) -> np.ndarray:
        return apply_affine(self.local_to_ras, points_local)

    # ------------------------------------------------------------------ spatial queries
    def tissue(self, points_ras: np.ndarray, phase: float) -> np.ndarray:
        """Tissue class (:class:`Tissue`) at RAS points at ``phase``: moving heart over static surroundings."""
        points_ras = np.asarray(points_ras, float)
        out = background_tissue(points_ras)
        near = self.near_heart_ras(points_ras)
        if np.any(near):
            out[near] = self.tissue_near(points_ras[near], phase, out[near])
        return out

    # split form of :meth:`tissue` for simulators that reuse the static part across frames
    tissue_background = staticmethod(background_tissue)

    def near_heart_ras(self, points_ras: np.ndarray) -> np.ndarray:
        """Mask of RAS points that may hold heart tissue at some phase."""
        return self._near_heart(self.to_local(points_ras))

    def tissue_near(self, points_ras: np.ndarray, phase: float, background: np.ndarray) -> np.ndarray:
        """Tissue at points near the heart, given their static background tissue."""
        heart = self.material_tissue_local(self.motion.inverse(self.to_local(points_ras), phase))
        return np.where(heart != NOT_HEART, heart, background).astype(np.uint8)

    def labels(self, points_ras: np.ndarray, phase: float) -> np.ndarray:
        """Segmentation labels (0 bg, 1 LV BP, 2 LV myo, 3 RV BP) at RAS points at ``phase``."""
        return LABEL_OF_TISSUE[self.tissue(points_ras, phase)]

    def positions(self, material_ras: np.ndarray, phase: float) -> np.ndarray:
        """RAS positions at ``phase`` of material points given by their ED RAS positions."""
        return self.to_ras(self.motion.forward(self.to_local(material_ras), phase))

    def material_positions(self, points_ras: np.ndarray, phase: float) -> np.ndarray:
        """ED RAS position of the heart material found at RAS ``points`` at ``phase``."""
        return self.to_ras(self.motion.inverse(self.to_local(points_ras), phase))

    def displacement_field(self, ijk_to_ras: np.ndarray, shape_zyx: Tuple[int, int, int],
                           source_phase: float, target_phase: float,
                           heart_only: bool = True) -> DisplacementField:
        """Exact displacement field on a grid: the material at RAS ``x`` at ``source_phase`` is at
        ``x + u(x)`` at ``target_phase``. With ``heart_only`` the static surroundings get u = 0
        (the heart slides inside the pericardium); otherwise the motion law is applied everywhere."""
        nz, ny, nx = shape_zyx
        points = grid_points_ras(ijk_to_ras, shape_zyx).reshape(-1, 3)
        local = self.to_local(points)
        active = self._near_heart(local) if heart_only else np.ones(len(local), bool)
        displacement_local = np.zeros_like(local)
        material = self.motion.inverse(local[active], source_phase)
        moved = self.motion.forward(material, target_phase) - local[active]
        if heart_only:
            moved[self.material_tissue_local(material) == NOT_HEART] = 0.0
        displacement_local[active] = moved
        displacement = displacement_local @ self.local_to_ras[:3, :3].T
        vectors = displacement.reshape(nz, ny, nx, 3).transpose(3, 0, 1, 2)
        return DisplacementField(vectors, ijk_to_ras, source_phase=source_phase,
                                 target_phase=target_phase, name=f"{self.subject_id}_gt_flow")

    def label_volume(self, ijk_to_ras: np.ndarray, shape_zyx: Tuple[int, int, int], phase: float) -> np.ndarray:
        """Label map ``(z, y, x)`` sampled at voxel centres of the grid."""
        return self.label_volumes(ijk_to_ras, shape_zyx, [phase])[0]

    def label_volumes(self, ijk_to_ras: np.ndarray, shape_zyx: Tuple[int, int, int],
                      phases: Iterable[float]) -> np.ndarray:
        """Label maps ``(t, z, y, x)`` at voxel centres for several phases (static part computed once)."""
        points = grid_points_ras(ijk_to_ras, shape_zyx).reshape(-1, 3)
        background = background_tissue(points)
        near = self.near_heart_ras(points)
        near_points, near_background = points[near], background[near]
        out = []
        tissue = background.copy()
        for phase in phases:
            tissue[near] = self.tissue_near(near_points, phase, near_background)
            out.append(LABEL_OF_TISSUE[tissue].reshape(shape_zyx))
        return np.stack(out)

    def bounding_grid(self, spacing_mm: float, margin_mm: float = 10.0) -> Tuple[np.ndarray, Tuple[int, int, int]]:
        """An axis-aligned RAS grid (IJK->RAS, (z, y, x) shape) covering the LV and RV at every phase."""
        vertices = self.to_ras(self._extent_points_local())
        lo = vertices.min(0) - margin_mm
        hi = vertices.max(0) + margin_mm
        n = np.ceil((hi - lo) / spacing_mm).astype(int) + 1
        matrix = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
        matrix[:3, 3] = lo
        return matrix, (int(n[2]), int(n[1]), int(n[0]))

    # ------------------------------------------------------------------ surfaces and meshes
    def material_surface_local(self, name: str, n_rings: int = 40, n_around: int = 80):
        """Closed material surface ``name`` at ED in the LV frame (cached): (vertices, faces)."""
        key = (name, n_rings, n_around)
        if key not in self._surface_cache:
            self._surface_cache[key] = self._build_surface(name, n_rings, n_around)
        return self._surface_cache[key]

    def surface(self, name: str, phase: float, n_rings: int = 40, n_around: int = 80) -> Tuple[np.ndarray, np.ndarray]:
        """Closed surface ``name`` (``myocardium``, ``lv_cavity``, ``epicardium``) at ``phase``:
        (RAS vertices ``(n, 3)``, faces ``(m, 3)``); vertex i is the same material point at every phase."""
        vertices, faces = self.material_surface_local(name, n_rings, n_around)
        return self.to_ras(self.motion.forward(vertices, phase)), faces

    def mesh_sequence(self, name: str, phases: Iterable[float], n_rings: int = 40,
                      n_around: int = 80) -> MeshSequence:
        """Surface ``name`` over ``phases`` with shared faces, plus per-vertex displacement magnitude
        from ED (mm) as point data ``displacement_mm``."""
        phases = np.asarray(list(phases), float)
        vertices, faces = self.material_surface_local(name, n_rings, n_around)
        frames = np.stack([self.to_ras(self.motion.forward(vertices, t)) for t in phases])
        magnitude = np.linalg.norm(frames - self.to_ras(vertices)[None], axis=-1)
        return MeshSequence(frames, faces, phases, name=f"{self.subject_id}_{name}",
                            point_data={"displacement_mm": magnitude})

    def myocardium_sdf(self, points_ras: np.ndarray, phase: float, n_rings: int = 64,
                       n_around: int = 128) -> np.ndarray:
        """Signed distance (mm, negative inside) to the LV myocardium surface at ``phase``."""
        from ..metrics.surface import point_to_surface_distance

        vertices, faces = self.surface("myocardium", phase, n_rings, n_around)
        points = np.asarray(points_ras, float)
        flat = point_to_surface_distance(points.reshape(-1, 3), vertices, faces, signed=True)
        return flat.reshape(points.shape[:-1])

    # ------------------------------------------------------------------ exact volumes and indices
    @property
    def rv_edv_ml(self) -> float:
        """ED RV blood-pool volume (ml)."""
        return float(self.rv_volume_ml(0.0))

    def clinical_indices(self) -> Dict[str, float]:
        """Ground-truth indices: volumes ml, EF %, mass g (myocardium x 1.05 g/ml)."""
        lvedv = float(self.lv_volume_ml(0.0))
        lvesv = float(self.lv_volume_ml(self.es_phase))
        rvedv = float(self.rv_volume_ml(0.0))
        rvesv = float(self.rv_volume_ml(self.es_phase))
        return {
            "LVEDV": lvedv, "LVESV": lvesv, "LVSV": lvedv - lvesv, "LVEF": 100.0 * (lvedv - lvesv) / lvedv,
            "RVEDV": rvedv, "RVESV": rvesv, "RVSV": rvedv - rvesv, "RVEF": 100.0 * (rvedv - rvesv) / rvedv,
            "LVM": self.myocardium_volume_ml() * MYOCARDIAL_DENSITY_G_PER_ML,
        }


__all__ = ["AnalyticHeart", "lv_frame_to_ras", "MYOCARDIAL_DENSITY_G_PER_ML", "NOT_HEART", "grid_points_ras"]
