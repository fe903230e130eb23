"""Freed CPU memory stays with the process (model/allocator.py): a long input's tensors are not
page-faulted in afresh by every layer."""

import os
import subprocess
import sys

import pytest

from spacy_longformer.model import allocator

# In a fresh process: allocate and free a 64 MiB tensor (over glibc's largest mmap threshold)
# ten times, after one warm-up, and print the minor page faults that took.
FAULTS = """
import resource, sys, torch
from spacy_longformer.model import LongformerConfig, LongformerModel
config = LongformerConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, attention_window=4, max_position_embeddings=40)
LongformerModel(config).eval()(torch.tensor([[0, 5, 6, 2]]))  # the first CPU forward tunes malloc
torch.ones(16 << 20).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(16 << 20).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(**env: str) -> int:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != allocator.OPT_OUT}
    result = subprocess.run(
        [sys.executable, "-c", FAULTS], env={**clean, **env}, capture_output=True, text=True, check=True
    )
    return int(result.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_cpu_forward_keeps_freed_blocks_for_reuse():
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    tuned, system = _faults(), _faults(**{allocator.OPT_OUT: "system"})
    assert system > 5 * pages, system  # each 64 MiB tensor mapped and zeroed anew
    assert tuned < pages, tuned  # reused from the heap


def test_the_users_own_malloc_settings_win(monkeypatch):
    allocator.keep_freed_memory.cache_clear()
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")
    try:
        assert allocator.keep_freed_memory() is False
    finally:
        allocator.keep_freed_memory.cache_clear()


def test_opt_out(monkeypatch):
    allocator.keep_freed_memory.cache_clear()
    monkeypatch.setenv(allocator.OPT_OUT, "system")
    try:
        assert allocator.keep_freed_memory() is False
    finally:
        allocator.keep_freed_memory.cache_clear()
