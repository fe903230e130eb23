"""Peak resident memory of one run in this process (Linux), shared by the benchmark scripts."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
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
