"""One benchmark measurement in a fresh interpreter, shared by the benchmark scripts: its memory,
thread pools and warnings are its own, and a crash or a hang costs that measurement only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

RESULT = "RESULT "
# Quiet libraries and one tokenizer thread pool per process, whatever the caller's environment.
QUIET = {"TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}


def run_child(
    script: str, spec: dict[str, Any], *, timeout: float | None = None, env: dict[str, str] | None = None
) -> dict[str, Any] | str:
    """``python SCRIPT --measure SPEC``: the result it ``report``-ed, or why there is none."""
    command = [sys.executable, script, "--measure", json.dumps(spec)]
    environment = {**os.environ, **QUIET, **(env or {})}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f}s"
    for line in done.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT) :])
    last = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return f"failed: {last[:300]}"


def report(result: dict[str, Any]) -> None:
    """The child's side: print the result where ``run_child`` reads it."""
    print(RESULT + json.dumps(result), flush=True)
