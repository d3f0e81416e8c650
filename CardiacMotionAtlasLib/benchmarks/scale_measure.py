"""Measuring tools of the speed benchmark (:mod:`.scale`): timing with peak memory (CUDA's allocator, or the
resident-set growth sampled every ms on CPU), the machine's matmul rate, FLOP counts, activation bytes per
point and the chunk size that fits a memory budget."""

from __future__ import annotations

import gc
import math
import threading
import time
from typing import Callable, Dict, Sequence, Tuple

import numpy as np
import torch
from torch import nn

Row = Dict[str, object]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _mmap_threshold(value: int) -> None:
    """glibc ``mallopt(M_MMAP_THRESHOLD, value)``: with a small threshold every tensor buffer is mapped and
    unmapped on its own, so the resident set follows live memory (no-op where glibc is absent)."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-3, int(value))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Peak memory (MB) used inside the ``with`` block: CUDA allocator peak, or on CPU the peak growth of
    the resident set sampled every ms (buffers of 64 KiB and more mapped individually meanwhile, so memory
    cached by the allocator from earlier work does not hide the peak)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak_mb = float("nan")

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        import psutil

        _mmap_threshold(64 * 1024)
        self._process = psutil.Process()
        self._base = self._process.memory_info().rss
        self._peak = self._base
        self._stop = threading.Event()

        def sample() -> None:
            while not self._stop.is_set():
                self._peak = max(self._peak, self._process.memory_info().rss)
                self._stop.wait(0.001)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
            return
        self._peak = max(self._peak, self._process.memory_info().rss)
        self._stop.set()
        self._thread.join()
        _mmap_threshold(32 * 2**20)  # back to glibc's largest dynamic threshold for the timings
        self.peak_mb = (self._peak - self._base) / 2**20


def measure(fn: Callable[[], object], device: torch.device, repeats: int = 3, warmup: int = 1
            ) -> Tuple[float, float, float]:
    """(mean s, std s, peak MB) of ``fn()`` over ``repeats`` timed runs after ``warmup`` runs; the peak
    memory comes from the first run (the warm-up, or the first timed run without warm-up)."""
    times = []
    for index in range(warmup + repeats):
        if index == 0:
            with PeakMemory(device) as memory:
                start = time.perf_counter()
                fn()
                _sync(device)
                elapsed = time.perf_counter() - start
        else:
            start = time.perf_counter()
            fn()
            _sync(device)
            elapsed = time.perf_counter() - start
        if index >= warmup:
            times.append(elapsed)
    return float(np.mean(times)), float(np.std(times)), memory.peak_mb


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int = 4096, k: int = 512, repeats: int = 7) -> float:
    """Best measured GFLOP/s of an ``(n, k) @ (k, k)`` matrix multiply (``2 n k^2`` FLOPs)."""
    a = torch.randn(n, k, device=device).to(dtype)
    b = torch.randn(k, k, device=device).to(dtype)
    best = math.inf
    for _ in range(repeats + 2):
        _sync(device)
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        _sync(device)
        best = min(best, (time.perf_counter() - start) / 4)
    return 2.0 * n * k * k / best / 1e9


def count_flops(fn: Callable[[], object]) -> int:
    """Matrix-multiply FLOPs (``mm``, ``addmm``, ``bmm``, ...: 2 per multiply-add) of one call."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            fn()
    return int(counter.get_total_flops())


def activation_bytes_per_point(module: nn.Module, call: Callable[[], object], n_points: int) -> int:
    """Estimated peak activation bytes per point in a no-grad forward: three times the widest layer output
    (input, output and one temporary alive together), from forward hooks on every leaf module."""
    widest = [0]

    def hook(_module, _inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() >= 1 and output.shape[0] == n_points:
            widest[0] = max(widest[0], output[0].numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            call()
    finally:
        for handle in handles:
            handle.remove()
    return max(3 * widest[0], 64)


def auto_chunk(bytes_per_point: int, budget_mb: float, low: int = 1024, high: int = 1 << 20) -> int:
    """Points per chunk: the largest power of two whose activations fit ``budget_mb``, within
    ``[low, high]``."""
    fit = max(1, int(budget_mb * 2**20 // max(bytes_per_point, 1)))
    return int(min(high, max(low, 2 ** int(math.floor(math.log2(fit))))))


def default_memory_budget_mb(device: torch.device) -> float:
    """Activation budget per chunk: on CPU one core's L2 cache (activations that stay cache-resident beat
    bigger matrix multiplies, see the chunk sweep), on CUDA a quarter of the free memory (at most 2 GB)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return min(2048.0, free / 4 / 2**20)
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as handle:
            text = handle.read().strip().upper()
        value = float(text.rstrip("KMG"))
        return value / 1024 if text.endswith("K") else value * (1024 if text.endswith("G") else 1)
    except (OSError, ValueError):
        return 2.0


def run_chunked(fn: Callable[..., torch.Tensor], inputs: Sequence[torch.Tensor], chunk: int,
             out: torch.Tensor) -> torch.Tensor:
    n = inputs[0].shape[0]
    with torch.no_grad():
        for start in range(0, n, chunk):
            value = fn(*(x[start:start + chunk] for x in inputs))
            out[start:start + chunk] = value if value.dim() == out.dim() else value.reshape(out[start:start + chunk].shape)
    return out
