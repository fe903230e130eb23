"""Peak resident memory of one run in this process (Linux), shared by the benchmark scripts."""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


@contextmanager
def peak_rss() -> Iterator[dict[str, int]]:
    """Bytes of resident memory the block adds at its peak: ``with peak_rss() as m: ...; m["bytes"]``.

    Freed memory is handed back first and the high-water mark reset, so what was held before the
    block (weights, inputs) does not count."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS") * 1024
    result = {"bytes": 0}
    yield result
    result["bytes"] = _status_kib("VmHWM") * 1024 - before


def peak_tensor_bytes(run: Callable[[], object]) -> int:
    """Bytes of tensor memory (PyTorch's CPU allocator) that ``run()`` holds at its peak beyond
    what was allocated before it: activations, and gradients in a backward pass.

    Replays the allocation events PyTorch's profiler records (``profile_memory=True``), so library
    start-up costs and the C allocator's caching, which inflate resident memory, don't count."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    sizes: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            sizes.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    held = peak = 0
    for _, size in sorted(sizes):
        held += size
        peak = max(peak, held)
    return peak
