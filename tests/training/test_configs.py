"""The shipped configs under `spacy train`, `spacy evaluate` and `spacy package`, as a user runs them.

Every config trains for a few steps on a tiny random checkpoint and small synthetic data in a
subprocess (`python -m spacy train ...`, no `--code`: entry points register everything), then
`spacy evaluate` scores the saved pipeline and `spacy.load` reproduces those scores here.

The slow tests (`python -m pytest -m slow tests/training`) build `spacy package` wheels, install them
in a fresh virtual environment next to a non-editable install of this repository, and check that the
installed pipelines predict what the saved ones do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import spacy
import torch
from spacy.training import Corpus
from spacy.training.initialize import init_nlp

from spacy_longformer.data import synthetic_ner, synthetic_qa, synthetic_textcat, write_docbin
from spacy_longformer.random_checkpoint import build_random_checkpoint

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
# One intra-op thread: the tiny model runs many small ops, and on a small shared machine a second
# thread waiting for a busy core makes each of them take a scheduler tick (a 50x slowdown measured
# on 2 cores). One thread also keeps the numbers of the subprocesses and of this process alike.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
N_TRAIN, N_DEV, N_WORDS = 16, 8, 60


@dataclass(frozen=True)
class Task:
    config: str
    component: str
    make_docs: object
    # The task's scores in `spacy evaluate`'s JSON (under the component with --per-component).
    score_keys: tuple[str, ...]
    per_component: bool = False


TASKS = {
    "textcat": Task("textcat.cfg", "longformer_textcat", synthetic_textcat, ("cats_score",)),
    "textcat_multilabel": Task(
        "textcat_multilabel.cfg", "longformer_textcat_multilabel", synthetic_textcat, ("cats_score",)
    ),
    "ner": Task("ner.cfg", "longformer_ner", synthetic_ner, ("ents_f", "ents_p", "ents_r")),
    # `spacy evaluate --output` writes only spaCy's own metrics unless asked per component.
    "qa": Task("qa.cfg", "longformer_qa", synthetic_qa, ("qa_exact", "qa_f1"), per_component=True),
    "ner_transition": Task("ner_transition.cfg", "ner", synthetic_ner, ("ents_f", "ents_p", "ents_r")),
}
DATA = {
    "textcat": "textcat",
    "textcat_multilabel": "textcat",
    "ner": "ner",
    "qa": "qa",
    "ner_transition": "ner",
}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO,
        timeout=timeout,
    )


def _output(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Train/dev DocBins per task and one tiny checkpoint whose BPE was trained on all their texts."""
    root = tmp_path_factory.mktemp("corpus")
    nlp = spacy.blank("en")
    texts = []
    for name, make_docs in (("textcat", synthetic_textcat), ("ner", synthetic_ner), ("qa", synthetic_qa)):
        docs = make_docs(nlp, N_TRAIN + N_DEV, n_words=N_WORDS, seed=0)
        write_docbin(docs[:N_TRAIN], root / name / "train.spacy")
        write_docbin(docs[N_TRAIN:], root / name / "dev.spacy")
        texts += [doc.text for doc in docs]
    build_random_checkpoint(
        root / "checkpoint",
        texts=texts,
        vocab_size=600,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        attention_window=16,
        max_position_embeddings=258,
        seed=0,
    )
    return root


def _train(task: str, corpus: Path, output: Path, *extra: str) -> subprocess.CompletedProcess:
    data = corpus / DATA[task]
    return _run(
        sys.executable, "-m", "spacy", "train", CONFIGS / TASKS[task].config,
        "--paths.train", data / "train.spacy",
        "--paths.dev", data / "dev.spacy",
        "--paths.longformer", corpus / "checkpoint",
        "--training.max_steps", "4",
        "--training.eval_frequency", "2",
        "--training.optimizer.learn_rate.warmup_steps", "1",
        "--training.optimizer.learn_rate.initial_rate", "3e-3",
        "--output", output,
        *extra,
    )  # fmt: skip


