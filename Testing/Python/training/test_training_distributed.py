"""Two CPU ranks (gloo): rank 0 alone writes, every rank's RNG state is saved and restored, a cancel on one
rank stops all ranks at the same step, and a resumed run equals an uninterrupted one on every rank."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is unavailable"
)

WORLD = 2
TOTAL = 8


def _worker(rank, folder, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        from CardiacMotionAtlasLib.training import (
            CancelToken,
            TrainingCancelled,
            load_checkpoint,
            make_state_fns,
            partial_path,
            rank_and_world_size,
            run_training,
            seed_everything,
        )

        assert rank_and_world_size() == (rank, WORLD)

        def build():
            torch.manual_seed(0)  # same initial weights on every rank, as DDP requires
            model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 1))
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            return model, optimizer

        def train(path, *, resume=False, cancel=None, cancel_at=None):
            model, optimizer = build()
            state_dict_fn, load_state_fn = make_state_fns(model, optimizer)

            def step_fn(step):
                if cancel is not None and step == cancel_at and rank == 1:
                    cancel.cancel("rank 1 stops")  # only one rank is told: all must stop together
                x = torch.rand(4, 3)  # differs per rank (seed + rank), restored per rank on resume
                loss = model(x).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                return {"loss": loss}

            run_training(step_fn, total_steps=TOTAL, checkpoint_path=path, checkpoint_every=3,
                         state_dict_fn=state_dict_fn, load_state_fn=load_state_fn, config={"lr": 0.1},
                         kind="toy", resume=resume, cancel=cancel)
            return model.module.weight.detach().clone(), torch.rand(2)

        seed_everything(5, rank)
        straight = train(os.path.join(folder, "straight.pt"))

        seed_everything(5, rank)
        path = os.path.join(folder, "resumed.pt")
        token = CancelToken()
        try:
            train(path, cancel=token, cancel_at=4)
            raise AssertionError("not cancelled")
        except TrainingCancelled as error:
            assert error.step == 5, error.step
        dist.barrier()
        checkpoint = load_checkpoint(partial_path(path), allow_incomplete=True)  # in progress: its own name
        assert checkpoint.step == 5 and len(checkpoint.rng_state) == WORLD and not checkpoint.complete
        assert not os.path.exists(path)

        seed_everything(77, rank)
        resumed = train(path, resume=True)
        assert torch.equal(straight[0], resumed[0]), "weights differ after resume"
        assert torch.equal(straight[1], resumed[1]), "RNG stream differs after resume"
        torch.save({"ok": True}, os.path.join(folder, f"ok{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_ranks_gloo(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path), _free_port()), nprocs=WORLD, join=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok0.pt", "ok1.pt", "resumed.pt", "straight.pt"]
