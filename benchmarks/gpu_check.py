"""Five minutes on one GPU: does the encoder run right and fast on CUDA?

    pip install torch spacy-longformer transformers   # transformers only for the timing peer
    python benchmarks/gpu_check.py --out gpu_check.json

Steps, each recorded in the JSON (an error in one is recorded and the rest still run):
1. versions (torch, CUDA, cuDNN, the GPU, spaCy, thinc, CuPy, transformers);
2. the batched attention path against the reference path on CUDA in float32, forward and gradients,
   under each SDPA backend torch offers (a backend that can't run our masked call says why);
3. float16 autocast and bfloat16 weights: outputs and gradients finite, and close to float32;
4. gradient checkpointing on vs off: the same gradients, and the memory each takes;
5. a profile of one base-size layer at 8 x 4,096 tokens: the attention kernel CUDA ran, the number
   of kernel launches, and the host syncs;
6. forward+backward at 8 x 4,096, 1 x 4,096 and 32 x 1,024 (base size, float16 autocast) against
   transformers, with peak memory with and without checkpointing;
7. `spacy train --gpu-id 0` for 20 steps on the synthetic NER task with `init-config ner --gpu`.
Prints a table and exits 1 if a correctness check (2-4, 7) failed. `--device cpu --quick` runs
every step small on the CPU (what the test suite does, to keep this script working).
"""

import json
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import torch
import typer

from spacy_longformer.model import LongformerConfig, LongformerModel

app = typer.Typer(add_completion=False)

BASE = dict(
    vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
    attention_window=512, type_vocab_size=1, layer_norm_eps=1e-5, max_position_embeddings=4098,
)  # fmt: skip
SMALL = dict(
    vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
    attention_window=16, type_vocab_size=1, layer_norm_eps=1e-5, max_position_embeddings=514,
)  # fmt: skip


def _inputs(batch: int, length: int, *, device: str, vocab: int, n_global: int = 1, seed: int = 0):
    """Rows of different lengths (the last ones padded), ``<s>`` plus a few tokens global."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, length), generator=gen)
    ids[:, 0] = 0
    mask = torch.ones(batch, length, dtype=torch.long)
    for row in range(1, batch):
        cut = length - (row * length) // (2 * batch)
        ids[row, cut:] = 1
        mask[row, cut:] = 0
    glob = torch.zeros_like(ids)
    glob[:, :n_global] = 1
    return {
        k: v.to(device)
        for k, v in {"input_ids": ids, "attention_mask": mask, "global_attention_mask": glob}.items()
    }


def _model(sizes: dict, *, device: str, seed: int = 0, **settings: Any) -> LongformerModel:
    torch.manual_seed(seed)
    model = LongformerModel(LongformerConfig(**sizes), **settings).to(device)
    for module in model.modules():  # dropout off: runs must be comparable
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "dropout", None), float):
            module.dropout = 0.0
    return model


def _forward_backward(model: LongformerModel, inputs: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(**inputs).last_hidden_state
    real = inputs["attention_mask"].bool()
    (out[real].float() ** 2).mean().backward()
    grads = {
        name: p.grad.detach().float().clone() for name, p in model.named_parameters() if p.grad is not None
    }
    return out.detach().float(), grads


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def step_versions(device: str, quick: bool) -> dict:
    import spacy
    import thinc

    import spacy_longformer

    info = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
        "spacy": spacy.__version__,
        "thinc": thinc.__version__,
        "spacy_longformer": spacy_longformer.__version__,
    }
    for name in ("cupy", "transformers"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    return info


def step_parity(device: str, quick: bool) -> dict:
    """Reference vs batched (sdpa and gemm) in float32, under each SDPA backend."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    sizes = SMALL
    inputs = _inputs(3, 200 if quick else 1000, device=device, vocab=sizes["vocab_size"], n_global=3)
    reference = _model(sizes, device=device, attn_implementation="reference")
    expected, expected_grads = _forward_backward(reference, inputs)
    real = inputs["attention_mask"].bool()
    results: dict[str, Any] = {}
    backends = {"math": SDPBackend.MATH, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                "flash": SDPBackend.FLASH_ATTENTION, "cudnn": getattr(SDPBackend, "CUDNN_ATTENTION", None)}  # fmt: skip
    for name, backend in backends.items():
        if backend is None:
            results[name] = "not in this torch"
            continue
        for implementation in ("sdpa", "gemm"):
            model = _model(sizes, device=device, attn_implementation=implementation)
            try:
                with sdpa_kernel([backend]):
                    got, grads = _forward_backward(model, inputs)
            except RuntimeError as error:
                results[f"{name}/{implementation}"] = f"can't run: {str(error).splitlines()[0][:120]}"
                continue
            # A folded global key bias gets no gradient on the fast path: the reference's is ~0.
            names = expected_grads.keys() | grads.keys()
            zeros = torch.zeros(())
            results[f"{name}/{implementation}"] = {
                "output": _max_diff(got[real], expected[real]),
                "gradients": max(_max_diff(grads.get(k, zeros), expected_grads.get(k, zeros)) for k in names),
            }
    checked = [v for v in results.values() if isinstance(v, dict)]
    results["ok"] = bool(checked) and all(v["output"] <= 1e-5 and v["gradients"] <= 1e-4 for v in checked)
    return results


