"""README.md's snippets run as written: every ```python block, and the CLI commands the ```bash blocks show.

Each python block runs as its own test, unchanged except for the checkpoint paths in ``PATHS``, which
point at small random checkpoints built offline; it runs with ``exec`` in a fresh namespace, in a
temporary working directory that holds the input files of ``FILES`` (and receives the outputs:
``pipeline``, ``corpus/...``). ``CHECKS`` then checks what the prose around the block says it gives.
A python block without a check, or a path or file of the tables that the README's python blocks no
longer name, fails: the README and this test cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
import transformers
import typer
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_longformer.cli import app
from spacy_longformer.model import LongformerConfig, LongformerForQuestionAnswering, LongformerModel
from spacy_longformer.model import LongformerForSequenceClassification as SequenceClassification
from spacy_longformer.random_checkpoint import build_random_checkpoint, synthetic_text
from spacy_longformer.tokenization import LongformerTokenizer

from .model.oracle import save_small_roberta

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.M)

# The README's checkpoint paths -> the fixture that stands in for each (a path under tmp_path for an
# output folder).
PATHS = {
    "/models/longformer-base-4096": "base_checkpoint",
    "/models/longformer-imdb": "textcat_checkpoint",
    "/models/longformer-triviaqa": "qa_checkpoint",
    "/models/roberta-base": "roberta_checkpoint",
    "/models/roberta-longformer-4096": "output_folder",
}
TEXTCAT_LABELS = ["NEGATIVE", "POSITIVE"]
SIGNER = "Alice Smith"
LEASE = f"The lease was signed by {SIGNER} on March 3, 2021, in the presence of two witnesses."


def _squad() -> str:
    context = synthetic_text(120, seed=21) + " " + LEASE + " " + synthetic_text(80, seed=22)
    qas = [
        {
            "id": "q1",
            "question": "Who signed the lease?",
            "answers": [{"text": SIGNER, "answer_start": context.index(SIGNER)}],
            "is_impossible": False,
        },
        {
            "id": "q2",
            "question": "Who witnessed the lease?",
            "answers": [],
            "plausible_answers": [{"text": SIGNER, "answer_start": context.index(SIGNER)}],
            "is_impossible": True,
        },
    ]
    paragraph = {"context": context, "qas": qas}
    return json.dumps({"version": "v2.0", "data": [{"title": "Lease", "paragraphs": [paragraph]}]})


def _between(text: str, middle: str) -> str:
    """``middle`` planted halfway through ``text``, between two paragraphs."""
    paragraphs = text.split("\n\n")
    half = len(paragraphs) // 2
    return "\n\n".join([*paragraphs[:half], middle, *paragraphs[half:]])


def _contract(section: str) -> str:
    """A long contract that names who signed the lease: 10,000 words where the prose says "10,000
    words is fine", 3,000 for QA (whose windows each repeat the question), to keep the test short."""
    n_words = 10_000 if section == "In a spaCy pipeline" else 3000
    return _between(synthetic_text(n_words, seed=2), LEASE)


# The files the README's python blocks open (section -> content), written into the working directory.
FILES: dict[str, Callable[[str], str]] = {
    "report.txt": lambda section: synthetic_text(3000, seed=1),  # more than one forward pass holds
    "contract.txt": _contract,
    "review.txt": lambda section: synthetic_text(1500, seed=3),
    "dev-v2.0.json": lambda section: _squad(),
}


# --- the README's blocks ------------------------------------------------------------------------------


def _blocks(lang: str) -> list[tuple[str, str]]:
    """``(section, code)`` of every ``lang`` block, in order; ``section`` is the heading above it,
    with `` #2``, `` #3`` for a section's later blocks."""
    text = README.read_text(encoding="utf8")
    fences = list(FENCE.finditer(text))
    headings = [
        (m.start(), m.group(1))
        for m in HEADING.finditer(text)
        if not any(f.start() < m.start() < f.end() for f in fences)  # a comment inside a block
    ]
    blocks, seen = [], {}
    for match in fences:
        if match.group("lang") != lang:
            continue
        heading = max((h for h in headings if h[0] < match.start()), default=(0, "(top)"))[1]
        seen[heading] = seen.get(heading, 0) + 1
        section = heading if seen[heading] == 1 else f"{heading} #{seen[heading]}"
        blocks.append((section, textwrap.dedent(match.group("body"))))
    return blocks