@pytest.fixture(scope="module", params=list(TASKS))
def trained(request, corpus, tmp_path_factory):
    task = request.param
    output = tmp_path_factory.mktemp(f"trained-{task}")
    start = time.perf_counter()
    result = _train(task, corpus, output)
    print(f"spacy train {TASKS[task].config}: {time.perf_counter() - start:.1f}s")
    return task, output, result


def test_train_writes_pipelines_and_logs_loss_and_scores(trained):
    task, output, result = trained
    assert result.returncode == 0, _output(result)
    for name in ("model-best", "model-last"):
        assert (output / name / "config.cfg").is_file(), name
        assert (output / name / "meta.json").is_file(), name
    lines = result.stdout.splitlines()
    header = next((line for line in lines if line.startswith("E ")), None)
    assert header is not None, _output(result)
    columns = header.split()
    assert columns[:2] == ["E", "#"]
    assert "LOSS" in columns, header
    with (CONFIGS / TASKS[task].config).open() as file:
        weights = re.search(r"\[training\.score_weights\]\n((?:\w+ = .*\n)+)", file.read()).group(1)
    for key in re.findall(r"^(\w+) =", weights, flags=re.M):
        assert key.upper() in columns, (key, header)
    assert columns[-1] == "SCORE"
    # One row per evaluation (steps 0, 2, 4), one number per column; the loss columns take two
    # words each in the header ("LOSS LONGF...").
    rows = [line.split() for line in lines if re.match(r"^\s+\d+\s+\d+\s", line)]
    assert [int(row[1]) for row in rows] == [0, 2, 4], _output(result)
    n_losses = columns.count("LOSS")
    assert all(len(row) == len(columns) - n_losses for row in rows), rows
    speed = columns.index("SPEED") - n_losses
    assert all(float(row[speed]) > 0 for row in rows), rows  # words per second
    assert all(float(value) >= 0 for row in rows for value in row[2:]), rows


def _evaluate(output: Path, dev: Path, metrics: Path, *extra: str) -> dict:
    result = _run(
        sys.executable, "-m", "spacy", "evaluate", output / "model-last", dev, "--output", metrics, *extra
    )
    assert result.returncode == 0, _output(result)
    return json.loads(metrics.read_text(encoding="utf8"))


def test_evaluate_writes_the_task_scores_and_spacy_load_reproduces_them(trained, corpus, tmp_path):
    task, output, result = trained
    assert result.returncode == 0, _output(result)
    spec = TASKS[task]
    dev = corpus / DATA[task] / "dev.spacy"
    if spec.per_component:
        metrics = _evaluate(output, dev, tmp_path / "metrics.json", "--per-component")[spec.component]
    else:
        metrics = _evaluate(output, dev, tmp_path / "metrics.json")
        assert metrics["speed"] > 0  # words per second
    for key in spec.score_keys:
        assert isinstance(metrics[key], float) and 0.0 <= metrics[key] <= 1.0, (key, metrics)
    nlp = spacy.load(output / "model-last")
    assert nlp.pipe_names == spacy.util.load_config(output / "model-last" / "config.cfg")["nlp"]["pipeline"]
    scores = nlp.evaluate(list(Corpus(dev)(nlp)))
    for key in spec.score_keys:
        assert scores[key] == pytest.approx(metrics[key], abs=1e-9), key


def test_resume_training_and_initialize_on_the_trained_pipeline(trained, corpus):
    """spaCy's own entry points on a trained pipeline: `resume_training` resolves the optimizer
    block alone (no interpolation from [training]), and `initialize` reloads the checkpoint."""
    task, output, result = trained
    assert result.returncode == 0, _output(result)
    nlp = spacy.load(output / "model-last")
    examples = list(Corpus(corpus / DATA[task] / "train.spacy")(nlp))[:4]
    optimizer = nlp.resume_training()
    losses = nlp.update(examples, sgd=optimizer)
    assert losses and all(value >= 0 for value in losses.values()), losses
    nlp.initialize(lambda: examples)
    assert nlp.update(examples, sgd=nlp.create_optimizer())


