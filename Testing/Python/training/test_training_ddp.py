"""DistributedDataParallel training on 2 CPU ranks (gloo).

Atlas: the loss trajectory and the weights equal a single process with the same global batch; rank 0
alone writes checkpoints; a cancelled DDP run resumes to the same result as an uninterrupted one.
NISF++ (per-rank sub-batches, its loss does not split per point): ranks stay in sync, rank 0 alone writes,
cancel + resume equals the uninterrupted DDP run. Plus the sharding arithmetic of training.ddp."""

from __future__ import annotations

import os
import socket
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from CardiacMotionAtlasLib.training import ddp

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch.distributed with gloo is unavailable"
)

WORLD = 2


def test_shards_cover_the_batch_and_weights_average_to_the_global_mean():
    for n in (1, 7, 8, 801):
        for world in (1, 2, 3):
            parts = [ddp.shard(n, r, world) for r in range(world)]
            covered = [i for part in parts for i in range(n)[part]]
            assert covered == list(range(n))
            values = np.random.default_rng(n).normal(size=n)
            means = [values[p].mean() * ddp.shard_weight(n, r, world) if p.stop > p.start else 0.0
                     for r, p in enumerate(parts)]
            assert np.isclose(np.mean(means), values.mean())
    assert ddp.ensure_process_group(torch.device("cpu")) == (0, 1)  # no torchrun environment: single process
    module = torch.nn.Linear(2, 1)
    assert ddp.wrap_ddp(module, torch.device("cpu")) is module


class _Recorder:
    """A progress reporter keeping every step's loss."""

    def __init__(self, stop_after=None, token=None):
        self.losses, self.stop_after, self.token = [], stop_after, token

    def start(self, total, description="", *, initial=0):
        pass

    def update(self, step, **metrics):
        self.losses.append(float(metrics["loss"]))
        if self.stop_after is not None and step == self.stop_after:
            self.token.cancel("test stops the run")

    def close(self):
        pass


def _config():
    from CardiacMotionAtlasLib.atlas.config import AtlasConfig, SamplingConfig

    # 801 points per step: shards of 401 and 400 (unequal shards are weighted exactly)
    return replace(AtlasConfig.tiny(), steps=6, template_warmup_steps=2, checkpoint_every=3, frames_per_subject=3,
                   points_per_frame=267, sampling=SamplingConfig(samples_per_frame=400))


def _subjects():
    from CardiacMotionAtlasLib.atlas.sampling import subject_from_phantom
    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart

    sampling = _config().sampling
    return [subject_from_phantom(PhantomHeart.from_seed(0, i), np.arange(3) / 3, sampling, seed=i) for i in range(2)]


def _state(atlas):
    return {k: v.detach().cpu().clone() for k, v in atlas.module.state_dict().items()}


def _worker(rank, folder, port, subjects):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        from CardiacMotionAtlasLib.atlas.train import train_atlas
        from CardiacMotionAtlasLib.training import CancelToken, TrainingCancelled

        config = _config()
        # the straight run; rank 1 is given its own path: only rank 0 may write
        own = os.path.join(folder, "straight.pt" if rank == 0 else "rank1_must_not_exist.pt")
        recorder = _Recorder()
        atlas = train_atlas(subjects, config, device="cpu", checkpoint_path=own, progress=recorder)
        straight = (recorder.losses, _state(atlas))

        path = os.path.join(folder, "resumed.pt")
        token = CancelToken()
        first = _Recorder(stop_after=3 if rank == 1 else None, token=token)  # one rank asks: all stop
        try:
            train_atlas(subjects, config, device="cpu", checkpoint_path=path, progress=first, cancel=token)
            raise AssertionError("not cancelled")
        except TrainingCancelled as error:
            assert error.step == 3, error.step
        dist.barrier()
        second = _Recorder()
        resumed = train_atlas(subjects, config, device="cpu", checkpoint_path=path, resume=True, progress=second)
        torch.save({"straight_losses": straight[0], "straight_state": straight[1], "first": first.losses,
                    "second": second.losses, "resumed_state": _state(resumed)},
                   os.path.join(folder, f"rank{rank}.pt"))
        _nisf_worker(rank, folder)
    finally:
        dist.destroy_process_group()


def _nisf_config():
    from CardiacMotionAtlasLib.nisf import NISFConfig

    config = NISFConfig.tiny()
    config.steps, config.checkpoint_every, config.slices_per_step, config.points_per_slice = 4, 2, 4, 64
    return config


