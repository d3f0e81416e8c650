"""The method loaders share one style: ``load_x(path, device="auto", *, allow_incomplete=None)``, all through
training.rebuild_model (a half-trained checkpoint is refused unless allowed; weights come back exactly)."""

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.atlas import AtlasConfig, load_atlas
from CardiacMotionAtlasLib.atlas.frame import CanonicalFrame
from CardiacMotionAtlasLib.atlas.model import NeuralDiffeomorphicAtlas
from CardiacMotionAtlasLib.errors import CheckpointError
from CardiacMotionAtlasLib.motion.config import MotionConfig
from CardiacMotionAtlasLib.motion.model import CardioMorphNet
from CardiacMotionAtlasLib.motion.train import load_motion
from CardiacMotionAtlasLib.synthesis.config import SynthConfig
from CardiacMotionAtlasLib.synthesis.cvae import SynthesisModel
from CardiacMotionAtlasLib.synthesis.train import load_synthesis
from CardiacMotionAtlasLib.training import save_checkpoint


def _atlas_case():
    config = AtlasConfig.tiny()
    frame = CanonicalFrame(np.array([1.0, 2.0, 3.0]), np.eye(3), 40.0)
    extra = {"subject_ids": ["a", "b"], "frames": [frame.to_dict(), frame.to_dict()], "es_phases": [0.3, None],
             "shape_motion_prior": None}
    return "atlas", config, NeuralDiffeomorphicAtlas(config, 2), extra, lambda atlas: atlas.module


CASES = {
    "atlas": (_atlas_case, load_atlas),
    "motion": (lambda: ("cardiomorphnet", MotionConfig.tiny(), CardioMorphNet(MotionConfig.tiny()), {},
                        lambda trained: trained.model), load_motion),
    "synthesis": (lambda: ("ct_cvae", SynthConfig.tiny(), SynthesisModel(SynthConfig.tiny()), {},
                           lambda trained: trained.model), load_synthesis),
}


@pytest.mark.parametrize("method", sorted(CASES))
def test_loader_refuses_incomplete_and_restores_weights(tmp_path, method):
    make, loader = CASES[method]
    torch.manual_seed(0)
    kind, config, module, extra, module_of = make()
    path = tmp_path / f"{method}.pt"
    save_checkpoint(path, model_state=module.state_dict(), config=config, step=3, total_steps=9, kind=kind,
                    extra=extra)
    with pytest.raises(CheckpointError, match=rf"{method}.pt: incomplete model: .*step 3 of 9"):
        loader(path, "cpu")
    loaded = loader(path, device="cpu", allow_incomplete=True)
    state = module_of(loaded).state_dict()
    assert state.keys() == module.state_dict().keys()
    assert all(torch.equal(state[name], value) for name, value in module.state_dict().items())
    assert not module_of(loaded).training
    save_checkpoint(tmp_path / "other.pt", model_state={}, config={}, step=1, kind="other")
    with pytest.raises(CheckpointError, match=rf"other.pt: checkpoint of kind 'other', expected '{kind}'"):
        loader(tmp_path / "other.pt", "cpu", allow_incomplete=True)
