"""Checkpoints: round trip, weights_only safety, clear errors naming the path, atomic writes."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.errors import CheckpointError
from CardiacMotionAtlasLib.training import (
    FORMAT_VERSION,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from CardiacMotionAtlasLib.training.checkpoint import FORMAT_MAGIC


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.randn(4, 3)).pow(2).mean().backward()
    optimizer.step()
    return model, optimizer


def _save(path, **overrides):
    model, optimizer = _model_and_optimizer()
    kwargs = dict(
        model_state=model.state_dict(),
        optimizer_state=optimizer.state_dict(),
        config={"lr": 0.01, "hidden": [8], "name": "tiny", "nested": {"k": None}},
        step=5,
        extra={"best_loss": 0.25},
        kind="atlas",
    )
    kwargs.update(overrides)
    return save_checkpoint(path, **kwargs), model, optimizer


def _files(folder: Path):
    return sorted(p.name for p in folder.iterdir())


def test_round_trip_with_weights_only(tmp_path):
    path, model, optimizer = _save(tmp_path / "run" / "atlas.pt")
    assert path == tmp_path / "run" / "atlas.pt"
    raw = torch.load(path, weights_only=True)  # the file itself is weights_only-loadable
    assert raw["format"] == FORMAT_MAGIC and raw["format_version"] == FORMAT_VERSION

    ckpt = load_checkpoint(path, expected_kind="atlas")
    assert (ckpt.kind, ckpt.step, ckpt.path) == ("atlas", 5, path)
    assert ckpt.config == {"lr": 0.01, "hidden": [8], "name": "tiny", "nested": {"k": None}}
    assert ckpt.extra == {"best_loss": 0.25}
    for name, tensor in model.state_dict().items():
        assert torch.equal(ckpt.model_state[name], tensor)
    other = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    fresh = torch.optim.Adam(other.parameters())
    fresh.load_state_dict(ckpt.optimizer_state)
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert len(ckpt.rng_state) == 1 and ckpt.library_version
    assert _files(path.parent) == ["atlas.pt"]  # no temporary file left behind


def test_saved_rng_state_restores_the_draws(tmp_path):
    torch.manual_seed(11)
    np.random.seed(11)
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3))
    path, _, _ = _save(tmp_path / "c.pt", rng_state=state)
    restore_rng_state(load_checkpoint(path).rng_state[0])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="nope.pt: no such checkpoint file") as info:
        load_checkpoint(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize("keep", [0, 10, 300, 0.5, -20])
def test_truncated_file_raises_checkpoint_error(tmp_path, keep):
    path, _, _ = _save(tmp_path / "full.pt")
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else (len(data) + keep if keep < 0 else keep)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match="broken.pt: .*(truncated|corrupt)"):
        load_checkpoint(broken)


def test_corrupt_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "garbage.pt"
    path.write_bytes(b"definitely not a checkpoint\n" * 50)
    with pytest.raises(CheckpointError, match="garbage.pt: corrupt"):
        load_checkpoint(path)


def test_wrong_kind_raises_checkpoint_error(tmp_path):
    path, _, _ = _save(tmp_path / "nisf.pt", kind="nisf")
    with pytest.raises(CheckpointError, match=r"nisf.pt: checkpoint of kind 'nisf', expected 'atlas'"):
        load_checkpoint(path, expected_kind="atlas")


def test_newer_format_version_raises_checkpoint_error(tmp_path):
    path, _, _ = _save(tmp_path / "future.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"future.pt: format version {FORMAT_VERSION + 1} is newer"):
        load_checkpoint(path)


def test_foreign_torch_file_raises_checkpoint_error(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="weights.pth: not a CardiacMotionAtlas checkpoint"):
        load_checkpoint(path)


class _Payload:
    """Unpickling this would create a marker file: a weights_only load must refuse before that."""

    marker = None

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_arbitrary_pickled_object_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "executed"
    payload = _Payload()
    payload.marker = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"format": FORMAT_MAGIC, "format_version": FORMAT_VERSION, "kind": "atlas", "step": 0,
                "config": {}, "model_state": {"hook": payload}}, path)
    with pytest.raises(CheckpointError, match=r"evil.pt: refused: contains code/objects that weights_only loading "
                                              r"does not allow \(.*getattr, pathlib.Path"):
        load_checkpoint(path)
    assert not marker.exists()

    plain_pickle = tmp_path / "evil.pkl"
    plain_pickle.write_bytes(pickle.dumps(payload))
    with pytest.raises(CheckpointError, match=r"evil.pkl: refused: contains code/objects .*pathlib.Path"):
        load_checkpoint(plain_pickle)
    assert not marker.exists()


class _Shell:
    """Unpickling this would run a shell command (a pickle GLOBAL of os.system)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("packing", ["torch.save zip", "pickle protocol 0", "pickle protocol 4"])
def test_code_in_a_checkpoint_is_refused_naming_the_global(tmp_path, packing):
    """A malicious checkpoint is reported as refused (naming what it would import), not as corrupt."""
    import os

    marker = tmp_path / "executed"
    path = tmp_path / "model.pt"
    payload = {"format": FORMAT_MAGIC, "format_version": FORMAT_VERSION, "kind": "atlas", "step": 0,
               "config": {}, "model_state": {"w": _Shell(marker)}}
    if packing == "torch.save zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=int(packing[-1])))
    system = f"{os.system.__module__}.system"  # posix.system on Linux
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: refused: contains code/objects that weights_only loading does not allow")
    assert f"({system})" in message and "corrupt" not in message  # the only foreign global
    assert not marker.exists()


def test_pickle_globals_lists_what_would_be_imported(tmp_path):
    from CardiacMotionAtlasLib.training.pickle_scan import foreign_globals, pickle_globals

    plain, _, _ = _save(tmp_path / "plain.pt")
    assert pickle_globals(plain) and foreign_globals(plain) == []  # tensors only: torch rebuild functions
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps([1, _Shell(tmp_path / "x")], protocol=4))
    assert foreign_globals(evil) == [f"{__import__('os').system.__module__}.system"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"extra": {"array": np.zeros(2)}}, r"checkpoint\['extra'\]\['array'\]: numpy.ndarray"),
        ({"config": {"fn": print}}, "config cannot be stored"),
        ({"model_state": {"s": {1, 2}}}, "set cannot be stored"),
    ],
)
def test_unloadable_values_are_refused_before_writing(tmp_path, overrides, message):
    path = tmp_path / "x.pt"
    with pytest.raises(TypeError, match=message):
        _save(path, **overrides)
    assert _files(tmp_path) == []


def test_failed_save_keeps_previous_checkpoint_and_leaves_no_temp_file(tmp_path, monkeypatch):
    path, _, _ = _save(tmp_path / "atlas.pt", step=3)
    before = path.read_bytes()

    def exploding_save(obj, handle, *args, **kwargs):
        handle.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", exploding_save)
    with pytest.raises(OSError, match="disk full"):
        _save(path, step=4)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).step == 3
    assert _files(tmp_path) == ["atlas.pt"]
