"""Device selection and seeding."""

import random

import numpy as np
import pytest
import torch

from CardiacMotionAtlasLib.training import (
    DeviceUnavailableError,
    capture_rng_state,
    derive_seed,
    describe_device,
    make_generator,
    restore_rng_state,
    seed_everything,
    select_device,
)


def test_cpu_is_always_selectable():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device(torch.device("cpu")) == torch.device("cpu")
    assert select_device(" CPU ") == torch.device("cpu")
    assert describe_device("cpu").startswith("cpu")


def test_auto_follows_cuda_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    assert select_device(None).type == expected


def test_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        select_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_raises_clearly():
    with pytest.raises(DeviceUnavailableError, match="'cuda' requested"):
        select_device("cuda")
    with pytest.raises(DeviceUnavailableError, match="'cuda:1' requested"):
        select_device("cuda:1")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_when_present():
    device = select_device("cuda")
    assert device.type == "cuda" and device.index is not None
    assert select_device("cuda:0") == torch.device("cuda", 0)
    assert select_device("auto", local_rank=0) == torch.device("cuda", 0)
    count = torch.cuda.device_count()
    with pytest.raises(DeviceUnavailableError, match=f"only {count} CUDA device"):
        select_device(f"cuda:{count}")
    generator = make_generator(3, device)
    assert torch.rand(4, device=device, generator=generator).device.type == "cuda"


def _draws():
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist())


def test_seed_everything_reproduces_all_generators():
    assert seed_everything(123) == 123
    first = _draws()
    seed_everything(123)
    assert _draws() == first
    assert seed_everything(123, rank=2) == 125
    assert _draws() != first


def test_rng_state_capture_and_restore_round_trip():
    seed_everything(7)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.standard_normal()  # and in NumPy's
    state = capture_rng_state()
    expected = (_draws(), random.gauss(0, 1), float(np.random.standard_normal()))
    seed_everything(99)
    restore_rng_state(state)
    assert (_draws(), random.gauss(0, 1), float(np.random.standard_normal())) == expected


def test_generators_per_rank_and_stream_are_reproducible_and_independent():
    a = torch.rand(5, generator=make_generator(1, rank=0))
    assert torch.equal(a, torch.rand(5, generator=make_generator(1, rank=0)))
    assert not torch.equal(a, torch.rand(5, generator=make_generator(1, rank=1)))
    s3 = torch.rand(5, generator=make_generator(1, stream=3))
    assert torch.equal(s3, torch.rand(5, generator=make_generator(1, stream=3)))
    assert not torch.equal(s3, torch.rand(5, generator=make_generator(1, stream=4)))
    assert 0 <= derive_seed(2**32 - 1, rank=5, stream=10**9) < 2**32


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seeds_are_refused(bad):
    with pytest.raises(ValueError):
        seed_everything(bad)
