"""rebuild_model: the one checkpoint -> model path every method loader uses (kind, completeness, config,
build, state, device, freezing), with errors naming the file."""

import dataclasses

import pytest
import torch

from CardiacMotionAtlasLib.errors import CheckpointError
from CardiacMotionAtlasLib.training import (IncompleteCheckpointWarning, allow_incomplete_checkpoints, rebuild_model,
                                            save_checkpoint)


@dataclasses.dataclass
class NetConfig:
    hidden: int = 4

    @classmethod
    def tiny(cls):
        return cls(hidden=3)


def _net(config: NetConfig) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(2, config.hidden), torch.nn.Linear(config.hidden, 1))


def _write(path, config=NetConfig(), *, kind="net", step=5, total_steps=None, seed=3):
    torch.manual_seed(seed)
    net = _net(config)
    save_checkpoint(path, model_state=net.state_dict(), config=config, step=step, kind=kind,
                    total_steps=total_steps, extra={"note": "kept"})
    return net


def _rebuild(path, **options):
    return rebuild_model(path, kind="net", config_cls=NetConfig, build=lambda config, _ckpt: _net(config),
                         device="cpu", **options)


def test_rebuild_restores_weights_config_and_extra(tmp_path):
    original = _write(tmp_path / "net.pt", NetConfig(hidden=5))
    rebuilt = _rebuild(tmp_path / "net.pt")
    assert rebuilt.config == NetConfig(hidden=5)
    assert rebuilt.checkpoint.extra == {"note": "kept"} and rebuilt.checkpoint.step == 5
    assert rebuilt.device == torch.device("cpu")
    for (name, value), (_, expected) in zip(rebuilt.module.state_dict().items(), original.state_dict().items()):
        assert torch.equal(value, expected), name
    assert not rebuilt.module.training
    assert not any(p.requires_grad for p in rebuilt.module.parameters())
    unfrozen = _rebuild(tmp_path / "net.pt", freeze=False)
    assert all(p.requires_grad for p in unfrozen.module.parameters())


def test_rebuild_refuses_other_kind_bad_config_and_misfit_state(tmp_path):
    _write(tmp_path / "other.pt", kind="atlas")
    with pytest.raises(CheckpointError, match=r"other.pt: checkpoint of kind 'atlas', expected 'net'"):
        _rebuild(tmp_path / "other.pt")
    _write(tmp_path / "net.pt", NetConfig(hidden=5))
    with pytest.raises(CheckpointError, match=r"net.pt: model state does not fit its config"):
        rebuild_model(tmp_path / "net.pt", kind="net", config_cls=NetConfig, device="cpu",
                      build=lambda config, _ckpt: _net(NetConfig(hidden=7)))

    @dataclasses.dataclass
    class Narrower:
        width: int = 1

    with pytest.raises(CheckpointError, match=r"net.pt: invalid net config: .*unknown key"):
        rebuild_model(tmp_path / "net.pt", kind="net", config_cls=Narrower, device="cpu",
                      build=lambda config, _ckpt: _net(NetConfig()))


def test_rebuild_runs_the_state_check_before_loading(tmp_path):
    _write(tmp_path / "net.pt")
    seen = []

    def check(checkpoint):
        seen.append(sorted(checkpoint.model_state))
        raise CheckpointError(checkpoint.path, "an older layout")

    with pytest.raises(CheckpointError, match="net.pt: an older layout"):
        _rebuild(tmp_path / "net.pt", check_state=check)
    assert seen == [["0.bias", "0.weight", "1.bias", "1.weight"]]


def test_rebuild_refuses_incomplete_unless_allowed(tmp_path):
    _write(tmp_path / "net.pt", step=2, total_steps=10)
    with pytest.raises(CheckpointError, match=r"net.pt: incomplete model: .*step 2 of 10"):
        _rebuild(tmp_path / "net.pt")
    with pytest.raises(CheckpointError, match="incomplete model"):
        _rebuild(tmp_path / "net.pt", allow_incomplete=False)
    assert _rebuild(tmp_path / "net.pt", allow_incomplete=True).checkpoint.step == 2
    with allow_incomplete_checkpoints(), pytest.warns(IncompleteCheckpointWarning, match="step 2 of 10"):
        assert not _rebuild(tmp_path / "net.pt").checkpoint.complete
