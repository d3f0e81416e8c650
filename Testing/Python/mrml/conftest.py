"""Fixtures of the MRML bridge tests: a real plain-Python MRML scene (slicer-core, no mocks) built once
per test session with the module logics attached, cleared before each test, plus tiny phantoms."""

from __future__ import annotations

import pytest

from mrml_helpers import slicer_core_missing_reason


@pytest.fixture(scope="session")
def mrml_app():
    """A :class:`~CardiacMotionAtlasLib.mrml.scene.StandaloneScene`: vtkMRMLScene + vtkSlicerApplicationLogic
    (default colour tables) + Sequences, Segmentations, Transforms, Volumes, Models, Tables, Plots and
    Subject hierarchy logics + cache and data I/O managers (.mrb). ``slicer.mrmlScene`` points to it
    while the session runs, as inside Slicer."""
    reason = slicer_core_missing_reason()
    if reason is not None:
        pytest.skip(reason)
    import slicer

    from CardiacMotionAtlasLib.mrml.scene import create_standalone_scene

    app = create_standalone_scene()
    previous = getattr(slicer, "mrmlScene", None)
    slicer.mrmlScene = app.scene
    yield app
    if previous is None:
        del slicer.mrmlScene
    else:
        slicer.mrmlScene = previous
    app.close()


@pytest.fixture
def scene(mrml_app):
    """The session scene, emptied (singletons and default colour tables stay) before each test."""
    mrml_app.scene.Clear(False)
    yield mrml_app.scene
    mrml_app.scene.Clear(False)


@pytest.fixture
def new_standalone_scene(mrml_app):
    """A factory of further independent scenes (e.g. to reopen a saved .mrb); closed after the test."""
    from CardiacMotionAtlasLib.mrml.scene import create_standalone_scene

    made = []

    def make():
        made.append(create_standalone_scene())
        return made[-1]

    yield make
    for app in made:
        app.close()


@pytest.fixture(scope="session")
def phantom_heart():
    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart

    return PhantomHeart.from_seed(0, 0)


@pytest.fixture(scope="session")
def tiny_simulation(phantom_heart):
    from CardiacMotionAtlasLib.phantom.cmr import CMRConfig, simulate_cine

    return simulate_cine(phantom_heart, CMRConfig.tiny())


@pytest.fixture(scope="session")
def tiny_study(tiny_simulation):
    return tiny_simulation.study


@pytest.fixture(scope="session")
def coarse_grid(phantom_heart):
    """(IJK->RAS, (z, y, x) shape) of an isotropic 5 mm RAS grid around the phantom heart."""
    return phantom_heart.bounding_grid(5.0)


@pytest.fixture(scope="session")
def tiny_motion_model(tmp_path_factory):
    """A CardioMorphNet checkpoint trained in seconds on two tiny phantom subjects (full grid, no record
    of a grid reduction)."""
    import torch

    from CardiacMotionAtlasLib.motion import MotionConfig, sequence_from_study, train_motion
    from CardiacMotionAtlasLib.phantom.cmr import CMRConfig, simulate_cine
    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart

    torch.set_num_threads(1)
    sequences = [sequence_from_study(simulate_cine(PhantomHeart.from_seed(0, i), CMRConfig.tiny(), seed=i).study,
                                     ed_es_only=True) for i in (1, 2)]
    path = tmp_path_factory.mktemp("motion") / "motion.pt"
    train_motion(sequences, MotionConfig.tiny().with_changes(seg_steps=6, steps=6), checkpoint_path=path, device="cpu")
    return path