PYTHON_BLOCKS = _blocks("python")
BASH_BLOCKS = _blocks("bash")


def _first_line(code: str) -> str:
    return next(line for line in code.splitlines() if line.strip())


# --- checkpoints and folders standing in for the README's ------------------------------------------


def _with_tokenizer(folder: Path, source: Path) -> Path:
    for file in source.iterdir():
        if file.name not in {"config.json", "model.safetensors"}:
            shutil.copy(file, folder / file.name)
    return folder


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory):
    """A tiny random base Longformer (2 layers, hidden 32) whose windows hold 512 pieces."""
    return build_random_checkpoint(
        tmp_path_factory.mktemp("longformer-base"),
        texts=[synthetic_text(3000, seed=1)],
        vocab_size=600,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        attention_window=[16, 32],
        max_position_embeddings=514,
        seed=0,
    )


@pytest.fixture(scope="module")
def textcat_checkpoint(base_checkpoint, tmp_path_factory):
    """A fine-tuned sentiment classifier as HF saves one: ``LongformerForSequenceClassification`` in
    config.json's ``architectures``, labels in its ``id2label``."""
    config = LongformerConfig.from_json_file(base_checkpoint / "config.json")
    config.id2label = dict(enumerate(TEXTCAT_LABELS))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = SequenceClassification.from_pretrained(base_checkpoint, config=config)
    folder = tmp_path_factory.mktemp("longformer-imdb")
    model.save_pretrained(folder)
    return _with_tokenizer(folder, base_checkpoint)


@pytest.fixture(scope="module")
def qa_checkpoint(base_checkpoint, tmp_path_factory):
    """A fine-tuned extractive QA model: ``LongformerForQuestionAnswering`` with its head."""
    config = LongformerConfig.from_json_file(base_checkpoint / "config.json")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LongformerForQuestionAnswering.from_pretrained(base_checkpoint, config=config)
    folder = tmp_path_factory.mktemp("longformer-triviaqa")
    model.save_pretrained(folder)
    return _with_tokenizer(folder, base_checkpoint)


