"""DistributedDataParallel helpers shared by the trainers (atlas, NISF++, ...).

A trainer run under ``torchrun`` (environment ``WORLD_SIZE > 1``) calls :func:`ensure_process_group`
once: the process group is initialised from torchrun's environment (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``) with ``nccl`` on CUDA and ``gloo`` on CPU, unless the caller already did.
Every rank then draws the same *global* batch (from a generator seeded by the step index), keeps its shard
(:func:`shard`) and weights its per-sample loss terms by :func:`shard_weight`, so that DDP's gradient
average equals the single-process gradient of the global batch. Single process: everything is a no-op.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn

from .distributed import is_distributed, rank_and_world_size


def env_world_size() -> int:
    """``WORLD_SIZE`` set by ``torchrun`` (1 when absent)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def local_rank() -> Optional[int]:
    """``LOCAL_RANK`` set by ``torchrun`` (the GPU index of this rank on its node), or ``None``."""
    value = os.environ.get("LOCAL_RANK")
    return int(value) if value not in (None, "") else None


def backend_for(device: torch.device) -> str:
    """``nccl`` for CUDA devices, ``gloo`` otherwise."""
    return "nccl" if torch.device(device).type == "cuda" and dist.is_nccl_available() else "gloo"


def ensure_process_group(device: torch.device, *, timeout_s: float = 1800.0) -> Tuple[int, int]:
    """Initialise the default process group from torchrun's environment when ``WORLD_SIZE > 1`` and none
    exists yet; return ``(rank, world_size)`` (``(0, 1)`` in a single process)."""
    if dist.is_available() and not dist.is_initialized() and env_world_size() > 1:
        device = torch.device(device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend_for(device), timeout=timedelta(seconds=timeout_s))
    return rank_and_world_size()


def wrap_ddp(module: nn.Module, device: torch.device, *, find_unused_parameters: bool = False) -> nn.Module:
    """``module`` wrapped in :class:`DistributedDataParallel` when a multi-rank group is initialised (the
    parameters and buffers of rank 0 are broadcast to every rank), else ``module`` itself."""
    if not is_distributed():
        return module
    device = torch.device(device)
    device_ids = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids,
                                               find_unused_parameters=find_unused_parameters)


def shard(n: int, rank: int, world_size: int) -> slice:
    """Contiguous shard of ``range(n)`` for ``rank``: sizes differ by at most one, the first ranks
    taking the extra items."""
    base, extra = divmod(int(n), int(world_size))
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def shard_weight(n: int, rank: int, world_size: int) -> float:
    """Weight of a per-sample *mean* computed on this rank's shard so that the average over ranks (DDP's
    gradient average) equals the mean over all ``n`` samples: ``len(shard) * world_size / n``."""
    part = shard(n, rank, world_size)
    return (part.stop - part.start) * world_size / max(int(n), 1)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of a (detached) tensor over ranks; the tensor itself in a single process."""
    if not is_distributed():
        return value
    out = value.detach().clone()
    if dist.get_backend() == "nccl" and out.device.type != "cuda":
        out = out.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return (out / dist.get_world_size()).to(value.device)


__all__ = ["all_reduce_mean", "backend_for", "ensure_process_group", "env_world_size", "local_rank", "shard",
           "shard_weight", "wrap_ddp"]