@pytest.mark.parametrize("task", list(TASKS))
def test_spacys_debug_tools_read_every_config(task, corpus, tmp_path):
    """`spacy init fill-config` with the checkpoint still empty, then `spacy debug config` and
    `spacy debug data` with it, as a user runs them."""
    config = CONFIGS / TASKS[task].config
    filled = tmp_path / "filled.cfg"
    result = _run(sys.executable, "-m", "spacy", "init", "fill-config", config, filled)
    assert result.returncode == 0, _output(result)
    # debug data counts fewer than 100 training docs as an error of the data: give it enough.
    docs = TASKS[task].make_docs(spacy.blank("en"), 120, n_words=30, seed=1)
    train = write_docbin(docs[:100], tmp_path / "train.spacy")
    dev = write_docbin(docs[100:], tmp_path / "dev.spacy")
    paths = ("--paths.train", train, "--paths.dev", dev)
    result = _run(sys.executable, "-m", "spacy", "debug", "config", filled, *paths)
    assert result.returncode == 0, _output(result)
    checkpoint = ("--paths.longformer", corpus / "checkpoint")
    result = _run(sys.executable, "-m", "spacy", "debug", "data", filled, *paths, *checkpoint)
    assert result.returncode == 0, _output(result)
    assert "100 training docs" in result.stdout, _output(result)


def test_spacy_train_without_a_checkpoint_names_the_setting(corpus, tmp_path):
    """No --paths.longformer: the encoder says which setting to give (LF141)."""
    data = corpus / "textcat"
    result = _run(
        sys.executable, "-m", "spacy", "train", CONFIGS / "textcat.cfg",
        "--paths.train", data / "train.spacy",
        "--paths.dev", data / "dev.spacy",
        "--output", tmp_path / "out",
    )  # fmt: skip
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert re.search(r"LF141.*--paths\.longformer DIR", out), _output(result)


def _create(task: str, corpus: Path, **overrides) -> spacy.language.Language:
    """What `spacy train` does before its first step (create and initialize the pipeline), here:
    its errors without a subprocess."""
    data = corpus / DATA[task]
    settings = {
        "paths.train": str(data / "train.spacy"),
        "paths.dev": str(data / "dev.spacy"),
        "paths.longformer": str(corpus / "checkpoint"),
        **overrides,
    }
    config = spacy.util.load_config(CONFIGS / TASKS[task].config, overrides=settings, interpolate=False)
    return init_nlp(config)


def test_a_missing_checkpoint_is_lf121(corpus, tmp_path):
    nowhere = str(tmp_path / "nowhere")
    setting = r"`\[components\.longformer_textcat\.model\.encoder\] name`"
    with pytest.raises(ValueError, match=rf"\[LF121\].*nowhere.*given as {setting}.*--paths\.longformer"):
        _create("textcat", corpus, **{"paths.longformer": nowhere})


def test_a_bad_encoder_value_is_lf123(corpus):
    key = "components.longformer_ner.model.encoder.window_overlap"
    with pytest.raises(ValueError, match=r"\[LF123\] `window_overlap` must be an int >= 0, got -3"):
        _create("ner", corpus, **{key: -3})


def test_every_config_initializes_its_pipeline(corpus):
    for task, spec in TASKS.items():
        assert spec.component in _create(task, corpus).pipe_names, task


# --- spacy package -> wheel -> fresh virtual environment ----------------------------------------------

# Run in the fresh environment (and here): predictions of installed pipelines for the given texts.
PREDICT = """
import json, sys
import spacy

def predict(nlp, texts):
    out = []
    for doc in nlp.pipe(texts):
        out.append({
            "cats": dict(doc.cats),
            "ents": [[e.start_char, e.end_char, e.label_] for e in doc.ents],
            "answer": [[s.start_char, s.end_char, s.text] for s in doc.spans.get("answer", [])],
        })
    return out

if __name__ == "__main__":
    request = json.loads(open(sys.argv[1], encoding="utf8").read())
    print(json.dumps({name: predict(spacy.load(name), texts) for name, texts in request.items()}))
"""


def _predict(nlp, texts):
    namespace: dict = {}
    exec(PREDICT, namespace)  # the same code the fresh environment runs
    return namespace["predict"](nlp, texts)


