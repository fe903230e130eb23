"""benchmarks/gpu_check.py keeps working between GPU runs: its checks run small on the CPU."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("step", ["parity", "precision", "checkpointing"])
def test_correctness_steps_pass_on_the_cpu(gpu_check, step):
    result = gpu_check.STEPS[step]("cpu", True)
    assert result["ok"], result


def test_parity_tries_every_backend(gpu_check):
    result = gpu_check.step_parity("cpu", True)
    assert {"math/sdpa", "math/gemm", "flash/sdpa"} <= result.keys()
    assert result["math/sdpa"]["output"] <= 1e-5


def test_profile_and_timings_report(gpu_check):
    profile = gpu_check.step_profile("cpu", True)
    assert profile["host_syncs"] == 0 and profile["cpu_ops"] > 0
    assert any("scaled_dot_product" in name for name in profile["attention_ops"])
    timings = gpu_check.step_timings("cpu", True)
    assert [(row["batch"], row["tokens"]) for row in timings["rows"]] == [(2, 300), (1, 300)]
    assert all(row["ours_s"] > 0 for row in timings["rows"])
    # The peer's column needs transformers (the test extra; CI's oldest-releases run has none).
    with_peer = importlib.util.find_spec("transformers") is not None
    assert all(("ratio" in row) == with_peer for row in timings["rows"])
    assert all(row["ratio"] > 0 for row in timings["rows"] if with_peer)


@pytest.mark.slow
def test_the_whole_script_on_the_cpu(gpu_check, tmp_path):
    from typer.testing import CliRunner

    result = CliRunner().invoke(
        gpu_check.app, ["--device", "cpu", "--quick", "--out", str(tmp_path / "r.json")]
    )
    assert result.exit_code == 0, result.output