def _nisf_study():
    from CardiacMotionAtlasLib.phantom.cmr import CMRConfig, simulate_cine
    from CardiacMotionAtlasLib.phantom.heart import PhantomHeart

    return simulate_cine(PhantomHeart.from_seed(0, 0, kind="normal"), CMRConfig.tiny(), seed=1).study


def _nisf_worker(rank, folder):
    from CardiacMotionAtlasLib.nisf import train_nisf
    from CardiacMotionAtlasLib.training import CancelToken, TrainingCancelled

    studies, config = [_nisf_study()], _nisf_config()
    own = os.path.join(folder, "nisf_straight.pt" if rank == 0 else "nisf_rank1_must_not_exist.pt")
    recorder = _Recorder()
    straight = train_nisf(studies, config, device="cpu", checkpoint_path=own, progress=recorder)
    path = os.path.join(folder, "nisf_resumed.pt")
    token = CancelToken()
    first = _Recorder(stop_after=2 if rank == 1 else None, token=token)
    try:
        train_nisf(studies, config, device="cpu", checkpoint_path=path, progress=first, cancel=token)
        raise AssertionError("not cancelled")
    except TrainingCancelled as error:
        assert error.step == 2, error.step
    dist.barrier()
    second = _Recorder()
    resumed = train_nisf(studies, config, device="cpu", checkpoint_path=path, resume=True, progress=second)
    state = lambda trained: {k: v.detach().cpu().clone() for k, v in trained.model.state_dict().items()}  # noqa: E731
    torch.save({"straight_losses": recorder.losses, "straight_state": state(straight), "first": first.losses,
                "second": second.losses, "resumed_state": state(resumed)}, os.path.join(folder, f"nisf_rank{rank}.pt"))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ddp_atlas_equals_single_process_and_resumes(tmp_path):
    from CardiacMotionAtlasLib.atlas.train import train_atlas
    from CardiacMotionAtlasLib.training import load_checkpoint

    torch.set_num_threads(1)
    subjects = _subjects()
    single = _Recorder()
    reference = _state(train_atlas(subjects, _config(), device="cpu", progress=single))

    mp.spawn(_worker, args=(str(tmp_path), _free_port(), subjects), nprocs=WORLD, join=True)

    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for result in results:
        # same global batch: the same loss trajectory (all-reduced) and the same weights as one process
        np.testing.assert_allclose(result["straight_losses"], single.losses, rtol=2e-4, atol=1e-6)
        for name, value in reference.items():
            torch.testing.assert_close(result["straight_state"][name], value, rtol=1e-3, atol=2e-5)
        # cancelled at step 3 on one rank, resumed: equal to the uninterrupted DDP run
        assert len(result["first"]) == 3 and len(result["second"]) == 3
        np.testing.assert_allclose(result["first"] + result["second"], result["straight_losses"], rtol=1e-6)
        for name, value in result["straight_state"].items():
            torch.testing.assert_close(result["resumed_state"][name], value, rtol=1e-5, atol=1e-7)
    # every rank ends with identical weights
    for name, value in results[0]["straight_state"].items():
        assert torch.equal(results[1]["straight_state"][name], value)

    assert (tmp_path / "straight.pt").is_file() and not (tmp_path / "rank1_must_not_exist.pt").exists()
    checkpoint = load_checkpoint(tmp_path / "straight.pt", expected_kind="atlas")
    assert checkpoint.step == 6 and len(checkpoint.rng_state) == WORLD  # written once, with both ranks' RNG
    for name, value in results[0]["straight_state"].items():
        assert torch.equal(checkpoint.model_state[name], value)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert not leftovers, leftovers

    # NISF++: the ranks stay identical, rank 0 alone writes, and cancel + resume equals the straight run
    nisf = [torch.load(tmp_path / f"nisf_rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert nisf[0]["straight_losses"] == nisf[1]["straight_losses"]  # metrics are averaged over ranks
    assert len(nisf[0]["straight_losses"]) == 4 and np.all(np.isfinite(nisf[0]["straight_losses"]))
    for name, value in nisf[0]["straight_state"].items():
        assert torch.equal(nisf[1]["straight_state"][name], value), name
    for result in nisf:
        np.testing.assert_allclose(result["first"] + result["second"], result["straight_losses"], rtol=1e-6)
        for name, value in result["straight_state"].items():
            torch.testing.assert_close(result["resumed_state"][name], value, rtol=1e-5, atol=1e-7)
    assert (tmp_path / "nisf_straight.pt").is_file() and not (tmp_path / "nisf_rank1_must_not_exist.pt").exists()
    checkpoint = load_checkpoint(tmp_path / "nisf_straight.pt", expected_kind="nisf")
    assert checkpoint.step == 4 and len(checkpoint.rng_state) == WORLD
