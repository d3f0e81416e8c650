"""Device choice: the one place that decides between CUDA and CPU.

Every model and tensor factory in the library takes a ``device`` argument filled from
:func:`select_device`; no code path moves tensors to a fixed GPU.
"""

from __future__ import annotations

import os
import re
from typing import Optional, Union

import torch

from ..errors import CardiacMotionAtlasError

DeviceLike = Union[str, torch.device, None]

_CUDA_PATTERN = re.compile(r"^cuda(?::(\d+))?$")


class DeviceUnavailableError(CardiacMotionAtlasError, RuntimeError):
    """A device was asked for explicitly (``"cuda"``, ``"cuda:1"``) but this process cannot use it."""


def _cuda_unavailable_reason() -> str:
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return f"no CUDA device is visible (CUDA_VISIBLE_DEVICES={visible!r})"
    return "no CUDA device is visible"


def select_device(preference: DeviceLike = "auto", *, local_rank: Optional[int] = None) -> torch.device:
    """Return the ``torch.device`` to compute on.

    ``preference``:
      - ``"auto"`` (or ``None``): ``cuda`` when a GPU is usable, else ``cpu``;
      - ``"cpu"``;
      - ``"cuda"`` or ``"cuda:N"``: that GPU, or :class:`DeviceUnavailableError` when it is not usable.

    ``local_rank`` (the ``LOCAL_RANK`` of a ``torchrun`` worker) picks ``cuda:<local_rank>`` when the
    preference names CUDA without an index, so each rank of a multi-GPU job gets its own GPU.
    """
    if isinstance(preference, torch.device):
        preference = str(preference)
    text = "auto" if preference is None else str(preference).strip().lower()

    if text == "cpu":
        return torch.device("cpu")
    if text == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        text = "cuda"
    match = _CUDA_PATTERN.match(text)
    if match is None:
        raise ValueError(f"unknown device {preference!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(f"device {text!r} requested but {_cuda_unavailable_reason()}")
    count = torch.cuda.device_count()
    if match.group(1) is not None:
        index = int(match.group(1))
    elif local_rank is not None:
        index = int(local_rank)
    else:
        index = torch.cuda.current_device()
    if not 0 <= index < count:
        raise DeviceUnavailableError(f"device 'cuda:{index}' requested but only {count} CUDA device(s) are visible")
    return torch.device("cuda", index)


def describe_device(device: DeviceLike) -> str:
    """One line for logs, e.g. ``"cuda:0 (NVIDIA H100 80GB HBM3)"`` or ``"cpu (16 threads)"``."""
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


__all__ = ["DeviceUnavailableError", "describe_device", "select_device"]
