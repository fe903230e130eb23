"""spaCy's own tools on our pipelines, as a user runs them: multiprocessing (fork and spawn),
pickling, `spacy apply --n-process`, `replace_listeners` then save and load, and the errors and
warnings of a listener without its encoder.

Workers run in subprocesses with a timeout, so a hang (what fork did to torch's thread pool) fails
the test instead of stalling the suite. Nothing here sets torch's thread count.
"""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example

from spacy_longformer.random_checkpoint import synthetic_text

TEXTS = [
    synthetic_text(n, seed=i) + "  Alice met\tBob in Paris." for i, n in enumerate([40, 400, 5, 250, 90, 0])
]
LISTENER = {"@architectures": "spacy-longformer.LongformerListener.v1", "upstream": "*"}


def _workflow_pipeline(checkpoint: Path) -> spacy.Language:
    """A shared encoder with our NER listening, spaCy's textcat listening, and our own embedded
    textcat: every kind of model a pipeline of ours holds."""
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(checkpoint)}})
    nlp.add_pipe("longformer_ner", config={"model": {"encoder": LISTENER}})
    textcat_model = {
        "@architectures": "spacy.TextCatReduce.v1",
        "exclusive_classes": True,
        "tok2vec": LISTENER,
    }
    textcat_model.update(
        use_reduce_first=False, use_reduce_last=False, use_reduce_max=False, use_reduce_mean=True
    )
    nlp.add_pipe("textcat", config={"model": textcat_model})
    nlp.add_pipe(
        "longformer_textcat", name="doc_class", config={"model": {"encoder": {"name": str(checkpoint)}}}
    )
    examples = []
    for i, text in enumerate(TEXTS[:4]):
        ref = nlp.make_doc(text)
        words = [t.text for t in ref]
        ref.ents = [Span(ref, words.index("Alice"), words.index("Alice") + 1, label="PERSON")]
        ref.cats = {"A": float(i % 2), "B": float(1 - i % 2)}
        examples.append(Example(nlp.make_doc(text), ref))
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(2):
        nlp.update(examples, sgd=optimizer)
    return nlp


def _annotations(docs: list[Doc]) -> list[tuple]:
    """Token vectors, entities and cats (vectors from ``doc._.longformer``, which a DocBin with
    user data keeps, unlike ``doc.tensor``)."""
    return [
        (doc._.longformer.token_vectors(), [(e.start, e.end, e.label_) for e in doc.ents], dict(doc.cats))
        for doc in docs
    ]


def _assert_same(got: list[tuple], expected: list[tuple]) -> None:
    assert len(got) == len(expected)
    for (tensor, ents, cats), (tensor0, ents0, cats0) in zip(got, expected, strict=True):
        np.testing.assert_allclose(tensor, tensor0, atol=1e-5)
        assert ents == ents0
        assert cats.keys() == cats0.keys()
        for label in cats:
            assert cats[label] == pytest.approx(cats0[label], abs=1e-5)