def step_precision(device: str, quick: bool) -> dict:
    """float16 autocast (CUDA) and bfloat16 weights: finite, and near float32."""
    sizes = SMALL
    inputs = _inputs(2, 150 if quick else 600, device=device, vocab=sizes["vocab_size"])
    real = inputs["attention_mask"].bool()
    expected, expected_grads = _forward_backward(_model(sizes, device=device), inputs)
    results: dict[str, Any] = {}
    runs: dict[str, Callable[[], tuple]] = {
        "bfloat16": lambda: _forward_backward(_model(sizes, device=device).to(torch.bfloat16), inputs),
    }
    if device == "cuda":

        def fp16() -> tuple:
            with torch.autocast("cuda", dtype=torch.float16):
                return _forward_backward(_model(sizes, device=device), inputs)

        runs["float16 autocast"] = fp16
    for name, run in runs.items():
        got, grads = run()
        finite = bool(torch.isfinite(got).all()) and all(
            bool(torch.isfinite(g).all()) for g in grads.values()
        )
        scale = float(expected[real].abs().max())
        results[name] = {
            "finite": finite,
            "output_rel": _max_diff(got[real], expected[real]) / scale,
            "gradients_rel": max(
                _max_diff(grads[k], expected_grads[k]) / float(expected_grads[k].abs().max() + 1e-12)
                for k in grads
            ),
        }
    results["ok"] = all(
        v["finite"] and v["output_rel"] < 0.1 for v in results.values() if isinstance(v, dict)
    )
    return results


def _peak(run: Callable[[], Any], device: str) -> tuple[Any, float | None]:
    if device != "cuda":
        return run(), None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    out = run()
    torch.cuda.synchronize()
    return out, (torch.cuda.max_memory_allocated() - before) / 2**20


def step_checkpointing(device: str, quick: bool) -> dict:
    sizes = SMALL if quick else {**BASE, "num_hidden_layers": 4}
    inputs = _inputs(2, 300 if quick else 4096, device=device, vocab=sizes["vocab_size"])
    results = {}
    grads = {}
    for flag in (False, True):
        model = _model(sizes, device=device, gradient_checkpointing=flag).train()
        (_, grads[flag]), peak = _peak(lambda model=model: _forward_backward(model, inputs), device)
        results[f"peak_mib_checkpointing_{'on' if flag else 'off'}"] = peak
    results["max_grad_diff"] = max(_max_diff(grads[True][k], grads[False][k]) for k in grads[False])
    results["ok"] = results["max_grad_diff"] <= 1e-4
    return results