@pytest.fixture(scope="module")
def roberta_checkpoint(tmp_path_factory):
    """A small random RoBERTa folder as transformers saves one (64 learned positions)."""
    folder = tmp_path_factory.mktemp("roberta-base")
    save_small_roberta(transformers.RobertaModel, folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings["tokenizer_class"] = "RobertaTokenizer"  # as a real RoBERTa folder says
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    return folder


@pytest.fixture
def output_folder(tmp_path):
    return tmp_path / "out" / "roberta-longformer-4096"


# --- what each block gives, as its prose says -------------------------------------------------------


def _check_quick_start(ns: dict, paths: dict[str, Path]) -> None:
    model, encoding, limit = ns["model"], ns["encoding"], ns["limit"]
    assert limit == model.config.max_tokens
    assert len(encoding) > limit, "report.txt should be longer than one forward pass holds"
    hidden = ns["output"].last_hidden_state
    assert hidden.shape == (1, limit, model.config.hidden_size)
    assert ns["input_ids"][0, -1].item() == ns["tokenizer"].eos_token_id
    assert torch.isfinite(hidden).all()


def _check_pipeline(ns: dict, paths: dict[str, Path]) -> None:
    doc, data = ns["doc"], ns["doc"]._.longformer
    tokenizer = LongformerTokenizer.from_pretrained(paths["/models/longformer-base-4096"])
    assert len(doc.text.split()) >= 10_000 and len(data.windows) > 1
    assert list(data.input_ids) == tokenizer.encode(doc.text).ids
    hidden = data.last_hidden_state.shape[1]
    assert data.last_hidden_state.shape == (len(data.input_ids), hidden)
    assert doc.tensor.shape == (len(doc), hidden) and np.isfinite(doc.tensor).all()
    text = synthetic_text(300, seed=4)  # the saved pipeline gives the same vectors
    np.testing.assert_allclose(spacy.load("pipeline")(text).tensor, ns["nlp"](text).tensor, atol=1e-5)


def _check_task_components(ns: dict, paths: dict[str, Path]) -> None:
    cats = ns["nlp"](Path("review.txt").read_text(encoding="utf8")).cats
    assert list(cats) == TEXTCAT_LABELS  # the fine-tuned checkpoint's id2label
    assert sum(cats.values()) == pytest.approx(1.0)
    assert ns["base"].get_pipe("longformer_textcat").labels == ("POSITIVE", "NEGATIVE")
    doc = ns["doc"]
    answers, question = doc.spans["answer"], doc.spans["question"][0]
    assert question.text == "Who signed the lease?"
    assert len(answers) == 1 and answers[0].start >= question.end  # a span of the context
    assert isinstance(answers.attrs["score"], float)


def _check_training_data(ns: dict, paths: dict[str, Path]) -> None:
    dev = list(DocBin().from_disk("corpus/dev.spacy").get_docs(ns["nlp"].vocab))
    assert [doc.spans["question"][0].text for doc in dev] == [
        "Who signed the lease?",
        "Who witnessed the lease?",
    ]
    assert [[span.text for span in doc.spans["answer"]] for doc in dev] == [[SIGNER], []]
    docs = ns["docs"]
    assert len(docs) == 100 and all(len(doc.text.split()) >= 600 for doc in docs)
    assert sum(doc.cats["POSITIVE"] for doc in docs) == 50  # balanced


def _check_convert_roberta(ns: dict, paths: dict[str, Path]) -> None:
    folder = paths["/models/roberta-longformer-4096"]
    ours = LongformerModel.from_pretrained(folder).eval()
    assert ours.config.max_position_embeddings == 4096 + 2
    assert ours.config.attention_window == [512, 512]
    roberta = transformers.RobertaModel.from_pretrained(paths["/models/roberta-base"]).eval()
    input_ids = torch.tensor([[0, *range(10, 60), 2]])  # fits RoBERTa's 64 positions and half a window
    with torch.no_grad():
        expected = roberta(input_ids=input_ids).last_hidden_state
        got = ours(input_ids=input_ids).last_hidden_state
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def _trained_pipeline_and_its_int8_export(work: Path, request: pytest.FixtureRequest) -> None:
    """What the block's prose starts from: a saved pipeline with a longformer_ner, and the
    README's export command run on it."""
    nlp = spacy.blank("en")
    config = {"model": {"encoder": {"name": str(request.getfixturevalue("base_checkpoint"))}}}
    nlp.add_pipe("longformer_ner", config=config).add_label("PERSON")
    nlp.initialize()
    (work / "training").mkdir()
    nlp.to_disk(work / "training" / "model-best")
    command = "export training/model-best exported/ --component longformer_ner --quantize int8"
    result = CliRunner().invoke(app, command.split())
    assert result.exit_code == 0, result.output


def _check_int8_pipeline(ns: dict, paths: dict[str, Path]) -> None:
    from spacy_longformer.ml.encoder_model import OnnxEncoder

    nlp = ns["nlp"]
    encoder = nlp.get_pipe("longformer_ner").model.get_ref("encoder").shims[0]._model
    assert isinstance(encoder, OnnxEncoder)
    assert encoder.runner.graph == Path("exported/model.int8.onnx").read_bytes()
    doc = nlp(synthetic_text(300, seed=5))
    assert all(ent.label_ == "PERSON" for ent in doc.ents)  # the head ran on the graph's states


# Sections whose block starts from files the README's prose says the reader has made.
SETUPS: dict[str, Callable[[Path, pytest.FixtureRequest], None]] = {
    "Export to ONNX and the onnxruntime backend": _trained_pipeline_and_its_int8_export,
}

# README section (heading above the block) -> the check of that block.
CHECKS: dict[str, Callable[[dict, dict[str, Path]], None]] = {
    "Quick start in Python": _check_quick_start,
    "In a spaCy pipeline": _check_pipeline,
    "Task components": _check_task_components,
    "Training data": _check_training_data,
    "Export to ONNX and the onnxruntime backend": _check_int8_pipeline,
    "Convert a RoBERTa checkpoint": _check_convert_roberta,
}


# --- the tests ------------------------------------------------------------------------------------


def test_every_python_block_has_a_check():
    assert [section for section, _ in PYTHON_BLOCKS] == list(CHECKS)


@pytest.mark.parametrize("key", [*PATHS, *FILES])
def test_every_substituted_path_appears_in_a_python_block(key):
    assert any(key in code for _, code in PYTHON_BLOCKS), f"{key!r} is no longer in README.md's python blocks"


@pytest.mark.parametrize(
    "section,code",
    PYTHON_BLOCKS,
    ids=[f"{i}-{_first_line(code)}" for i, (_, code) in enumerate(PYTHON_BLOCKS)],
)
def test_python_block_runs(section, code, request, tmp_path, monkeypatch):
    absolute = set(re.findall(r"[\"'](/[^\"']+)[\"']", code))
    assert absolute <= set(PATHS), f"add {sorted(absolute - set(PATHS))} to PATHS"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    for name, content in FILES.items():
        if name in code:
            (work / name).write_text(content(section), encoding="utf8")
    if section in SETUPS:
        SETUPS[section](work, request)
    paths = {key: Path(request.getfixturevalue(fixture)) for key, fixture in PATHS.items() if key in code}
    for key in sorted(paths, key=len, reverse=True):
        code = code.replace(key, str(paths[key]))
    namespace = {"__name__": "__readme__"}
    exec(compile(code, f"README.md ({section})", "exec"), namespace)
    CHECKS[section](namespace, paths)


def test_textcat_on_a_base_checkpoint_without_labels_stops_at_initialize(base_checkpoint):
    """What the prose says happens without the snippet's add_label lines."""
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_textcat", config={"model": {"encoder": {"name": str(base_checkpoint)}}})
    with pytest.raises(ValueError, match=r"LF135.*labels"):
        nlp.initialize()


# --- bash blocks: the commands they show exist -------------------------------------------------------


def _cli_commands() -> list[tuple[str, list[str]]]:
    """``(command, options)`` of each ``python -m spacy_longformer COMMAND ...`` in a bash block."""
    commands = []
    for _, code in BASH_BLOCKS:
        code = re.sub(r"\\\n", " ", code)
        for line in code.splitlines():
            line = line.split("#", 1)[0]
            for part in re.split(r"&&|\|\||;", line):
                words = part.split()
                if words[:3] == ["python", "-m", "spacy_longformer"] and len(words) > 3:
                    commands.append((words[3], [w.split("=", 1)[0] for w in words[4:] if w.startswith("--")]))
    return commands


CLI_COMMANDS = _cli_commands()


def test_every_cli_command_of_the_bash_blocks_is_checked():
    shown = sum(code.count("python -m spacy_longformer") for _, code in BASH_BLOCKS)
    assert shown > 0 and len(CLI_COMMANDS) == shown


@pytest.fixture(scope="module")
def package_help() -> str:
    """``python -m spacy_longformer --help`` as a user runs it: once (each process imports torch)."""
    result = subprocess.run(
        [sys.executable, "-m", "spacy_longformer", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("command", sorted({command for command, _ in CLI_COMMANDS}))
def test_cli_command_exists(command, package_help):
    assert re.search(rf"^\W*{re.escape(command)}\s", package_help, re.M), package_help
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command,options", CLI_COMMANDS, ids=[command for command, _ in CLI_COMMANDS])
def test_cli_command_takes_the_options_shown(command, options):
    click_command = typer.main.get_command(app).commands[command]
    known = {opt for param in click_command.params for opt in [*param.opts, *param.secondary_opts]}
    assert set(options) <= known, f"{command}: README shows {sorted(set(options) - known)}"