def _wheel_requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode("utf8")
    return re.findall(r"^Requires-Dist: (.+)$", metadata, flags=re.M)


def _copy_repository(target: Path) -> Path:
    """What `pip install` needs of this repository, without build leftovers or egg-info."""
    target.mkdir()
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        shutil.copy2(REPO / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(REPO / "spacy_longformer", target / "spacy_longformer", ignore=ignore)
    return target


@pytest.mark.slow
def test_packaged_wheels_install_in_a_fresh_venv_and_predict_the_same(corpus, tmp_path):
    pytest.importorskip("build", reason="`spacy package --build wheel` needs `pip install build`")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    wheels, texts, expected = [], {}, {}
    # A copy of the checkpoint, deleted once packaged: installed pipelines must not need it.
    checkpoint = shutil.copytree(corpus / "checkpoint", tmp_path / "checkpoint")
    for task in ("textcat", "qa"):
        output = tmp_path / f"trained-{task}"
        result = _train(task, corpus, output, "--paths.longformer", str(checkpoint))
        assert result.returncode == 0, _output(result)
        name = f"longformer_{task}_test"
        packages = tmp_path / f"packages-{task}"
        packages.mkdir()
        result = _run(
            sys.executable, "-m", "spacy", "package", output / "model-last", packages,
            "--name", name, "--version", "0.0.1", "--build", "wheel", "--force",
        )  # fmt: skip
        assert result.returncode == 0, _output(result)
        (wheel,) = packages.glob("*/dist/*.whl")
        requirements = _wheel_requirements(wheel)
        # spaCy finds our factories' distribution and pins it; spacy itself is always required.
        assert any(re.match(r"spacy-longformer\b", r) for r in requirements), requirements
        assert any(re.match(r"spacy\b(?!-)", r) for r in requirements), requirements
        wheels.append(wheel)
        nlp = spacy.load(output / "model-last")
        docs = Corpus(corpus / task / "dev.spacy")(nlp)
        texts[f"en_{name}"] = [example.reference.text for example in list(docs)[:4]]
        expected[f"en_{name}"] = _predict(nlp, texts[f"en_{name}"])
    timings["train + package"] = time.perf_counter() - start
    shutil.rmtree(checkpoint)

    start = time.perf_counter()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    # torch first, pinned to this environment's (CPU) build, so that nothing pulls a CUDA build.
    for args in (
        [f"torch=={torch.__version__}"],
        [str(_copy_repository(tmp_path / "repository"))],
        [str(wheel) for wheel in wheels],
    ):
        result = subprocess.run(pip + args, capture_output=True, text=True, env=ENV, timeout=600)
        assert result.returncode == 0, _output(result)
    timings["fresh venv + installs"] = time.perf_counter() - start

    start = time.perf_counter()
    request = tmp_path / "request.json"
    request.write_text(json.dumps(texts), encoding="utf8")
    script = tmp_path / "predict.py"
    script.write_text(PREDICT, encoding="utf8")
    # Run outside the repository so that its source can't shadow the installed package.
    result = subprocess.run(
        [str(python), str(script), str(request)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, _output(result)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    timings["load + predict"] = time.perf_counter() - start
    print("timings:", {key: f"{value:.0f}s" for key, value in timings.items()})

    location = subprocess.run(
        [str(python), "-c", "import spacy_longformer; print(spacy_longformer.__file__)"],
        capture_output=True, text=True, env=ENV, cwd=tmp_path, check=True,
    ).stdout  # fmt: skip
    assert str(venv) in location and str(REPO) not in location, location
    assert found.keys() == expected.keys()
    for name, docs in expected.items():
        for got, want in zip(found[name], docs, strict=True):
            assert got["ents"] == want["ents"] and got["answer"] == want["answer"], name
            assert got["cats"].keys() == want["cats"].keys(), name
            for label, score in want["cats"].items():
                assert got["cats"][label] == pytest.approx(score, abs=1e-5), (name, label)
    assert any(doc["answer"] for doc in expected["en_longformer_qa_test"])
