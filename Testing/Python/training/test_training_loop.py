"""The resumable training loop: resume equivalence, cancel, crash, config/kind checks, ranks."""

import dataclasses
import random

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.errors import CheckpointError
from CardiacMotionAtlasLib.training import (
    CancelToken,
    TrainingCancelled,
    load_checkpoint,
    make_state_fns,
    partial_path,
    run_training,
    seed_everything,
)

TOTAL = 20


@dataclasses.dataclass
class ToyConfig:
    lr: float = 0.05
    hidden: int = 16
    dropout: float = 0.2

    @classmethod
    def tiny(cls):
        return cls(hidden=8)


class Toy:
    """A tiny regression trainer whose every step draws from Python, NumPy and torch global RNGs."""

    def __init__(self, config, init_seed=0):
        torch.manual_seed(init_seed)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(2, config.hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(config.dropout),
            torch.nn.Linear(config.hidden, 1),
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=7, gamma=0.5)
        self.state_dict_fn, self.load_state_fn = make_state_fns(self.model, self.optimizer, self.scheduler)
        self.steps_run = []
        self.hook = None

    def step(self, step):
        if self.hook is not None:
            self.hook(step)
        self.steps_run.append(step)
        x = torch.randn(16, 2) * (1.0 + random.random())
        x = x + torch.from_numpy(np.random.normal(size=(16, 2))).float() * 0.1
        y = (x[:, :1] * 3.0 - x[:, 1:]).sin()
        self.model.train()
        loss = (self.model(x) - y).pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return {"loss": loss.detach()}

    def run(self, path, config, **kwargs):
        kwargs.setdefault("checkpoint_every", 5)
        return run_training(
            self.step,
            total_steps=TOTAL,
            checkpoint_path=path,
            state_dict_fn=self.state_dict_fn,
            load_state_fn=self.load_state_fn,
            config=config,
            kind="toy",
            **kwargs,
        )


def _params(model):
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture
def config():
    return ToyConfig.tiny()


@pytest.fixture
def straight(tmp_path, config):
    seed_everything(1234)
    toy = Toy(config)
    result = toy.run(tmp_path / "straight" / "toy.pt", config)
    assert result.step == TOTAL and not result.resumed and "loss" in result.metrics
    return toy


def test_cancel_then_resume_equals_uninterrupted(tmp_path, config, straight):
    path = tmp_path / "interrupted" / "toy.pt"
    seed_everything(1234)
    first = Toy(config)
    token = CancelToken()
    first.hook = lambda step: token.cancel("user pressed cancel") if step == 9 else None
    with pytest.raises(TrainingCancelled) as info:
        first.run(path, config, cancel=token)
    partial = partial_path(path)
    assert (info.value.step, info.value.checkpoint_path) == (10, partial)
    assert "user pressed cancel" in str(info.value)
    # cancel leaves a valid checkpoint under its own name, marked incomplete; none under the final name
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.partial.pt"]
    saved = load_checkpoint(partial, expected_kind="toy", allow_incomplete=True)
    assert (saved.step, saved.total_steps, saved.complete) == (10, TOTAL, False)

    seed_everything(999)  # a new process: other seeds, other initial weights
    second = Toy(config, init_seed=5)
    result = second.run(path, config, resume=True)
    assert (result.start_step, result.step, result.resumed) == (10, TOTAL, True)
    assert second.steps_run == list(range(10, TOTAL))
    _assert_same(_params(straight.model), _params(second.model))
    assert straight.scheduler.get_last_lr() == second.scheduler.get_last_lr()
    _assert_same(straight.optimizer.state_dict()["state"][0], second.optimizer.state_dict()["state"][0])
    assert load_checkpoint(path).step == TOTAL and load_checkpoint(path).complete
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.pt"]  # the partial file is gone


def test_crash_then_resume_from_last_periodic_checkpoint(tmp_path, config, straight):
    path = tmp_path / "crash" / "toy.pt"
    seed_everything(1234)
    first = Toy(config)

    def crash(step):
        if step == 13:
            raise RuntimeError("out of memory (simulated)")

    first.hook = crash
    with pytest.raises(RuntimeError, match="simulated"):
        first.run(path, config)
    # the last periodic checkpoint is intact, under the in-progress name only
    assert load_checkpoint(partial_path(path), allow_incomplete=True).step == 10
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.partial.pt"]

    second = Toy(config, init_seed=7)
    second.run(path, config, resume=True)
    assert second.steps_run == list(range(10, TOTAL))
    _assert_same(_params(straight.model), _params(second.model))


def test_resume_without_checkpoint_starts_from_zero(tmp_path, config):
    toy = Toy(config)
    result = toy.run(tmp_path / "fresh.pt", config, resume=True, checkpoint_every=None)
    assert result.start_step == 0 and toy.steps_run == list(range(TOTAL))
    assert load_checkpoint(tmp_path / "fresh.pt").step == TOTAL


