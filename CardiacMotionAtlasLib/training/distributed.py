"""Process-group awareness for trainers run under ``torchrun`` (DistributedDataParallel).

Everything here degrades to a single process (rank 0 of 1) when ``torch.distributed`` is not
initialised, so the same trainer code runs alone, in Slicer, and on many GPUs.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialised with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world_size() -> Tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` unless a process group is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_rank_zero() -> bool:
    """True on the process that writes checkpoints and reports progress by default."""
    return rank_and_world_size()[0] == 0


def _collective_device() -> torch.device:
    """Tensors in collectives must live where the backend expects them (CUDA for nccl)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one rank (a collective: all ranks must call
    it). Single process: returns ``flag``."""
    if not is_distributed():
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def gather_to_rank_zero(obj: Any) -> Optional[List[Any]]:
    """Collect one picklable object from every rank on rank 0 (a collective). Rank 0 gets the list
    indexed by rank, other ranks ``None``. Single process: ``[obj]``. Used for per-rank RNG states; the
    objects travel between this job's own processes only, never through a file."""
    if not is_distributed():
        return [obj]
    rank, world_size = rank_and_world_size()
    gathered: Optional[List[Any]] = [None] * world_size if rank == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def barrier() -> None:
    """Wait for every rank; no-op in a single process."""
    if is_distributed():
        dist.barrier()


__all__ = ["any_rank", "barrier", "gather_to_rank_zero", "is_distributed", "is_rank_zero", "rank_and_world_size"]
