"""run_training(finalise=...): the final checkpoint is written once, after finalise(); a run stopped inside
finalise leaves only the partial checkpoint, and resuming it finalises without re-running steps."""

import dataclasses

import pytest
import torch

from CardiacMotionAtlasLib.training import load_checkpoint, make_state_fns, partial_path, run_training

TOTAL = 6


@dataclasses.dataclass
class ToyConfig:
    lr: float = 0.1


class Toy:
    def __init__(self):
        torch.manual_seed(0)
        self.model = torch.nn.Linear(2, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)
        self.state_dict_fn, self.load_state_fn = make_state_fns(self.model, self.optimizer)
        self.steps = []

    def step(self, step):
        self.steps.append(step)
        x = torch.randn(8, 2)
        loss = (self.model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach()}

    def run(self, path, finalise=None, resume=False):
        return run_training(self.step, total_steps=TOTAL, checkpoint_path=path, checkpoint_every=2,
                            state_dict_fn=self.state_dict_fn, load_state_fn=self.load_state_fn, config=ToyConfig(),
                            kind="toy", resume=resume, finalise=finalise)


def test_final_checkpoint_is_written_once_after_finalise(tmp_path):
    plain = Toy()
    plain.run(tmp_path / "plain.pt")
    toy, calls = Toy(), []

    def finalise():
        calls.append(load_checkpoint(partial_path(tmp_path / "toy.pt"), allow_incomplete=True))
        assert not (tmp_path / "toy.pt").exists()  # nothing "complete" before finalise has run
        torch.rand(5)  # finalise may draw: the final file keeps the RNG state the last step left
        return {"calibration": {"EF": 1.5}, "unset": None}

    toy.run(tmp_path / "toy.pt", finalise)
    assert len(calls) == 1 and calls[0].step == TOTAL and not calls[0].complete
    final = load_checkpoint(tmp_path / "toy.pt")
    assert final.complete and final.step == TOTAL
    assert final.extra == {"calibration": {"EF": 1.5}}  # None entries are not stored
    assert not partial_path(tmp_path / "toy.pt").exists()
    reference = load_checkpoint(tmp_path / "plain.pt")
    assert all(torch.equal(final.model_state[k], v) for k, v in reference.model_state.items())
    assert torch.equal(final.rng_state[0]["torch"], reference.rng_state[0]["torch"])


def test_a_run_stopped_in_finalise_resumes_by_finalising_only(tmp_path):
    path = tmp_path / "toy.pt"
    toy = Toy()

    def failing():
        raise KeyboardInterrupt("killed while calibrating")

    with pytest.raises(KeyboardInterrupt):
        toy.run(path, failing)
    assert not path.exists()
    partial = load_checkpoint(partial_path(path), allow_incomplete=True)
    assert partial.step == TOTAL and not partial.complete
    resumed = Toy()
    resumed.run(path, lambda: {"prior": [1.0, 2.0]}, resume=True)
    assert resumed.steps == []  # the steps were done; only finalise ran
    final = load_checkpoint(path)
    assert final.complete and final.extra == {"prior": [1.0, 2.0]}
    assert all(torch.equal(final.model_state[k], v) for k, v in partial.model_state.items())

    again, calls = Toy(), []
    stamp = path.stat().st_mtime_ns
    again.run(path, lambda: calls.append(1), resume=True)  # finished: finalise runs, the file stays
    assert calls == [1] and again.steps == [] and path.stat().st_mtime_ns == stamp


def test_without_a_checkpoint_path_finalise_still_runs(tmp_path):
    toy, calls = Toy(), []
    toy.run(None, lambda: calls.append("done"))
    assert calls == ["done"] and toy.steps == list(range(TOTAL))
