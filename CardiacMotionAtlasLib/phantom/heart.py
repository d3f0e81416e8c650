"""One synthetic 4D heart in RAS mm with exact ground truth at any (point, phase).

:class:`PhantomHeart` combines the ED shape (:mod:`.shape`), the motion law (:mod:`.motion`) and the
static surroundings (:mod:`.background`). Material coordinates are ED positions (phase 0 is the
identity). Every query is vectorised over points ``(..., 3)`` in RAS mm.
"""

from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

import numpy as np

from ..data.displacement_field import DisplacementField
from ..data.mesh_sequence import MeshSequence
from ..geometry.affine import apply_affine
from .background import background_tissue
from .motion import HeartMotion
from .parameters import SubjectParameters, sample_subject_parameters
from .shape import ATRIUM_HEIGHT_MM, RV_FREE_WALL_MM, HeartShape
from .surfaces import SURFACE_NAMES, material_surface
from .tissues import LABEL_OF_TISSUE, Tissue
from .volume_curve import ContractionCurve

NOT_HEART = 255
MYOCARDIAL_DENSITY_G_PER_ML = 1.05


def lv_frame_to_ras(params: SubjectParameters) -> np.ndarray:
    """4x4 matrix from the LV frame (x towards RV, z base->apex, mm) to RAS mm."""
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


def grid_points_ras(ijk_to_ras: np.ndarray, shape_zyx: Tuple[int, int, int]) -> np.ndarray:
    """RAS mm of every voxel centre of a grid, ``(z, y, x, 3)``."""
    nz, ny, nx = shape_zyx
    k, j, i = np.meshgrid(np.arange(nz, dtype=float), np.arange(ny, dtype=float), np.arange(nx, dtype=float),
                          indexing="ij")
    matrix = np.asarray(ijk_to_ras, float)
    return (i[..., None] * matrix[:3, 0] + j[..., None] * matrix[:3, 1] + k[..., None] * matrix[:3, 2]
            + matrix[:3, 3])


