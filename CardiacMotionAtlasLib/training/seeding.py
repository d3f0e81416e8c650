"""Random seeds and random-number-generator state (Python, NumPy, torch CPU and CUDA).

Per-rank seeds: rank ``r`` of a distributed job uses ``seed + r`` so that ranks draw different samples
yet a rerun with the same seed reproduces every rank. RNG states are captured as tensors and builtins
only, so that checkpoints holding them load with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import os
import random
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np
import torch

MAX_SEED = 2**32 - 1  # NumPy's legacy seeding accepts 32-bit unsigned seeds only


def derive_seed(seed: int, *, rank: int = 0, stream: Optional[int] = None) -> int:
    """The effective seed for ``rank`` (``seed + rank``), or, with ``stream`` (an epoch, a step, a
    subject index), an independent well-mixed 32-bit seed for the triple ``(seed, rank, stream)``."""
    for name, value in (("seed", seed), ("rank", rank)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if stream is None:
        effective = int(seed) + int(rank)
        if effective > MAX_SEED:
            raise ValueError(f"seed + rank = {effective} exceeds {MAX_SEED}")
        return effective
    if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)) or stream < 0:
        raise ValueError(f"stream must be a non-negative integer, got {stream!r}")
    mixed = np.random.SeedSequence([int(seed), int(rank), int(stream)]).generate_state(1, dtype=np.uint32)
    return int(mixed[0])


def seed_everything(seed: int, rank: int = 0, *, deterministic: bool = False) -> int:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device) with
    ``seed + rank``; return that effective seed.

    ``deterministic=True`` also asks torch for deterministic kernels (warning, not failing, where none
    exists) and disables cuDNN autotuning: slower, but bitwise repeatable on one machine.
    """
    effective = derive_seed(seed, rank=rank)
    random.seed(effective)
    np.random.seed(effective)
    torch.manual_seed(effective)  # also seeds every CUDA device (lazily when CUDA is not initialised)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return effective


def make_generator(
    seed: int,
    device: Union[str, torch.device] = "cpu",
    *,
    rank: int = 0,
    stream: Optional[int] = None,
) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with :func:`derive_seed` ``(seed, rank, stream)``.

    Prefer a generator per step or per epoch (``stream=step``) inside training steps: its draws depend
    only on the step index, so a resumed run reproduces an uninterrupted one by construction.
    """
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(derive_seed(seed, rank=rank, stream=stream))
    return generator


def capture_rng_state() -> Dict[str, Any]:
    """This process' RNG states as a dict of tensors and builtins (safe for ``weights_only`` loads).

    CUDA states are captured only when CUDA is already initialised, so a CPU-only run on a GPU machine
    does not create a CUDA context just to save a checkpoint.
    """
    py_version, py_state, py_gauss = random.getstate()
    bit_generator, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    cuda_states = []
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda_states = [state.cpu() for state in torch.cuda.get_rng_state_all()]
    return {
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": None if py_gauss is None else float(py_gauss),
        },
        "numpy": {
            "bit_generator": str(bit_generator),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": cuda_states,
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured (tensors may come back on any device).

    CUDA states are restored for as many devices as both the state and this machine have.
    """
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state(
        (
            npy["bit_generator"],
            npy["keys"].cpu().numpy().astype(np.uint32),
            int(npy["pos"]),
            int(npy["has_gauss"]),
            float(npy["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    cuda_states = list(state.get("cuda") or [])
    if cuda_states and torch.cuda.is_available():
        for index in range(min(len(cuda_states), torch.cuda.device_count())):
            torch.cuda.set_rng_state(cuda_states[index].cpu().to(torch.uint8), device=index)


__all__ = [
    "MAX_SEED",
    "capture_rng_state",
    "derive_seed",
    "make_generator",
    "restore_rng_state",
    "seed_everything",
]