@pytest.fixture(scope="module")
def saved_pipeline(tiny_checkpoint, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("workflow") / "pipeline"
    _workflow_pipeline(tiny_checkpoint).to_disk(path)
    return path


def _run(command: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    """``command`` in a session of its own, so a hang takes its workers down with it."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_issue15_pipe_n_process_2_equals_one_process(saved_pipeline, tmp_path, start_method):
    """`nlp.pipe(n_process=2)` with torch's default threads: fork used to hang, spawn couldn't
    pickle the pipeline."""
    out = tmp_path / "docs.spacy"
    script = f"""
        import multiprocessing
        import spacy
        from spacy.tokens import DocBin

        if __name__ == "__main__":
            multiprocessing.set_start_method({start_method!r}, force=True)
            nlp = spacy.load({str(saved_pipeline)!r})
            nlp({TEXTS[1]!r})  # torch's thread pool runs in the parent before it forks
            docs = list(nlp.pipe({TEXTS!r}, n_process=2, batch_size=2))
            DocBin(docs=docs, store_user_data=True).to_disk({str(out)!r})
        """
    try:
        result = _run([sys.executable, "-c", textwrap.dedent(script)])
    except subprocess.TimeoutExpired:
        pytest.fail(f"nlp.pipe(n_process=2) under {start_method} hung")
    assert result.returncode == 0, result.stderr[-3000:]
    nlp = spacy.load(saved_pipeline)
    got = list(DocBin().from_disk(out).get_docs(nlp.vocab))
    assert [doc.text for doc in got] == TEXTS
    _assert_same(_annotations(got), _annotations(list(nlp.pipe(TEXTS))))


def test_issue15_spacy_apply_n_process_2(saved_pipeline, tmp_path):
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": text}) + "\n" for text in TEXTS), encoding="utf8")
    out = tmp_path / "applied.spacy"
    command = [sys.executable, "-m", "spacy", "apply", str(saved_pipeline), str(data), str(out)]
    try:
        result = _run([*command, "--n-process", "2"])
    except subprocess.TimeoutExpired:
        pytest.fail("spacy apply --n-process 2 hung")
    assert result.returncode == 0, result.stderr[-3000:]
    nlp = spacy.load(saved_pipeline)
    got = sorted(DocBin().from_disk(out).get_docs(nlp.vocab), key=lambda doc: TEXTS.index(doc.text))
    _assert_same(_annotations(got), _annotations(list(nlp.pipe(TEXTS))))


def test_issue15_pipelines_pickle(saved_pipeline):
    nlp = spacy.load(saved_pipeline)
    again = pickle.loads(pickle.dumps(nlp))
    _assert_same(_annotations(list(again.pipe(TEXTS))), _annotations(list(nlp.pipe(TEXTS))))


# spaCy's components on the listener, as `spacy init config` would write them.
SPACY_COMPONENTS = {
    "ner": {
        "@architectures": "spacy.TransitionBasedParser.v2",
        "state_type": "ner",
        "extra_state_tokens": False,
        "hidden_width": 16,
        "maxout_pieces": 2,
        "use_upper": True,
    },
    "textcat": {
        "@architectures": "spacy.TextCatReduce.v1",
        "exclusive_classes": True,
        "use_reduce_first": False,
        "use_reduce_last": False,
        "use_reduce_max": False,
        "use_reduce_mean": True,
    },
    "spancat": {
        "@architectures": "spacy.SpanCategorizer.v1",
        "reducer": {"@layers": "spacy.mean_max_reducer.v1", "hidden_size": 16},
        "scorer": {"@layers": "spacy.LinearLogistic.v1"},
    },
    "tagger": {"@architectures": "spacy.Tagger.v2"},
}


def _tagged_examples(nlp: spacy.Language) -> list[Example]:
    examples = []
    for i, text in enumerate(TEXTS[:4]):
        ref = nlp.make_doc(text)
        words = [t.text for t in ref]
        alice = words.index("Alice")
        ref.ents = [Span(ref, alice, alice + 1, label="PERSON")]
        ref.cats = {"A": float(i % 2), "B": float(1 - i % 2)}
        ref.spans["sc"] = [Span(ref, alice, alice + 3, label="MEETING")]
        for token in ref:
            token.tag_ = "NAME" if token.text[:1].isupper() else "W"
        examples.append(Example(nlp.make_doc(text), ref))
    return examples


@pytest.mark.parametrize("component", list(SPACY_COMPONENTS))
def test_issue15_replace_listeners_then_save_and_load(tiny_checkpoint, tmp_path, component):
    """spaCy's standard way to give a component its own copy of the encoder: the rewritten config
    builds the model that replace_listeners made, so the saved pipeline loads and predicts the same."""
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(tiny_checkpoint)}})
    nlp.add_pipe(component, config={"model": {**SPACY_COMPONENTS[component], "tok2vec": LISTENER}})
    examples = _tagged_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    for _ in range(2):
        nlp.update(examples, sgd=optimizer)
    nlp.replace_listeners("longformer_encoder", component, ["model.tok2vec"])
    tok2vec = nlp.config["components"][component]["model"]["tok2vec"]
    assert tok2vec["@architectures"] == "spacy-longformer.LongformerTok2Vec.v1"
    assert tok2vec["encoder"]["@architectures"] == "spacy-longformer.LongformerEncoder.v1"
    nlp.remove_pipe("longformer_encoder")  # the component now carries its own encoder
    expected = [nlp(text) for text in TEXTS]
    nlp.to_disk(tmp_path / "pipeline")
    reloaded = spacy.load(tmp_path / "pipeline")
    for doc, again in zip(expected, (reloaded(text) for text in TEXTS), strict=True):
        assert [(e.start, e.end, e.label_) for e in again.ents] == [
            (e.start, e.end, e.label_) for e in doc.ents
        ]
        assert [t.tag_ for t in again] == [t.tag_ for t in doc]
        for label, score in doc.cats.items():
            assert again.cats[label] == pytest.approx(score, abs=1e-5)
        if component == "spancat":
            assert [(s.start, s.end, s.label_) for s in again.spans["sc"]] == [
                (s.start, s.end, s.label_) for s in doc.spans["sc"]
            ]
    # The copy trains on its own.
    reloaded.update(_tagged_examples(reloaded), sgd=reloaded.resume_training())


def test_issue15_a_listener_naming_no_encoder_is_a_clear_error(tiny_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(tiny_checkpoint)}})
    nlp.add_pipe("longformer_ner", config={"model": {"encoder": {**LISTENER, "upstream": "encoder"}}})
    with pytest.raises(ValueError, match=r"LF143.*upstream = 'encoder'.*'longformer_encoder'"):
        nlp.initialize(lambda: _tagged_examples(nlp))


def test_issue15_a_listener_without_its_encoder_warns_once(saved_pipeline, caplog):
    nlp = spacy.load(saved_pipeline, disable=["longformer_encoder"])
    with caplog.at_level("WARNING"):
        docs = list(nlp.pipe(TEXTS))
    assert len(docs) == len(TEXTS)
    assert caplog.text.count("LFW003") == 2  # once for each listening component
    with caplog.at_level("WARNING"):
        caplog.clear()
        nlp(TEXTS[0])
    assert "LFW003" not in caplog.text


def test_issue15_an_empty_checkpoint_name_waits_for_initialize():
    """`spacy init fill-config` builds the pipeline with `name` still empty; the checkpoint is only
    needed when `nlp.initialize()` loads it."""
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder")
    nlp.add_pipe("longformer_ner")
    with pytest.raises(
        ValueError,
        match=r"LF141.*`\[components\.longformer_encoder\.model\] name` is empty.*--paths.longformer",
    ):
        nlp.initialize()


def test_issue15_a_bad_setting_is_not_blamed_on_the_checkpoint(tiny_checkpoint):
    nlp = spacy.blank("en")
    config = {"model": {"name": str(tiny_checkpoint), "attn_implementation": "flash"}}
    with pytest.raises(
        ValueError, match=r"LF123.*`attn_implementation` must be one of 'auto'.*'flash'"
    ) as info:
        nlp.add_pipe("longformer_encoder", config=config)
    assert "LF121" not in str(info.value)
