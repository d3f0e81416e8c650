"""Scores of the atlas benchmark (:mod:`.atlas`): surface errors (chamfer, HD95 in mm), ES, LV volume-curve
(ml) and EF (percentage points) errors per setting and method, and correspondence across subjects against the
phantom's ring parameterisation."""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..atlas.evaluation import SurfaceParameterisation, lv_cavity_volume_ml
from ..atlas.timing import cyclic_phase_error
from ..data.mesh_sequence import MeshSequence
from ..metrics import directed_surface_distances
from .common import mean_std

SETTINGS = {"all": "all frames", "ed_es": "ED+ES", "ed": "ED alone"}
Mesh = Tuple[np.ndarray, np.ndarray]


def frames_of(mesh: MeshSequence) -> List[Mesh]:
    return [(mesh.vertices[i], mesh.faces) for i in range(mesh.n_frames)]


def surface_errors(meshes: Sequence[Mesh], truth: Sequence[Mesh], samples: int) -> np.ndarray:
    """``(t, 2)``: chamfer and HD95 (mm) per frame."""
    out = []
    for index, (mesh, true) in enumerate(zip(meshes, truth)):
        a = directed_surface_distances(mesh, true, samples=samples, seed=index)
        b = directed_surface_distances(true, mesh, samples=samples, seed=index + 7)
        out.append((0.5 * (a.mean() + b.mean()), max(np.percentile(a, 95), np.percentile(b, 95))))
    return np.asarray(out)


class Scores:
    """Per (setting, method): surface errors of the withheld frames, ES errors, volume and EF errors."""

    def __init__(self, samples: int, test_set: str = "") -> None:
        self.samples = samples
        self.test_set = test_set
        self.entries: Dict = {}

    def add(self, setting: str, method: str, meshes: Sequence[Mesh], subject: Dict,
            es_phase: Optional[float] = None) -> None:
        """``meshes``: ED first, then the subject's evaluation phases; ``es_phase``: the method's recovered
        ES phase (atlas rows), scored against the subject's true one."""
        all_errors = surface_errors(meshes, subject["truth"], self.samples)
        errors = all_errors[1:]
        curve = np.array([lv_cavity_volume_ml(v, f, subject["frame"]) for v, f in meshes])
        es = subject["es_index"]
        ef, truth_ef = (100.0 * (c[0] - c[es + 1]) / c[0] for c in (curve, subject["curve"]))
        entry = self.entries.setdefault((setting, method), {"err": [], "es": [], "vol": [], "ef": [], "ed": [],
                                                            "es_phase": []})
        if es_phase is not None:
            entry["es_phase"].append(cyclic_phase_error(es_phase, subject["es_phase"]))
        entry["ed"].append(all_errors[0, 0])
        withheld = [i for i, p in enumerate(subject["phases"]) if setting == "all" or p not in subject["observed"][setting]]
        entry["err"].append(errors[withheld])
        entry["es"].append(errors[es])
        entry["vol"].append(float(np.abs(curve - subject["curve"]).mean()))
        entry["ef"].append(float(abs(ef - truth_ef)))

    def rows(self) -> List[Dict]:
        rows = []
        for (setting, method), e in self.entries.items():
            errors, es = np.concatenate(e["err"]), np.stack(e["es"])
            rows.append({"test_set": self.test_set, "setting": SETTINGS[setting], "method": method, "chamfer_mm": mean_std(errors[:, 0]),
                         "hd95_mm": mean_std(errors[:, 1]), "ES_chamfer_mm": mean_std(es[:, 0]),
                         "ES_hd95_mm": mean_std(es[:, 1]), "volume_err_ml": mean_std(e["vol"]),
                         "EF_err_pct": mean_std(e["ef"]), "ED_chamfer_mm": mean_std(e["ed"]),
                         "ES_phase_err": mean_std(e["es_phase"]) if e["es_phase"] else None,
                         "chamfer_mean": float(errors[:, 0].mean()),
                         "hd95_mean": float(errors[:, 1].mean())})
        return rows


def cross_subject_rows(ed: Dict[str, List[np.ndarray]], truth: List[np.ndarray], faces: List[np.ndarray],
                       frames: List) -> List[Dict]:
    """Vertex i of subject B vs the true counterpart of vertex i of subject A (phantom ring coordinates),
    for the atlas and for 'nearest point in the canonical frame' (A's vertex moved to B by the canonical
    frames, snapped to B's true surface)."""
    atlas_err, nearest_err = [], []
    for a in range(len(truth)):
        locate = SurfaceParameterisation(truth[a], faces[a], 100000)
        for b in range(len(truth)):
            if a == b or faces[a].shape != faces[b].shape or not np.array_equal(faces[a], faces[b]):
                continue  # the ring parameterisation is ground truth only within one family
            counterpart = locate.transfer(ed["atlas"][a], truth[b])
            atlas_err.append(np.linalg.norm(ed["atlas"][b] - counterpart, axis=1).mean())
            moved = frames[b].to_ras(frames[a].to_canonical(ed["atlas"][a]))
            snapped = SurfaceParameterisation(truth[b], faces[b], 100000).nearest(moved)
            nearest_err.append(np.linalg.norm(snapped - counterpart, axis=1).mean())
    if not atlas_err:
        return []
    return [{"correspondence": "across subjects (ED), atlas: same vertex index", "error_mm": mean_std(atlas_err)},
            {"correspondence": "across subjects (ED), nearest point in canonical frame", "error_mm": mean_std(nearest_err)}]
