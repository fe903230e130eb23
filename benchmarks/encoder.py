"""Our Longformer against transformers' on the same random base-size weights, in one run.

    python benchmarks/encoder.py                       # CPU, 2 threads, fp32 + bf16, 1k/4k/16k tokens
    python benchmarks/encoder.py --device cuda         # the same on a GPU
    python benchmarks/encoder.py --lengths 1024 --dtypes float32 --repeats 1   # a quick look

Each measurement runs in a fresh subprocess (so peak memory is that run's alone): load the weights,
run once while tracking the resident-set high-water mark (CPU), run again while tracking tensor
memory (CPU: PyTorch's allocation events; CUDA: the allocator's peak), which also warms up, then
time ``--repeats`` runs (``--long-repeats`` above 4,096 tokens) and keep the median. Peak memory is
counted above what was held before the run (weights, inputs): activations, plus gradients for
forward+backward. Tensor memory is the figure compared ("memory ratio"); resident memory also counts
library start-up and the C allocator's caching and is shown beside it. Writes a JSON file, a
Markdown table and a PNG plot (time vs length) to --out.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from child import report, run_child
from memory import peak_rss, peak_tensor_bytes

app = typer.Typer(add_completion=False)

BASE = dict(
    vocab_size=50265,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    attention_window=512,
    type_vocab_size=1,
    layer_norm_eps=1e-5,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
    sep_token_id=2,
)


def _measure(
    *,
    impl: str,
    checkpoint: Path,
    length: int,
    dtype: str,
    mode: str,
    device: str,
    threads: int,
    repeats: int,
    window: int | None,
) -> dict[str, Any]:
    """One configuration, in this (fresh) process."""
    import torch

    from spacy_longformer.model.allocator import keep_freed_memory

    # The peer runs with the freed-memory reuse our CPU forward turns on too, so the ratio is the
    # models' code, not malloc's (SPACY_LONGFORMER_MALLOC=system: both without it).
    keep_freed_memory()
    torch.set_num_threads(threads)
    torch_dtype = getattr(torch, dtype)
    if impl == "transformers":
        import transformers

        overrides = {} if window is None else {"attention_window": window}
        model = transformers.LongformerModel.from_pretrained(checkpoint, **overrides)
    else:
        from spacy_longformer.model import LongformerConfig, LongformerModel

        config = LongformerConfig.from_json_file(checkpoint / "config.json")
        if window is not None:
            config.attention_window = [window] * config.num_hidden_layers
        model = LongformerModel.from_pretrained(checkpoint, config=config)
    model = model.to(device=device, dtype=torch_dtype).eval()
    gen = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, BASE["vocab_size"], (1, length), generator=gen)
    input_ids[0, 0], input_ids[0, -1] = BASE["bos_token_id"], BASE["eos_token_id"]
    input_ids = input_ids.to(device)
    global_attention_mask = torch.zeros_like(input_ids)
    global_attention_mask[:, 0] = 1

    def run() -> None:
        with torch.set_grad_enabled(mode == "forward+backward"):
            out = model(input_ids=input_ids, global_attention_mask=global_attention_mask).last_hidden_state
            if mode == "forward+backward":
                out.float().pow(2).mean().backward()
                model.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()

    rss = None
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        with peak_rss() as memory:
            run()
        rss = memory["bytes"]
        peak = peak_tensor_bytes(run)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "times": times, "peak_bytes": peak, "rss_bytes": rss}


def _run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any] | str:
    return run_child(__file__, spec, timeout=timeout)


def _build_checkpoint(path: Path, max_length: int) -> None:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.LongformerConfig(**BASE, max_position_embeddings=max_length + 2)
    transformers.LongformerModel(config).save_pretrained(path)


def _plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    combos = sorted({(r["dtype"], r["mode"]) for r in results if r["window"] is None})
    fig, axes = plt.subplots(1, len(combos), figsize=(5 * len(combos), 4), squeeze=False)
    for ax, (dtype, mode) in zip(axes[0], combos, strict=True):
        for impl, style in (("ours", "o-"), ("transformers", "s--")):
            points = sorted(
                (r["length"], r["seconds"])
                for r in results
                if r["impl"] == impl
                and r["dtype"] == dtype
                and r["mode"] == mode
                and r["window"] is None
                and r.get("seconds") is not None
            )
            if points:
                ax.plot(*zip(*points, strict=True), style, label=impl)
        ax.set(title=f"{dtype}, {mode}", xlabel="tokens", ylabel="seconds", xscale="log", yscale="log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("Longformer base (12 layers, window 512, <s> global): time per document")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


@app.command()
def main(
    lengths: Annotated[str, typer.Option(help="Comma-separated token counts.")] = "1024,4096,16384",
    dtypes: Annotated[str, typer.Option(help="Comma-separated torch dtypes.")] = "float32,bfloat16",
    modes: Annotated[str, typer.Option(help="forward and/or forward+backward.")] = "forward,forward+backward",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    threads: Annotated[int, typer.Option(help="torch CPU threads.")] = 2,
    repeats: Annotated[int, typer.Option(help="Timed runs after the warm-up; the median is kept.")] = 3,
    long_repeats: Annotated[int, typer.Option(help="Timed runs for inputs over 4,096 tokens.")] = 1,
    peer_backward_max: Annotated[
        int, typer.Option(help="Longest input for transformers' forward+backward (its memory grows fast).")
    ] = 4096,
    window_sweep: Annotated[
        bool, typer.Option(help="Also time window 256 against 512 at 4096 tokens.")
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds allowed per measurement.")] = 1800,
    out: Annotated[Path, typer.Option(help="Folder for encoder.json and encoder.png.")] = Path(
        "benchmarks/out"
    ),
    measure: Annotated[str, typer.Option(hidden=True, help="One measurement as JSON (internal).")] = "",
) -> None:
    """Time and peak memory of ours vs transformers; prints a ratio table, writes JSON and a PNG."""
    if measure:
        spec = json.loads(measure)
        spec["checkpoint"] = Path(spec["checkpoint"])
        report(_measure(**spec))
        return
    length_list = [int(x) for x in lengths.split(",")]
    out.mkdir(parents=True, exist_ok=True)
    plan: list[dict[str, Any]] = []
    for dtype in dtypes.split(","):
        for mode in modes.split(","):
            for length in length_list:
                for impl in ("ours", "transformers"):
                    if impl == "transformers" and mode == "forward+backward" and length > peer_backward_max:
                        continue
                    plan.append(dict(impl=impl, dtype=dtype, mode=mode, length=length, window=None))
    if window_sweep:
        for impl in ("ours", "transformers"):
            for window in (512, 256):
                plan.append(dict(impl=impl, dtype="float32", mode="forward", length=4096, window=window))
    results = []
    with tempfile.TemporaryDirectory(prefix="longformer-bench-") as tmp:
        checkpoint = Path(tmp)
        print(f"building random base-size weights for up to {max(length_list)} tokens ...", flush=True)
        _build_checkpoint(checkpoint, max(length_list + [4096]))
        for i, item in enumerate(plan, 1):
            spec = dict(
                impl=item["impl"],
                checkpoint=str(checkpoint),
                length=item["length"],
                dtype=item["dtype"],
                mode=item["mode"],
                device=device,
                threads=threads,
                repeats=repeats if item["length"] <= 4096 else long_repeats,
                window=item["window"],
            )
            label = (
                f"[{i}/{len(plan)}] {item['impl']:12} {item['dtype']:8} {item['mode']:16} {item['length']:>6}"
            )
            if item["window"]:
                label += f" window {item['window']}"
            print(label, end=" ... ", flush=True)
            measured = _run_child(spec, timeout)
            if isinstance(measured, str):
                print(measured, flush=True)
                results.append({**item, "error": measured, "seconds": None})
                continue
            print(f"{measured['seconds']:.2f}s, peak {measured['peak_bytes'] / 2**20:.0f} MiB", flush=True)
            results.append({**item, **measured})
    table = _ratio_table(results)
    print("\n" + table)
    meta = {
        "device": device,
        "threads": threads,
        "repeats": repeats,
        "config": BASE,
        "compilations": 0,
        "cpu": torch_cpu_capability(),
        "malloc": "system"
        if os.environ.get("SPACY_LONGFORMER_MALLOC") == "system"
        else "freed memory reused",
        "load_average": os.getloadavg(),
        "command": sys.argv,
    }
    (out / "encoder.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    _plot(results, out / "encoder.png")
    (out / "encoder.md").write_text(table + "\n")
    print(f"\nwrote {out / 'encoder.json'}, {out / 'encoder.png'} and {out / 'encoder.md'}")


def torch_cpu_capability() -> str:
    """The SIMD level torch dispatches to (AVX2, AVX512): it decides whether bf16 is fast."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def _ratio_table(results: list[dict[str, Any]]) -> str:
    def find(impl: str, **key: Any) -> dict[str, Any] | None:
        for r in results:
            if r["impl"] == impl and all(r[k] == v for k, v in key.items()) and r.get("seconds") is not None:
                return r
        return None

    rows = [
        "| dtype | mode | tokens | ours s | transformers s | time ratio | ours peak MiB "
        "| transformers peak MiB | memory ratio | resident memory ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    keys = sorted({(r["dtype"], r["mode"], r["length"]) for r in results if r["window"] is None})
    for dtype, mode, length in keys:
        ours = find("ours", dtype=dtype, mode=mode, length=length, window=None)
        peer = find("transformers", dtype=dtype, mode=mode, length=length, window=None)
        if ours is None:
            continue
        cells = [dtype, mode, str(length), f"{ours['seconds']:.2f}"]
        if peer is None:
            cells += ["-", "-", f"{ours['peak_bytes'] / 2**20:.0f}", "-", "-", "-"]
        else:
            rss = "-"
            if ours.get("rss_bytes") and peer.get("rss_bytes"):
                rss = f"{ours['rss_bytes'] / peer['rss_bytes']:.2f}x"
            cells += [
                f"{peer['seconds']:.2f}",
                f"{ours['seconds'] / peer['seconds']:.2f}x",
                f"{ours['peak_bytes'] / 2**20:.0f}",
                f"{peer['peak_bytes'] / 2**20:.0f}",
                f"{ours['peak_bytes'] / max(peer['peak_bytes'], 1):.2f}x",
                rss,
            ]
        rows.append("| " + " | ".join(cells) + " |")
    lines = ["\n".join(rows), ""]
    for dtype in sorted({r["dtype"] for r in results}):
        short = find("ours", dtype=dtype, mode="forward", length=4096, window=None)
        long = find("ours", dtype=dtype, mode="forward", length=16384, window=None)
        if short and long:
            lines.append(
                f"ours, {dtype} forward: 16384 tokens take {long['seconds'] / short['seconds']:.2f}x the "
                "4096-token time (linear would be 4x)"
            )
    for impl in ("ours", "transformers"):
        wide = find(impl, dtype="float32", mode="forward", length=4096, window=512)
        narrow = find(impl, dtype="float32", mode="forward", length=4096, window=256)
        if wide and narrow:
            lines.append(
                f"{impl}, float32 forward at 4096 tokens: window 256 takes {narrow['seconds']:.2f}s vs "
                f"{wide['seconds']:.2f}s at window 512 ({narrow['seconds'] / wide['seconds']:.2f}x)"
            )
    lines.append(
        "compilation: none (eager PyTorch: banded attention through fused SDPA in float32, batched matmuls "
        "in half precision on CPU; oneDNN linear layers for CPU inference), so no input length compiles anything"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    app()