class PhantomHeart:
    """The analytic 4D heart of one subject (see module docstring); the ``ellipsoidal`` family."""

    family = "ellipsoidal"

    def __init__(self, params: SubjectParameters) -> None:
        self.params = params
        self.shape = HeartShape.from_parameters(params)
        self.curve = ContractionCurve.for_heart_rate(params.heart_rate_bpm, params.atrial_fraction)
        self.motion = HeartMotion(self.shape, self.curve, params.lv_ef, params.rv_ef, params.torsion_deg,
                                  params.long_axis_strain)
        self.local_to_ras = lv_frame_to_ras(params)
        self.ras_to_local = np.linalg.inv(self.local_to_ras)
        self._surface_cache: Dict[Tuple[str, int, int], Tuple[np.ndarray, np.ndarray]] = {}

    @classmethod
    def from_seed(cls, seed: int, index: int = 0, kind: Optional[str] = None) -> "PhantomHeart":
        return cls(sample_subject_parameters(seed, index, kind))

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

    def lv_extent_local(self) -> Tuple[float, float]:
        """(base, epicardial apex) positions (mm) along the LV frame's z axis at ED; base < apex."""
        return float(self.shape.z_base), float(self.shape.c_epi)

    def epicardial_ring_local(self, fraction_from_base: float, n: int = 72) -> np.ndarray:
        """Material epicardial points (LV frame, mm) at a level between the base (0) and the
        epicardial apex (1), ``(n, 3)``."""
        s = self.shape
        z = s.z_base + fraction_from_base * (s.c_epi - s.z_base)
        rho = s.a_epi * np.sqrt(max(1.0 - (z / s.c_epi) ** 2, 0.0))
        phi = np.arange(n) * 2 * np.pi / n
        return np.stack([rho * np.cos(phi), rho * np.sin(phi), np.full(n, z)], -1)

    def endocardial_ring_local(self, fraction_from_base: float, n: int = 72) -> np.ndarray:
        """Material endocardial points (LV frame, mm) between the base (0) and the endocardial apex (1)."""
        s = self.shape
        z = s.z_base + fraction_from_base * (s.c_endo - s.z_base)
        rho = s.a_endo * np.sqrt(max(1.0 - (z / s.c_endo) ** 2, 0.0))
        phi = np.arange(n) * 2 * np.pi / n
        return np.stack([rho * np.cos(phi), rho * np.sin(phi), np.full(n, z)], -1)

    def apex_local(self) -> np.ndarray:
        """Material epicardial apex (LV frame, mm), ``(3,)``."""
        return np.array([0.0, 0.0, self.shape.c_epi])

    def to_local(self, points_ras: np.ndarray) -> np.ndarray:
        return apply_affine(self.ras_to_local, points_ras)

    def to_ras(self, points_local: np.ndarray) -> np.ndarray:
        return apply_affine(self.local_to_ras, points_local)

    # ------------------------------------------------------------------ material tissue
    def material_tissue_local(self, material: np.ndarray) -> np.ndarray:
        """Heart tissue class of material points (LV frame), :data:`NOT_HEART` elsewhere."""
        s = self.shape
        x, y, z = material[..., 0], material[..., 1], material[..., 2]
        rho2 = x * x + y * y
        apical = z >= s.z_base
        inside_endo = rho2 / s.a_endo**2 + z * z / s.c_endo**2 <= 1.0
        inside_epi = rho2 / s.a_epi**2 + z * z / s.c_epi**2 <= 1.0
        out = np.full(material.shape[:-1], NOT_HEART, dtype=np.uint8)
        offset = material - self.motion.centre
        radius = np.linalg.norm(offset, axis=-1)
        directions = offset / np.maximum(radius, 1e-9)[..., None]
        r_epi = s.r_epi(directions)
        thickness = s.rv_thickness(directions, r_epi)
        wall = RV_FREE_WALL_MM * np.clip(thickness / 6.0, 0.0, 1.0)
        has_rv = apical & (thickness > 0.05) & (radius > r_epi)
        out[has_rv & (radius <= r_epi + thickness + wall)] = Tissue.RV_WALL
        out[has_rv & (radius < r_epi + thickness)] = Tissue.RV_BLOOD
        atrium = (~apical) & (
            rho2 / (0.85 * s.a_epi) ** 2 + ((z - s.z_base) / ATRIUM_HEIGHT_MM) ** 2 <= 1.0
        )
        out[atrium] = Tissue.ATRIAL_BLOOD
        out[apical & inside_epi] = Tissue.LV_MYOCARDIUM
        out[apical & inside_endo] = Tissue.LV_BLOOD
        return out

    # ------------------------------------------------------------------ spatial queries
    def _near_heart(self, points_local: np.ndarray) -> np.ndarray:
        """Points inside the cylinder (about the long axis) that holds all heart material at ED. The
        motion moves points towards the contraction centre, towards the apex along the axis (widening
        them by at most ``max_radial_expansion``) or rotates them about the axis, so the heart stays
        inside it at every phase."""
        s = self.shape
        radius = (s.a_epi + s.rv_thickness_max + RV_FREE_WALL_MM) * self.motion.max_radial_expansion + 2.0
        z = points_local[..., 2]
        rho2 = points_local[..., 0] ** 2 + points_local[..., 1] ** 2
        return (rho2 <= radius * radius) & (z >= s.z_base - ATRIUM_HEIGHT_MM - 2.0) & (z <= s.c_epi + 2.0)

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
        vertices = np.concatenate([self.surface("epicardium", 0.0)[0]], axis=0)
        lo = vertices.min(0) - margin_mm - self.shape.rv_thickness_max
        hi = vertices.max(0) + margin_mm + self.shape.rv_thickness_max
        n = np.ceil((hi - lo) / spacing_mm).astype(int) + 1
        matrix = np.diag([spacing_mm, spacing_mm, spacing_mm, 1.0])
        matrix[:3, 3] = lo
        return matrix, (int(n[2]), int(n[1]), int(n[0]))

    # ------------------------------------------------------------------ surfaces and meshes
    def material_surface_local(self, name: str, n_rings: int = 40, n_around: int = 80):
        key = (name, n_rings, n_around)
        if key not in self._surface_cache:
            self._surface_cache[key] = material_surface(self.shape, name, n_rings, n_around)
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
    def lv_volume_ml(self, phase) -> np.ndarray:
        """Exact LV blood-pool volume (ml) at ``phase`` (scalar or array)."""
        return self.shape.lv_cavity_volume_ml() * (1.0 - self.params.lv_ef * self.curve(phase))

    def rv_volume_ml(self, phase) -> np.ndarray:
        """RV blood-pool volume (ml) at ``phase`` (exact up to the ray quadrature of the ED volume)."""
        return self.rv_edv_ml * (1.0 - self.params.rv_ef * self.curve(phase))

    @property
    def rv_edv_ml(self) -> float:
        if not hasattr(self, "_rv_edv"):
            self._rv_edv = self.shape.rv_volume_ml()
        return self._rv_edv

    def clinical_indices(self) -> Dict[str, float]:
        """Ground-truth indices: volumes ml, EF %, mass g (myocardium x 1.05 g/ml)."""
        lvedv = float(self.lv_volume_ml(0.0))
        lvesv = float(self.lv_volume_ml(self.es_phase))
        rvedv = float(self.rv_volume_ml(0.0))
        rvesv = float(self.rv_volume_ml(self.es_phase))
        return {
            "LVEDV": lvedv, "LVESV": lvesv, "LVSV": lvedv - lvesv, "LVEF": 100.0 * (lvedv - lvesv) / lvedv,
            "RVEDV": rvedv, "RVESV": rvesv, "RVSV": rvedv - rvesv, "RVEF": 100.0 * (rvedv - rvesv) / rvedv,
            "LVM": self.shape.myocardium_volume_ml() * MYOCARDIAL_DENSITY_G_PER_ML,
        }


__all__ = ["PhantomHeart", "grid_points_ras", "lv_frame_to_ras", "NOT_HEART", "MYOCARDIAL_DENSITY_G_PER_ML", "SURFACE_NAMES"]
