"""projects/longformer: project.yml loads with spaCy's project loader (weasel), every command names files
that exist, and scripts/prepare_data.py writes corpora from synthetic and from real data. The workflow
itself is not run here (minutes of training)."""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

weasel_config = pytest.importorskip("weasel.util.config")

PROJECT = Path(__file__).resolve().parents[1] / "projects" / "longformer"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    # load_project_config creates the listed directories: load a copy, not the project itself.
    copy = tmp_path_factory.mktemp("project")
    (copy / "project.yml").write_text((PROJECT / "project.yml").read_text())
    return weasel_config.load_project_config(copy)


@pytest.fixture(scope="module")
def prepare_data():
    spec = importlib.util.spec_from_file_location("prepare_data", PROJECT / "scripts" / "prepare_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_project_loads_with_spacys_loader(project):
    from spacy.cli.project.run import load_project_config  # what `spacy project run` uses

    assert load_project_config is weasel_config.load_project_config
    names = {command["name"] for command in project["commands"]}
    for workflow in ("all", "textcat", "ner", "qa"):
        assert set(project["workflows"][workflow]) <= names, workflow
    for step in ("corpus", "checkpoint", "benchmark"):
        assert step in project["workflows"]["all"]
    for task in ("textcat", "ner", "qa"):
        for step in ("train", "evaluate", "package"):
            assert f"{step}-{task}" in project["workflows"]["all"]
            assert f"{step}-{task}" in project["workflows"][task]
    assert project["vars"]["checkpoint"] == "training/checkpoint"
    assert project["vars"]["gpu_id"] == -1
    # Offline by default: every asset is optional.
    assert all(asset.get("extra") for asset in project.get("assets", []))


def test_commands_reference_existing_files(project):
    seen_configs = set()
    for command in project["commands"]:
        for line in command["script"]:
            assert "${" not in line, f"{command['name']}: uninterpolated variable in {line!r}"
            words = shlex.split(line)
            assert words[0] == "python", line
            if words[1] != "-m":
                assert (PROJECT / words[1]).is_file(), f"{command['name']}: no script {words[1]}"
            for word in words:
                if word.endswith(".cfg"):
                    assert (PROJECT / word).resolve().is_file(), f"{command['name']}: no config {word}"
                    seen_configs.add((PROJECT / word).resolve().name)
        for dep in command.get("deps", []):
            # Inputs of the project (scripts, configs) exist; the rest are earlier steps' outputs.
            if dep.startswith(("scripts/", "../")):
                assert (PROJECT / dep).exists(), f"{command['name']}: no dependency {dep}"
    assert seen_configs == {"textcat.cfg", "ner.cfg", "qa.cfg"}


def test_train_commands_override_the_shared_settings(project):
    trains = {c["name"]: " ".join(c["script"]) for c in project["commands"] if c["name"].startswith("train-")}
    assert set(trains) == {"train-textcat", "train-textcat-noglobal", "train-ner", "train-qa"}
    for script in trains.values():
        for option in (
            "--paths.train",
            "--paths.dev",
            "--paths.longformer",
            "--training.max_steps",
            "--gpu-id",
        ):
            assert option in script
        assert "--training.optimizer.learn_rate.initial_rate" in script


def test_prepare_data_synthetic(prepare_data, tmp_path):
    prepare_data.corpus(tmp_path, tasks="textcat,ner", n_train=3, n_dev=2, n_words=40, seed=0)
    nlp = spacy.blank("en")
    for task in ("textcat", "ner"):
        train = list(DocBin().from_disk(tmp_path / task / "train.spacy").get_docs(nlp.vocab))
        dev = list(DocBin().from_disk(tmp_path / task / "dev.spacy").get_docs(nlp.vocab))
        assert (len(train), len(dev)) == (3, 2)
    assert not (tmp_path / "qa").exists()


def test_prepare_data_real(prepare_data, tmp_path):
    nlp = spacy.blank("en")
    lines = [
        {"text": "A fine day.", "cats": {"POSITIVE": 1.0, "NEGATIVE": 0.0}},
        {"text": "A bad day.", "cats": {"POSITIVE": 0.0, "NEGATIVE": 1.0}},
    ]
    jsonl = tmp_path / "textcat.jsonl"
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines))
    doc = nlp.make_doc("Alice works at Acme.")
    doc.ents = [doc.char_span(0, 5, label="PERSON"), doc.char_span(15, 19, label="ORG")]
    ner = tmp_path / "ner.spacy"
    DocBin(docs=[doc]).to_disk(ner)
    squad = tmp_path / "squad.json"
    context = "The code of bravo is 417."
    record = {"id": "q1", "question": "What is the code of bravo?", "context": context}
    record["answers"] = {"text": ["417"], "answer_start": [context.index("417")]}
    squad.write_text(json.dumps([record]))
    out = tmp_path / "corpus"
    prepare_data.corpus(
        out,
        tasks="textcat ner qa",
        n_train=1,
        n_dev=1,
        n_words=20,
        textcat_train=str(jsonl),
        textcat_dev=str(jsonl),
        ner_train=str(ner),
        ner_dev=str(ner),
        qa_train=str(squad),
        qa_dev=str(squad),
    )
    textcat = list(DocBin().from_disk(out / "textcat" / "dev.spacy").get_docs(nlp.vocab))
    assert [doc.cats["POSITIVE"] for doc in textcat] == [1.0, 0.0]
    ents = list(DocBin().from_disk(out / "ner" / "train.spacy").get_docs(nlp.vocab))[0].ents
    assert [(ent.text, ent.label_) for ent in ents] == [("Alice", "PERSON"), ("Acme", "ORG")]
    qa = list(DocBin().from_disk(out / "qa" / "train.spacy").get_docs(nlp.vocab))[0]
    assert [span.text for span in qa.spans["answer"]] == ["417"]


def test_prepare_data_needs_both_files(prepare_data, tmp_path):
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text('{"text": "x", "cats": {"A": 1.0}}\n')
    with pytest.raises(SystemExit):
        prepare_data.corpus(tmp_path / "corpus", tasks="textcat", textcat_train=str(jsonl), textcat_dev="")


def test_prepare_data_checkpoint_links_a_real_one_and_keeps_foreign_folders(prepare_data, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "config.json").write_text("{}")
    out = tmp_path / "training" / "checkpoint"
    prepare_data.checkpoint(out, real=str(real))
    assert out.is_symlink() and out.resolve() == real.resolve()
    prepare_data.checkpoint(out, real=str(real))  # a rerun replaces the link
    assert out.is_symlink()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "weights.bin").write_text("keep me")
    with pytest.raises(SystemExit):
        prepare_data.checkpoint(foreign, real="")
    assert (foreign / "weights.bin").read_text() == "keep me"