def test_resume_of_finished_run_does_nothing(tmp_path, config):
    path = tmp_path / "done.pt"
    Toy(config).run(path, config)
    again = Toy(config)
    result = again.run(path, config, resume=True)
    assert again.steps_run == [] and result.start_step == TOTAL


def test_resume_refuses_another_config_or_kind(tmp_path, config):
    path = tmp_path / "toy.pt"
    Toy(config).run(path, config)
    other = dataclasses.replace(config, lr=0.5)
    with pytest.raises(CheckpointError, match=r"toy.pt: was trained with another config: lr: 0.05 -> 0.5"):
        Toy(other).run(path, other, resume=True)
    toy = Toy(config)
    with pytest.raises(CheckpointError, match="checkpoint of kind 'toy', expected 'atlas'"):
        run_training(toy.step, total_steps=TOTAL, checkpoint_path=path, checkpoint_every=5,
                     state_dict_fn=toy.state_dict_fn, load_state_fn=toy.load_state_fn,
                     config=config, kind="atlas", resume=True)


def test_resume_refuses_a_model_that_does_not_fit(tmp_path, config):
    path = tmp_path / "toy.pt"
    Toy(config).run(path, config)
    bigger = ToyConfig(hidden=32)
    toy = Toy(bigger)
    with pytest.raises(CheckpointError, match="toy.pt: model state does not fit"):
        run_training(toy.step, total_steps=TOTAL, checkpoint_path=path, checkpoint_every=5,
                     state_dict_fn=toy.state_dict_fn, load_state_fn=toy.load_state_fn,
                     config=config, kind="toy", resume=True)


def test_only_rank_zero_writes_checkpoints(tmp_path, config):
    toy = Toy(config)
    toy.run(tmp_path / "r1.pt", config, rank=1, world_size=2)
    assert not (tmp_path / "r1.pt").exists()


def test_without_checkpoint_path_nothing_is_written(tmp_path, config):
    toy = Toy(config)
    token = CancelToken()
    toy.hook = lambda step: token.cancel() if step == 3 else None
    with pytest.raises(TrainingCancelled) as info:
        toy.run(None, config, cancel=token)
    assert info.value.checkpoint_path is None and info.value.step == 4
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="resume=True needs a checkpoint_path"):
        toy.run(None, config, resume=True)


def test_killed_run_is_refused_for_applying_unless_allowed(tmp_path, config):
    """A run killed half-way leaves no model under the final name; applying it is refused, naming the
    file and its step count, unless asked (keyword, context or environment), which then warns."""
    from CardiacMotionAtlasLib.training import IncompleteCheckpointWarning, allow_incomplete_checkpoints

    path = tmp_path / "killed.pt"
    toy = Toy(config)

    def crash(step):
        if step == 12:
            raise KeyboardInterrupt  # a kill between checkpoints

    toy.hook = crash
    with pytest.raises(KeyboardInterrupt):
        toy.run(path, config)
    with pytest.raises(CheckpointError, match=r"killed.pt: no such checkpoint file: its training did not finish; "
                                              r".*killed.partial.pt holds step 10 of 20"):
        load_checkpoint(path, expected_kind="toy")
    with pytest.raises(CheckpointError, match=r"killed.partial.pt: incomplete model: .*step 10 of 20.*--allow-incomplete"):
        load_checkpoint(partial_path(path), expected_kind="toy")
    with allow_incomplete_checkpoints():
        with pytest.warns(IncompleteCheckpointWarning, match=r"killed.partial.pt: using an INCOMPLETE model \(step 10 of 20\)"):
            used = load_checkpoint(path, expected_kind="toy")
    assert used.step == 10 and not used.complete and used.path == partial_path(path)
    assert load_checkpoint(path, allow_incomplete=True).step == 10


def test_incomplete_allowed_from_the_environment(tmp_path, config, monkeypatch):
    from CardiacMotionAtlasLib.training import IncompleteCheckpointWarning
    from CardiacMotionAtlasLib.training.checkpoint import ALLOW_INCOMPLETE_ENV

    path = tmp_path / "toy.pt"
    toy = Toy(config)
    token = CancelToken()
    toy.hook = lambda step: token.cancel() if step == 3 else None
    with pytest.raises(TrainingCancelled):
        toy.run(path, config, cancel=token)
    monkeypatch.setenv(ALLOW_INCOMPLETE_ENV, "0")
    with pytest.raises(CheckpointError, match="step 4 of 20"):
        load_checkpoint(partial_path(path))
    monkeypatch.setenv(ALLOW_INCOMPLETE_ENV, "1")
    with pytest.warns(IncompleteCheckpointWarning, match="step 4 of 20"):
        assert load_checkpoint(partial_path(path)).step == 4