def step_profile(device: str, quick: bool) -> dict:
    """One layer at 8 x 4,096: which attention kernel, how many launches, how many host syncs."""
    from torch.profiler import ProfilerActivity, profile

    from spacy_longformer.model.attention import AttentionMask

    sizes = SMALL if quick else BASE
    model = _model({**sizes, "num_hidden_layers": 1}, device=device)
    inputs = _inputs(8, 300 if quick else 4096, device=device, vocab=sizes["vocab_size"])
    layer = model.layers[0]
    hidden = torch.randn(*inputs["input_ids"].shape, sizes["hidden_size"], device=device)
    mask = AttentionMask.from_masks(inputs["attention_mask"], inputs["global_attention_mask"])
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with torch.autocast(device, dtype=torch.float16, enabled=device == "cuda"):
        layer(hidden, mask)  # the mask's per-forward layout
        if device == "cuda":
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            layer(hidden, mask)
            if device == "cuda":
                torch.cuda.synchronize()
    events = prof.key_averages()
    names = [e.key for e in events]
    kernels = [
        e
        for e in events
        if getattr(e, "device_type", None) is not None and "cuda" in str(e.device_type).lower()
    ]
    attention = sorted(
        {n for n in names if any(k in n.lower() for k in ("attention", "fmha", "flash", "cudnn"))}
    )
    return {
        "attention_ops": attention,
        "kernel_launches": sum(e.count for e in kernels) if kernels else None,
        "cpu_ops": sum(e.count for e in events),
        "host_syncs": sum(e.count for e in events if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize", "aten::_local_scalar_dense", "aten::item")),
    }  # fmt: skip


def _time(run: Callable[[], Any], device: str, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def step_timings(device: str, quick: bool) -> dict:
    sizes = SMALL if quick else BASE
    shapes = [(2, 300), (1, 300)] if quick else [(8, 4096), (1, 4096), (32, 1024)]
    dtype = torch.float16 if device == "cuda" else torch.bfloat16
    rows = []
    try:
        import transformers
    except ImportError:
        transformers = None
    for batch, length in shapes:
        inputs = _inputs(batch, length, device=device, vocab=sizes["vocab_size"])
        row: dict[str, Any] = {"batch": batch, "tokens": length}
        for flag in (False, True):
            model = _model(sizes, device=device, gradient_checkpointing=flag).train()

            def run(model=model, inputs=inputs):
                with torch.autocast(device, dtype=dtype):
                    return _forward_backward(model, inputs)

            key = "ours_checkpointing" if flag else "ours"
            _, row[f"{key}_peak_mib"] = _peak(run, device)
            row[f"{key}_s"] = _time(run, device, 1 if quick else 3)
        if transformers is not None:
            config = transformers.LongformerConfig(
                **sizes, pad_token_id=1, bos_token_id=0, eos_token_id=2, sep_token_id=2
            )
            peer = transformers.LongformerModel(config).to(device).train()

            def run_peer(peer=peer, inputs=inputs):
                with torch.autocast(device, dtype=dtype):
                    peer.zero_grad(set_to_none=True)
                    out = peer(**inputs).last_hidden_state
                    (out.float() ** 2).mean().backward()

            row["transformers_s"] = _time(run_peer, device, 1 if quick else 3)
            row["ratio"] = row["ours_s"] / row["transformers_s"]
        rows.append(row)
    return {"rows": rows, "dtype": str(dtype)}


def step_train(device: str, quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        python = sys.executable
        commands = [
            [python, "-m", "spacy_longformer", "make-synthetic", "ner", str(root / "corpus"),
             "--n-train", "20" if quick else "200", "--n-dev", "10", "--n-words", "60" if quick else "600"],
            [python, "-m", "spacy_longformer", "make-checkpoint", str(root / "checkpoint"),
             "--texts", str(root / "corpus" / "train.spacy"), "--max-length", "510"],
            [python, "-m", "spacy_longformer", "init-config", "ner", str(root / "ner.cfg")]
            + ([] if device == "cpu" else ["--gpu"]),
            [python, "-m", "spacy", "train", str(root / "ner.cfg"), "--output", str(root / "out"),
             "--paths.train", str(root / "corpus" / "train.spacy"), "--paths.dev", str(root / "corpus" / "dev.spacy"),
             "--paths.longformer", str(root / "checkpoint"), "--training.max_steps", "2" if quick else "20",
             "--training.eval_frequency", "10", "--training.optimizer.learn_rate.initial_rate", "0.003",
             "--gpu-id", "0" if device == "cuda" else "-1"],
        ]  # fmt: skip
        start = time.perf_counter()
        for command in commands:
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if result.returncode:
                return {"ok": False, "command": " ".join(command[1:4]), "stderr": result.stderr[-2000:]}
        return {"ok": (root / "out" / "model-last").is_dir(), "seconds": time.perf_counter() - start}


STEPS = {
    "versions": step_versions,
    "parity": step_parity,
    "precision": step_precision,
    "checkpointing": step_checkpointing,
    "profile": step_profile,
    "timings": step_timings,
    "train": step_train,
}


@app.command()
def main(
    out: Annotated[Path, typer.Option(help="JSON results.")] = Path("gpu_check.json"),
    device: Annotated[str, typer.Option(help="cuda, or cpu to check the script itself.")] = "cuda",
    quick: Annotated[bool, typer.Option(help="Small sizes everywhere (seconds on a CPU).")] = False,
) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        typer.echo("No CUDA device: run on a GPU machine, or pass --device cpu --quick to check the script.")
        raise typer.Exit(1)
    results: dict[str, Any] = {}
    start = time.perf_counter()
    for name, step in STEPS.items():
        step_start = time.perf_counter()
        try:
            results[name] = step(device, quick)
        except Exception as error:  # a check script records every step, whatever fails
            results[name] = {
                "ok": False,
                "error": f"{type(error).__name__}: {error}",
                "trace": traceback.format_exc()[-2000:],
            }
        results[name]["seconds"] = round(time.perf_counter() - step_start, 2)
        typer.echo(f"{name:<14} {results[name]['seconds']:>7.1f}s  {_summary(results[name])}")
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf8")
    for row in results.get("timings", {}).get("rows", []):
        typer.echo(
            "  " + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
        )
    typer.echo(f"total {results['total_seconds']}s -> {out}")
    failed = [name for name, value in results.items() if isinstance(value, dict) and value.get("ok") is False]
    if failed:
        typer.echo(f"failed: {', '.join(failed)}")
        raise typer.Exit(1)


def _summary(result: dict) -> str:
    if "error" in result:
        return "ERROR " + result["error"][:100]
    if "ok" in result:
        return "ok" if result["ok"] else "FAILED"
    return ""


if __name__ == "__main__":
    app()
