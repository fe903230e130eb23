"""projects/longformer: project.yml loads with spaCy's project loader (weasel), every command names files
that exist inside the project, its configs are copies of the repository's, and scripts/prepare_data.py
writes corpora from synthetic and from real data. The `all` workflow runs, in a copy of the folder alone
(what `spacy project clone` gives), only with `python -m pytest -m slow tests/test_project.py` (minutes
of training; its `install` step pip-installs requirements.txt into the running environment)."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

weasel_config = pytest.importorskip("weasel.util.config")

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "projects" / "longformer"
CONFIGS = sorted(
    {path.name for folder in (REPO / "configs", PROJECT / "configs") for path in folder.glob("*.cfg")}
)
# What the workflow writes (git-ignored, or committed results that a run must write anew).
OUTPUTS = ("project.lock", "assets", "corpus", "training", "metrics", "packages", "__pycache__")


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
    for workflow in ("all", "textcat", "ner", "qa", "convert"):
        assert set(project["workflows"][workflow]) <= names, workflow
    convert = project["workflows"]["convert"]
    order = ["roberta", "convert-roberta", "pretrain", "train-textcat-pretrained", "evaluate-convert"]
    assert [step for step in convert if step in order] == order
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
                    assert word.startswith("configs/"), f"{command['name']}: {word} is not in configs/"
                    assert (PROJECT / word).is_file(), f"{command['name']}: no config {word}"
                    seen_configs.add(Path(word).name)
        for dep in command.get("deps", []):
            # Inputs of the project (scripts, configs) exist; the rest are earlier steps' outputs.
            if dep.startswith(("scripts/", "configs/")):
                assert (PROJECT / dep).exists(), f"{command['name']}: no dependency {dep}"
    assert seen_configs == {"textcat.cfg", "ner.cfg", "qa.cfg"}


def test_project_names_nothing_outside_itself():
    """A cloned project has no repository around it: no path may climb out of the folder."""
    files = [PROJECT / "project.yml", PROJECT / "README.md", PROJECT / "requirements.txt"]
    for path in files + sorted((PROJECT / "scripts").glob("*.py")):
        assert "../" not in path.read_text(encoding="utf8"), (
            f"{path.relative_to(REPO)} names a path outside the project"
        )


@pytest.mark.parametrize("name", CONFIGS)
def test_project_configs_are_copies_of_the_repositorys(name):
    source, copy = REPO / "configs" / name, PROJECT / "configs" / name
    fix = f"copy it over: cp configs/{name} projects/longformer/configs/{name}"
    assert source.is_file(), (
        f"projects/longformer/configs/{name} has no configs/{name}: delete it or add it to configs/"
    )
    assert copy.is_file(), f"configs/{name} is missing from projects/longformer/configs/: {fix}"
    assert copy.read_bytes() == source.read_bytes(), (
        f"projects/longformer/configs/{name} differs from configs/{name}: {fix}"
    )


def test_train_commands_override_the_shared_settings(project):
    trains = {c["name"]: " ".join(c["script"]) for c in project["commands"] if c["name"].startswith("train-")}
    assert set(trains) == {
        "train-textcat",
        "train-textcat-noglobal",
        "train-ner",
        "train-qa",
        "train-textcat-converted",
        "train-textcat-pretrained",
    }
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
        # The schedule decays to 0 where training stops, not at the config's 2,000 steps.
        steps = re.search(r"--training\.max_steps (\S+)", script).group(1)
        assert f"--training.optimizer.learn_rate.total_steps {steps}" in script


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


@pytest.mark.slow
def test_all_workflow_runs_in_a_copy_of_the_project_alone(tmp_path):
    copy = shutil.copytree(PROJECT, tmp_path / "longformer", ignore=shutil.ignore_patterns(*OUTPUTS))
    command = [sys.executable, "-m", "spacy", "project", "run", "all"]
    result = subprocess.run(command, cwd=copy, capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}"
    )
    metrics = copy / "metrics"
    scores = {
        "textcat": json.loads((metrics / "textcat.json").read_text())["cats_score"],
        "ner": json.loads((metrics / "ner.json").read_text())["ents_f"],
        "qa": json.loads((metrics / "qa.json").read_text())["longformer_qa"]["qa_exact"],
    }
    assert all(score >= 0.9 for score in scores.values()), scores
    benchmark = json.loads((metrics / "benchmark.json").read_text())
    assert [key.split("-")[0] for key in benchmark["sizes"]] == ["project", "random"], list(
        benchmark["sizes"]
    )
    for entry in benchmark["sizes"].values():
        assert "spacy-transformers" in entry["results"] and "longformer_encoder" in entry["results"]
        for result in entry["results"].values():
            assert [row["words"] for row in result["by_length"]] == benchmark["meta"]["words"]
            assert all(row["seconds_per_doc"] > 0 for row in result["by_length"])
    assert (metrics / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wheels = sorted(path.name for path in (copy / "packages").glob("*/dist/*.whl"))
    assert wheels == [f"en_longformer_{task}-0.1.0-py3-none-any.whl" for task in ("ner", "qa", "textcat")]
