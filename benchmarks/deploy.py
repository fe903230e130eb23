"""Ways to deploy one encoder, in one run: speed and size, then what they do to trained task scores.

    python benchmarks/deploy.py                      # base size, 4 docs of 4,000 pieces, 2 threads, tasks
    python benchmarks/deploy.py --size tiny --docs 2 --pieces 200 --no-tasks     # a smoke run
    python benchmarks/deploy.py --device cuda        # torch on the GPU; ORT's CUDA provider if it has one

Speed: the same random weights (an HF-format checkpoint with a BPE trained offline) as five
``nlp.pipe`` configurations: our ``longformer_encoder`` in torch float32 (the defaults) and
``dtype = "bfloat16"``, on ``backend = "onnxruntime"`` with the ``model.onnx`` and ``model.int8.onnx``
that ``python -m spacy_longformer export CHECKPOINT OUT --quantize int8`` writes, and
spacy-transformers' ``TransformerModel.v3`` on the same checkpoint folder (the peer). The position
table holds every document, so both libraries read each doc as one sequence: ours as one window,
spacy-transformers with ``doc_spans.v1`` (one span a doc, nothing cut). Each configuration runs in a
fresh subprocess: build and initialize, one warm-up doc, then the median of ``--repeats`` passes of
``nlp.pipe`` over the docs; a configuration slower than ``--budget`` allows (bfloat16 on a CPU without
native bf16 matmuls, LFW012) times fewer docs and passes, which the results record. Size is the
folder ``nlp.to_disk`` writes (what ``spacy.load`` and ``spacy package`` need), with the weights file
or graph beside it. Ratios compare with spacy-transformers and with torch float32 from the same run.

Tasks (``--tasks``, CPU, one thread): small textcat, NER and QA pipelines trained once with ``spacy train`` (the
shipped configs, synthetic data, a tiny random checkpoint), then scored on held-out dev docs with
their encoder as torch float32, torch bfloat16 and onnxruntime float32 (``spacy.load`` config
overrides) and onnxruntime int8 (``export model-best OUT --component NAME --quantize int8``, then
``onnx_path = OUT/model.int8.onnx`` as one more override). Writes ``deploy-{device}.json``, ``.png`` and ``.md`` to ``--out``.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from child import report, run_child
from memory import peak_rss

app = typer.Typer(add_completion=False)

PEER = "spacy-transformers"
BASELINE = "torch float32"
# Our encoder's settings per configuration; a graph is a file in the export folder.
ENCODER_SETTINGS: dict[str, dict[str, str]] = {
    "torch float32": {},
    "torch bfloat16": {"dtype": "bfloat16"},
    "onnxruntime float32": {"backend": "onnxruntime", "onnx_path": "model.onnx"},
    "onnxruntime int8": {"backend": "onnxruntime", "onnx_path": "model.int8.onnx"},
}
CONFIGURATIONS = (*ENCODER_SETTINGS, PEER)
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(
        vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128
    ),
    "base": dict(
        vocab_size=8000, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
    ),
}
WINDOWS = {"tiny": 32, "base": 512}
BASE_VOCAB = 50265  # longformer-base-4096's vocabulary, for what the sizes leave out

# The tasks: component, the scores reported (0-1 in spaCy, points here); updates and filler words per
# task. Measured with seed 0: textcat at 100 words sits at macro F 0.33 and jumps to 1.0 between
# steps 100 and 200 (at 250 words not within 300); QA at 100 words stalled at 51% exact after 150
# updates, at 250 it reaches 100% by step 50.
TASKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "textcat": ("longformer_textcat", ("cats_score", "accuracy")),
    "ner": ("longformer_ner", ("ents_f", "ents_p", "ents_r")),
    "qa": ("longformer_qa", ("qa_exact", "qa_f1")),
}
TASK_STEPS = {"textcat": 300, "ner": 100, "qa": 200}
TASK_WORDS = {"textcat": 100, "ner": 100, "qa": 250}
# The project's tiny checkpoint (projects/longformer: 2 x 64, window 32, 512 pieces); it learns at 3e-3.
TASK_CHECKPOINT = dict(
    vocab_size=1000,
    hidden_size=64,
    layers=2,
    heads=4,
    intermediate_size=128,
    attention_window=32,
    max_length=512,
)
TASK_LEARN_RATE = 0.003
SELECTION_DEV = 50  # dev docs `spacy train` picks model-best on; the scores come from other docs
INT8_MAX_COST = 1.0  # points: more on any score and int8 stays opt-in with a warning in the table


# --- Speed: one configuration in this (fresh) process ----------------------------------------------


def _build_nlp(configuration: str, checkpoint: Path, export_dir: Path) -> Any:
    import spacy

    nlp = spacy.blank("en")
    if configuration == PEER:
        import spacy_transformers  # noqa: F401  (registers the transformer factory)

        model = {
            "@architectures": "spacy-transformers.TransformerModel.v3",
            "name": str(checkpoint),
            "tokenizer_config": {"use_fast": True},
            "get_spans": {"@span_getters": "spacy-transformers.doc_spans.v1"},
        }
        nlp.add_pipe("transformer", config={"model": model})
    else:
        settings = dict(ENCODER_SETTINGS[configuration])
        if "onnx_path" in settings:
            settings["onnx_path"] = str(export_dir / settings["onnx_path"])
        nlp.add_pipe("longformer_encoder", config={"model": {"name": str(checkpoint), **settings}})
    nlp.initialize()
    return nlp


def _measure(
    *,
    configuration: str,
    checkpoint: str,
    export_dir: str,
    texts_file: str,
    pieces: list[int],
    threads: int,
    repeats: int,
    budget: float,
    batch_size: int,
    device: str,
    save_to: str,
) -> dict[str, Any]:
    """Warm up on one doc, time passes of ``nlp.pipe``, then save the pipeline and measure it."""
    import torch

    torch.set_num_threads(threads)
    if device == "cuda":
        import spacy

        spacy.require_gpu()
    texts = json.loads(Path(texts_file).read_text(encoding="utf8"))
    load = os.getloadavg()
    nlp = _build_nlp(configuration, Path(checkpoint), Path(export_dir))

    def run(batch: list[str]) -> float:
        start = time.perf_counter()
        for _ in nlp.pipe(batch, batch_size=batch_size):
            pass
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    warmup = run(texts[:1])
    # As many docs a pass as the warm-up's pace fits in the budget (all, unless slow), then passes
    # while the next one still fits.
    n_docs = max(1, min(len(texts), int(budget // max(warmup, 1e-9))))
    times: list[float] = []
    with peak_rss() as memory:
        while len(times) < repeats and (not times or sum(times) + statistics.median(times) <= budget):
            times.append(run(texts[:n_docs]))
    seconds = statistics.median(times)
    Path(save_to).parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(save_to)
    result: dict[str, Any] = {
        "timed_docs": n_docs,
        "passes": len(times),
        "times": times,
        "warmup_seconds": warmup,
        "seconds": seconds,
        "docs_per_s": n_docs / seconds,
        "pieces_per_s": sum(pieces[:n_docs]) / seconds,
        "peak_rss_bytes": memory["bytes"],
        "pipeline_bytes": _folder_bytes(Path(save_to)),
        "loadavg_at_start": load,
    }
    result.update(_weights_file(Path(save_to)))
    if configuration.startswith("onnxruntime"):
        import onnxruntime

        result["onnxruntime_providers"] = onnxruntime.get_available_providers()
    return result


def _weights_file(saved: Path) -> dict[str, Any]:
    """The saved pipeline's largest file: its weights (safetensors, the ONNX graph, or
    spacy-transformers' ``transformer/model``)."""
    path = max((p for p in saved.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    return {"weights_file": path.relative_to(saved).as_posix(), "weights_bytes": path.stat().st_size}


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _in_this_process(spec: dict[str, Any]) -> dict[str, Any] | str:
    """One configuration here (``--same-process``: no interpreter start-up, for quick looks and the
    smoke test; thread pools and allocator caches carry over between configurations)."""
    try:
        return _measure(**spec)
    except Exception as error:  # recorded like a child's failure, so the other configurations still run
        return f"failed: {type(error).__name__}: {str(error)[:300]}"


def _run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any] | str:
    """One configuration in a fresh interpreter (its own memory, thread pools and warnings)."""
    env = {"HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    return run_child(__file__, spec, timeout=timeout, env=env)


# --- Speed: the run ------------------------------------------------------------------------------


def _texts(tokenizer_dir: Path, n_docs: int, pieces: int) -> tuple[list[str], list[int]]:
    """``n_docs`` synthetic texts cut at ``pieces`` pieces (every word is at least one piece, so
    ``pieces`` words hold enough), and their piece counts (a cut may re-tokenize a piece apart)."""
    from spacy_longformer.random_checkpoint import synthetic_text
    from spacy_longformer.tokenization import LongformerTokenizer

    tokenizer = LongformerTokenizer.from_pretrained(tokenizer_dir)
    texts = []
    for seed in range(n_docs):
        text = synthetic_text(pieces, seed=1000 + seed)
        offsets = tokenizer.encode(text, add_special_tokens=False).offsets
        texts.append(text[: offsets[min(pieces, len(offsets)) - 1][1]])
    counts = [len(tokenizer.encode(text, add_special_tokens=False)) for text in texts]
    return texts, counts


def _speed(
    folder: Path,
    *,
    size: str,
    layers: int | None,
    docs: int,
    pieces: int,
    threads: int,
    repeats: int,
    budget: float,
    batch_size: int,
    device: str,
    timeout: float,
    fresh_processes: bool,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Checkpoint, export, texts, then each configuration in its own process: (settings, results)."""
    from spacy_longformer import cli
    from spacy_longformer.model import LongformerConfig
    from spacy_longformer.random_checkpoint import build_random_checkpoint

    sizes = {**SIZES[size], **({"num_hidden_layers": layers} if layers else {})}
    checkpoint, export_dir = folder / "checkpoint", folder / "export"
    print(f"building a random checkpoint ({sizes}, window {WINDOWS[size]}) ...", flush=True)
    build_random_checkpoint(
        checkpoint,
        attention_window=WINDOWS[size],
        # Room for every doc in one sequence, for both libraries (RoBERTa positions start at 2).
        max_position_embeddings=max(4098, pieces + 2),
        **sizes,
    )
    start = time.perf_counter()
    cli.export(
        checkpoint, export_dir, export_format="onnx", dtype="fp32", quantize="int8", component=None, opset=18
    )
    export_seconds = time.perf_counter() - start
    texts, counts = _texts(checkpoint, docs, pieces)
    texts_file = folder / "texts.json"
    texts_file.write_text(json.dumps(texts), encoding="utf8")
    config = LongformerConfig.from_json_file(checkpoint / "config.json")
    settings = {
        "size": size,
        "model": {
            "layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size,
            "heads": config.num_attention_heads,
            "intermediate_size": config.intermediate_size,
            "attention_window": config.attention_window[0],
            "vocab_size": config.vocab_size,
            "max_position_embeddings": config.max_position_embeddings,
        },
        "docs": docs,
        "pieces_per_doc": counts,
        "export_seconds": export_seconds,
        "spacy_transformers_spans": "doc_spans.v1: one span a doc, the whole doc as one sequence "
        "(it passes no global mask: local attention only; ours makes <s> global)",
    }
    results = []
    for i, configuration in enumerate(CONFIGURATIONS, 1):
        spec = dict(
            configuration=configuration,
            checkpoint=str(checkpoint),
            export_dir=str(export_dir),
            texts_file=str(texts_file),
            pieces=counts,
            threads=threads,
            repeats=repeats,
            budget=budget,
            batch_size=batch_size,
            device=device,
            save_to=str(folder / "saved" / configuration.replace(" ", "-")),
        )
        print(f"[{i}/{len(CONFIGURATIONS)}] {configuration:20}", end=" ... ", flush=True)
        measured = _run_child(spec, timeout) if fresh_processes else _in_this_process(spec)
        if isinstance(measured, str):
            print(measured, flush=True)
            results.append({"configuration": configuration, "error": measured})
            continue
        print(
            f"{measured['docs_per_s']:.3f} docs/s ({measured['timed_docs']} docs x {measured['passes']} "
            f"passes), {measured['pipeline_bytes'] / 2**20:,.1f} MiB on disk",
            flush=True,
        )
        results.append({"configuration": configuration, **measured})
        shutil.rmtree(spec["save_to"], ignore_errors=True)
    _add_ratios(results)
    return settings, results


def _add_ratios(results: list[dict[str, Any]]) -> None:
    """docs/s and size against the peer and torch float32 of this run (None where one failed)."""
    by_name = {r["configuration"]: r for r in results if "error" not in r}
    for r in results:
        for suffix, other in (("peer", by_name.get(PEER)), ("float32", by_name.get(BASELINE))):
            ok = "error" not in r and other is not None
            r[f"docs_per_s_vs_{suffix}"] = r["docs_per_s"] / other["docs_per_s"] if ok else None
            r[f"size_vs_{suffix}"] = r["pipeline_bytes"] / other["pipeline_bytes"] if ok else None


# --- Tasks ---------------------------------------------------------------------------------------


def _load_variants(
    pipeline: Path, component: str, folder: Path
) -> dict[str, tuple[Path, dict[str, str], str]]:
    """Each encoder variant of a trained pipeline: (folder to load, config overrides, how)."""
    from spacy_longformer import cli

    key = f"components.{component}.model.encoder"
    export_dir = folder / "export"
    cli.export(
        pipeline,
        export_dir,
        export_format="onnx",
        dtype="fp32",
        quantize="int8",
        component=component,
        opset=18,
    )
    onnx = {f"{key}.backend": "onnxruntime"}
    int8 = {**onnx, f"{key}.onnx_path": str(export_dir / "model.int8.onnx")}
    return {
        "torch float32": (pipeline, {}, "spacy.load(model-best)"),
        "torch bfloat16": (
            pipeline,
            {f"{key}.dtype": "bfloat16"},
            f'spacy.load(model-best, config={{"{key}.dtype": "bfloat16"}})',
        ),
        "onnxruntime float32": (
            pipeline,
            onnx,
            f'spacy.load(model-best, config={{"{key}.backend": "onnxruntime"}}): the saved weights exported '
            "at load",
        ),
        "onnxruntime int8": (
            pipeline,
            int8,
            f"export model-best OUT --component {component} --quantize int8, then spacy.load(model-best, "
            f'config={{"{key}.backend": "onnxruntime", "{key}.onnx_path": "OUT/model.int8.onnx"}})',
        ),
    }


def _score(
    path: Path, overrides: dict[str, str], component: str, dev: Path
) -> tuple[dict[str, float], list, list[float]]:
    """The component's scores on ``dev``, each doc's prediction (to count what changed) and its raw
    outputs: the categories' probabilities (textcat) or the answer's score (QA); none for NER."""
    import spacy
    from spacy.training import Corpus, Example

    nlp = spacy.load(path, config=overrides)
    examples = list(Corpus(dev)(nlp))
    predicted = list(nlp.pipe([eg.predicted for eg in examples]))
    scored = [Example(doc, eg.reference) for doc, eg in zip(predicted, examples, strict=True)]
    scores = {k: v for k, v in nlp.get_pipe(component).score(scored).items() if isinstance(v, float)}
    if component == "longformer_textcat":
        right = [
            max(d.cats, key=d.cats.get) == max(eg.reference.cats, key=eg.reference.cats.get)
            for d, eg in zip(predicted, examples, strict=True)
        ]
        scores["accuracy"] = sum(right) / len(right)
        labels = [max(d.cats, key=d.cats.get) for d in predicted]
        outputs = [p for d in predicted for _, p in sorted(d.cats.items())]
    elif component == "longformer_ner":
        labels = [[(e.start, e.end, e.label_) for e in d.ents] for d in predicted]
        outputs = []
    else:
        labels = [[(s.start, s.end) for s in d.spans["answer"]] for d in predicted]
        outputs = [d.spans["answer"].attrs.get("score", 0.0) for d in predicted]
    return scores, labels, outputs


def _tasks(
    folder: Path, *, n_train: int, n_dev: int, n_words: int | None, steps: int | None, seed: int
) -> dict[str, Any]:
    """Train each task once, then score held-out docs with every encoder variant. One thread: the
    tiny model gains nothing from more, and on a shared CPU each of torch's parallel regions waits
    for its slowest thread (textcat's 300 updates: 28 s on one thread, over 5 minutes on two beside
    another job's two)."""
    import torch
    from spacy.cli.train import train

    from spacy_longformer import cli
    from spacy_longformer.init_config import template

    torch.set_num_threads(1)
    corpus = folder / "corpus"
    selection = min(SELECTION_DEV, n_dev)
    words = {task: n_words or TASK_WORDS[task] for task in TASKS}
    for task in TASKS:
        cli.make_synthetic(
            task, corpus / task, n_train=n_train, n_dev=selection, n_words=words[task], seed=seed, lang="en"
        )
        # Held out: another seed's stream, never trained on nor used to pick model-best.
        cli.make_synthetic(
            task,
            corpus / task / "heldout",
            n_train=0,
            n_dev=n_dev,
            n_words=words[task],
            seed=seed + 1,
            lang="en",
        )
    checkpoint = folder / "checkpoint"
    cli.make_checkpoint(checkpoint, texts=sorted(corpus.glob("*/train.spacy")), seed=seed, **TASK_CHECKPOINT)
    results: dict[str, Any] = {}
    for task, (component, keys) in TASKS.items():
        n_steps = steps or TASK_STEPS[task]
        config = folder / f"{task}.cfg"
        config.write_text(template(task), encoding="utf8")
        start = time.perf_counter()
        train(
            config,
            folder / "training" / task,
            overrides={
                "paths.train": str(corpus / task / "train.spacy"),
                "paths.dev": str(corpus / task / "dev.spacy"),
                "paths.longformer": str(checkpoint),
                "system.seed": seed,
                "training.max_steps": n_steps,
                "training.eval_frequency": max(1, min(50, n_steps)),
                "training.optimizer.learn_rate.initial_rate": TASK_LEARN_RATE,
                "training.optimizer.learn_rate.warmup_steps": min(20, n_steps),
                "training.optimizer.learn_rate.total_steps": n_steps,
                "training.batcher.size": 1000,
            },
        )
        train_seconds = time.perf_counter() - start
        best = folder / "training" / task / "model-best"
        variants = _load_variants(best, component, folder / "variants" / task)
        scores, labels, outputs = {}, {}, {}
        for name, (path, overrides, _) in variants.items():
            heldout = corpus / task / "heldout" / "dev.spacy"
            scores[name], labels[name], outputs[name] = _score(path, overrides, component, heldout)
        reference = labels[BASELINE]
        results[task] = {
            "component": component,
            "train_docs": n_train,
            "selection_dev_docs": selection,
            "dev_docs": n_dev,
            "words": words[task],
            "steps": n_steps,
            "train_seconds": train_seconds,
            "loaded_as": {name: how for name, (_, _, how) in variants.items()},
            "scores": {name: {k: 100 * s[k] for k in keys} for name, s in scores.items()},
            "change": {
                name: {k: 100 * (s[k] - scores[BASELINE][k]) for k in keys}
                for name, s in scores.items()
                if name != BASELINE
            },
            "predictions_changed": {
                name: sum(a != b for a, b in zip(reference, other, strict=True))
                for name, other in labels.items()
                if name != BASELINE
            },
            # How far the outputs moved, where decisions did not: textcat probabilities, QA answer
            # scores (start + end logit); None for NER (its tags carry no score).
            "max_output_change": {
                name: max((abs(a - b) for a, b in zip(outputs[BASELINE], other, strict=True)), default=None)
                for name, other in outputs.items()
                if name != BASELINE
            },
        }
    over = [
        f"{task} {key} {change:+.1f}"
        for task, r in results.items()
        for key, change in r["change"]["onnxruntime int8"].items()
        if change < -INT8_MAX_COST
    ]
    return {"by_task": results, "int8_costs_over_1_point": over}


# --- Outputs -------------------------------------------------------------------------------------


def _plot(results: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in results if "error" not in r]
    names = [r["configuration"] for r in done]
    fig, (speed, size) = plt.subplots(1, 2, figsize=(11, 3.8))
    colours = ["#4c72b0" if name != PEER else "#999999" for name in names]
    bars = speed.barh(names, [r["docs_per_s"] for r in done], color=colours)
    speed.bar_label(bars, fmt="%.3g", padding=3)
    speed.set(xlabel="docs/s (higher is better)")
    bars = size.barh(names, [r["pipeline_bytes"] / 2**20 for r in done], color=colours)
    size.bar_label(bars, fmt="%.0f", padding=3)
    size.set(xlabel="saved pipeline, MiB (nlp.to_disk)")
    for ax in (speed, size):
        ax.margins(x=0.15)
        ax.invert_yaxis()
        ax.grid(True, axis="x", alpha=0.3)
    size.set_yticklabels([])
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _speed_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| configuration | docs/s | pieces/s | s/pass | docs x passes | peak RSS MiB | saved MiB | weights file "
        "| docs/s vs spacy-transformers | docs/s vs torch float32 | size vs spacy-transformers "
        "| size vs torch float32 |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['configuration']} | {r['error']} |" + " |" * 10)
            continue
        cells = [
            r["configuration"],
            f"{r['docs_per_s']:.3f}",
            f"{r['pieces_per_s']:,.0f}",
            f"{r['seconds']:.2f}",
            f"{r['timed_docs']} x {r['passes']}",
            f"{r['peak_rss_bytes'] / 2**20:,.0f}",
            f"{r['pipeline_bytes'] / 2**20:,.1f}",
            f"{r['weights_file']} ({r['weights_bytes'] / 2**20:,.1f} MiB)",
            *(
                _ratio(r[k])
                for k in ("docs_per_s_vs_peer", "docs_per_s_vs_float32", "size_vs_peer", "size_vs_float32")
            ),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _tasks_table(tasks: dict[str, Any]) -> str:
    encoders = list(ENCODER_SETTINGS)
    rows = [
        "| task (dev docs) | score | " + " | ".join(encoders) + " |",
        "|---|---|" + "---:|" * len(encoders),
    ]
    for task, r in tasks["by_task"].items():
        for key in r["scores"][BASELINE]:
            cells = [f"{task} ({r['dev_docs']})", key, f"{r['scores'][BASELINE][key]:.1f}"]
            cells += [
                f"{r['scores'][name][key]:.1f} ({r['change'][name][key]:+.1f})" for name in encoders[1:]
            ]
            rows.append("| " + " | ".join(cells) + " |")
        changed = [f"{r['predictions_changed'][name]}/{r['dev_docs']}" for name in encoders[1:]]
        rows.append(f"| {task} ({r['dev_docs']}) | predictions changed | - | " + " | ".join(changed) + " |")
        moved = [r["max_output_change"][name] for name in encoders[1:]]
        if moved[0] is not None:
            what = "a probability" if task == "textcat" else "an answer score"
            cells = " | ".join(f"{m:.2g}" for m in moved)
            rows.append(f"| {task} ({r['dev_docs']}) | max change of {what} | - | {cells} |")
    return "\n".join(rows)


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _markdown(meta: dict[str, Any], speed: list[dict[str, Any]], tasks: dict[str, Any] | None) -> str:
    model = meta["speed"]["model"]
    lines = [
        f"`{meta['command']}`",
        "",
        f"{meta['device']}, {meta['threads']} threads; load average {meta['loadavg_start'][0]:.2f} at the "
        f"start, {meta['loadavg_end'][0]:.2f} at the end. Random weights: {model['layers']} layers x "
        f"{model['hidden_size']} hidden, window {model['attention_window']}, vocabulary {model['vocab_size']}; "
        f"{meta['speed']['docs']} docs of {_span(meta['speed']['pieces_per_doc'])} pieces, each read as one "
        "sequence "
        f"(spacy-transformers: {meta['speed']['spacy_transformers_spans']}).",
        "",
        _speed_table(speed),
        "",
        "saved MiB: the folder `nlp.to_disk` writes (torch bfloat16 saves float32 weights, so its size "
        "is float32's; an onnxruntime pipeline holds its graph and no torch weights). s/pass: the "
        "median of the timed passes; docs x passes: what was timed within the budget.",
    ]
    if meta["speed"]["size"] == "base":
        extra = (BASE_VOCAB - model["vocab_size"]) * model["hidden_size"] * 4 / 2**20
        lines.append(
            f"The BPE trained on synthetic text has {model['vocab_size']:,} pieces; longformer-base-4096's "
            f"{BASE_VOCAB:,} would add {extra:,.0f} MiB to each float32 size and {extra / 4:,.0f} MiB to "
            "int8's (onnxruntime's quantizer stores the embedding tables as uint8 too)."
        )
    if tasks is not None:
        lines += [
            "",
            "Task scores on held-out dev docs, in points (change against torch float32):",
            "",
            _tasks_table(tasks),
            "",
            (
                "int8 costs more than 1 point on: "
                + ", ".join(tasks["int8_costs_over_1_point"])
                + " (it stays opt-in: only `export --quantize int8` makes it)"
                if tasks["int8_costs_over_1_point"]
                else "int8 is within 1 point of float32 on every score here (it stays opt-in: only "
                "`export --quantize int8` makes it)"
            ),
        ]
    return "\n".join(lines) + "\n"


@app.command()
def main(
    size: Annotated[str, typer.Option(help="Model size: tiny (2 x 64) or base (12 x 768).")] = "base",
    layers: Annotated[int | None, typer.Option(help="Layers, in place of the size's.")] = None,
    docs: Annotated[int, typer.Option(min=1, help="Documents timed in each pass.")] = 4,
    pieces: Annotated[int, typer.Option(min=2, help="Pieces per document.")] = 4000,
    threads: Annotated[int, typer.Option(min=1, help="torch and onnxruntime CPU threads.")] = 2,
    repeats: Annotated[int, typer.Option(min=1, help="Timed passes; the median is kept.")] = 3,
    budget: Annotated[
        float, typer.Option(help="Seconds of timed passes per configuration: a slower one times fewer.")
    ] = 120,
    batch_size: Annotated[int, typer.Option(min=1, help="nlp.pipe batch size.")] = 2,
    device: Annotated[str, typer.Option(help="cpu or cuda (speed only; tasks run on the CPU).")] = "cpu",
    tasks: Annotated[bool, typer.Option(help="Also train the tasks and compare their scores.")] = True,
    task_train: Annotated[int, typer.Option(min=1, help="Training docs per task.")] = 300,
    task_dev: Annotated[int, typer.Option(min=1, help="Held-out dev docs per task.")] = 200,
    task_words: Annotated[
        int | None,
        typer.Option(min=20, help="Filler words per task doc (default: textcat 100, ner 100, qa 250)."),
    ] = None,
    task_steps: Annotated[
        int | None, typer.Option(help="Updates per task (default: textcat 300, ner 100, qa 150).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the task data and training.")] = 0,
    fresh_processes: Annotated[
        bool,
        typer.Option(
            "--fresh-processes/--same-process",
            help="Each configuration in its own interpreter (clean memory and threads), or all in this one.",
        ),
    ] = True,
    timeout: Annotated[float, typer.Option(help="Seconds allowed per configuration's process.")] = 1800,
    out: Annotated[Path, typer.Option(help="Folder for deploy-DEVICE.json, .png and .md.")] = Path(
        "benchmarks/results"
    ),
    measure: Annotated[str, typer.Option(hidden=True, help="One configuration as JSON (internal).")] = "",
) -> None:
    """Speed and size of five deployments of one encoder, and int8/bf16 task scores against float32."""
    if measure:
        report(_measure(**json.loads(measure)))
        return
    if size not in SIZES or device not in ("cpu", "cuda"):
        raise typer.BadParameter(f"--size is one of {', '.join(SIZES)}; --device cpu or cuda")
    if device == "cuda" and not fresh_processes:
        raise typer.BadParameter(
            "--same-process is for the CPU: on cuda the tasks would follow it to the GPU"
        )
    import torch

    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "device": device,
        "threads": threads,
        "repeats": repeats,
        "budget_seconds": budget,
        "batch_size": batch_size,
        "fresh_processes": fresh_processes,
        "loadavg_start": os.getloadavg(),
        "cpu": _cpu_name(),
        "cpu_bf16_matmuls": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "versions": _versions(),
    }
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="longformer-deploy-") as tmp:
        settings, speed = _speed(
            Path(tmp) / "speed",
            size=size,
            layers=layers,
            docs=docs,
            pieces=pieces,
            threads=threads,
            repeats=repeats,
            budget=budget,
            batch_size=batch_size,
            device=device,
            timeout=timeout,
            fresh_processes=fresh_processes,
        )
        meta["speed"] = settings
        task_results = None
        if tasks:
            print("tasks: training textcat, ner and qa, then scoring each encoder variant ...", flush=True)
            task_results = _tasks(
                Path(tmp) / "tasks",
                n_train=task_train,
                n_dev=task_dev,
                n_words=task_words,
                steps=task_steps,
                seed=seed,
            )
    meta["loadavg_end"] = os.getloadavg()
    meta["seconds"] = time.perf_counter() - start
    stem = out / f"deploy-{device}"
    payload = {"meta": meta, "speed": speed, "tasks": task_results}
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf8")
    model = settings["model"]
    title = (
        f"nlp.pipe, {docs} docs of ~{pieces:,} pieces, {model['layers']} x {model['hidden_size']}, "
        f"{device}, {threads} threads"
    )
    _plot(speed, stem.with_suffix(".png"), title)
    markdown = _markdown(meta, speed, task_results)
    stem.with_suffix(".md").write_text(markdown, encoding="utf8")
    print("\n" + markdown)
    print(f"wrote {stem}.json, .png and .md in {meta['seconds']:.0f}s")


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in ("torch", "spacy", "onnxruntime", "spacy-transformers", "transformers", "spacy-longformer"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


if __name__ == "__main__":
    app()
