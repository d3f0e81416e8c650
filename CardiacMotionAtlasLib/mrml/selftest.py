"""End-to-end checks of the Logic on a scene, shared by the pytest suite (plain Python + ``slicer-core``)
and the module's ``ScriptedLoadableModuleTest`` inside a real Slicer: both call these functions, so the
Slicer self-test checks exactly what CI checks. Each function raises ``AssertionError`` with a message on
failure and returns what it built.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def check_phantom_subject(scene: Any) -> Any:
    """Load a tiny phantom subject; its cine voxels, mesh frames and indices equal the library's."""
    from ..phantom.cmr import CMRConfig, simulate_cine
    from ..phantom.heart import PhantomHeart
    from .cine import cine_study_from_browser
    from .logic import CardiacMotionAtlasLogic
    from .models import sequence_node_to_mesh_sequence
    from .tables import table_node_to_indices

    nodes = CardiacMotionAtlasLogic().load_phantom_subject(scene, seed=0, index=0, tiny=True)
    heart = PhantomHeart.from_seed(0, 0)
    expected = simulate_cine(heart, CMRConfig.tiny(), seed=0).study
    study = cine_study_from_browser(nodes.browser)
    _check(len(study.slices) == len(expected.slices), "slice count differs from the simulator's")
    by_key = {(s.view, s.slice_index): s for s in study.slices}
    for reference in expected.slices:
        key = (reference.view, reference.slice_index)
        mine = by_key.get(key)
        _check(mine is not None, f"slice {key} missing from the scene")
        _check(np.array_equal(mine.image.array, reference.image.array), f"slice {key}: voxels differ")
        _check(np.allclose(mine.image.ijk_to_ras, reference.image.ijk_to_ras, atol=1e-9),
               f"slice {key}: IJK->RAS differs")
    mesh = sequence_node_to_mesh_sequence(nodes.mesh_sequence)
    truth, _ = heart.surface("myocardium", mesh.phases[1], n_rings=16, n_around=32)
    _check(np.allclose(mesh.vertices[1], truth, atol=1e-6), "mesh frame 1 differs from the phantom surface")
    _check(table_node_to_indices(nodes.indices_table) == [heart.clinical_indices()], "indices table differs")
    return nodes


def train_tiny_models(folder: Path, nisf_steps: int = 60) -> Dict[str, Path]:
    """Tiny atlas and NISF++ checkpoints trained in seconds on phantom subjects (for the method checks;
    ``nisf_steps`` >= 200 gives labels good enough to fit the atlas to)."""
    import torch

    from ..atlas.config import AtlasConfig
    from ..atlas.sampling import subject_from_phantom
    from ..atlas.train import train_atlas
    from ..nisf import NISFConfig, train_nisf
    from ..phantom.cmr import CMRConfig, simulate_cine
    from ..phantom.heart import PhantomHeart

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        atlas_config = AtlasConfig.tiny()
        subjects = [subject_from_phantom(PhantomHeart.from_seed(0, i), np.arange(4) / 4, atlas_config.sampling, seed=i)
                    for i in range(3)]
        train_atlas(subjects, atlas_config, device="cpu", checkpoint_path=folder / "atlas.pt")
        studies = [simulate_cine(PhantomHeart.from_seed(0, i), CMRConfig.tiny(), seed=i).study for i in (1, 2)]
        nisf_config = NISFConfig.tiny()
        nisf_config.steps = nisf_steps
        train_nisf(studies, nisf_config, checkpoint_path=folder / "nisf.pt", device="cpu")
    finally:
        torch.set_num_threads(threads)
    return {"atlas": folder / "atlas.pt", "nisf": folder / "nisf.pt"}


def check_method_runs(scene: Any, models: Dict[str, Path], work_dir: Path,
                      python_executable: Optional[str] = None) -> Dict[str, Any]:
    """Atlas fit (ED alone) from a label sequence node and NISF++ reconstruction of a loaded phantom study,
    each in a background CLI process; checks the loaded nodes against the files the CLI wrote."""
    from ..data.image_sequence import ImageSequence
    from ..io.meshes import read_mesh_sequence
    from ..io.nifti import read_nifti
    from ..phantom.heart import PhantomHeart
    from .logic import CardiacMotionAtlasLogic
    from .models import sequence_node_to_mesh_sequence
    from .volumes import image_sequence_to_sequence_node, sequence_node_to_image_sequence

    logic = CardiacMotionAtlasLogic(python_executable=python_executable or sys.executable, force_cpu=True)
    heart = PhantomHeart.from_seed(0, 0)
    matrix, shape = heart.bounding_grid(3.0)
    phases = np.arange(4) / 4
    labels = ImageSequence(heart.label_volumes(matrix, shape, phases), matrix, phases, name="labels")
    node = image_sequence_to_sequence_node(scene, labels, "self-test labels", labels=True)
    atlas = logic.run_atlas_fit(scene, models["atlas"], node, "ed", steps=20, phases=5, resolution=24, wait=True,
                                work_dir=Path(work_dir) / "atlas")
    _check(atlas.ok, f"atlas fit failed: {atlas.error_message()}")
    mesh = sequence_node_to_mesh_sequence(atlas.nodes["mesh_sequence"])
    on_disk = read_mesh_sequence(atlas.output_dir / "meshes")
    _check(mesh.n_frames == 5 and np.allclose(mesh.vertices, on_disk.vertices, atol=1e-4),
           "atlas meshes in the scene differ from the CLI's files")
    subject = logic.load_phantom_subject(scene, seed=0, index=0, tiny=True)
    nisf = logic.run_nisf_reconstruction(scene, models["nisf"], subject.browser, spacing_mm=4.0, phases=3, steps=10,
                                         wait=True, work_dir=Path(work_dir) / "nisf")
    _check(nisf.ok, f"NISF++ reconstruction failed: {nisf.error_message()}")
    written = read_nifti(nisf.output_dir / "labels.nii.gz", labels=True)
    loaded = sequence_node_to_image_sequence(nisf.nodes["label_sequence"])
    _check(np.array_equal(loaded.array, written.array) and np.allclose(loaded.ijk_to_ras, written.ijk_to_ras,
                                                                        atol=1e-6),
           "NISF++ labels in the scene differ from the CLI's file")
    return {"atlas": atlas, "nisf": nisf}


__all__ = ["check_phantom_subject", "check_method_runs", "train_tiny_models"]
