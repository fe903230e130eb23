"""Task components overfit tiny sets, save and reload, and handle empty, long and malformed docs."""

import numpy as np
import pytest
import spacy
from spacy.tokens import Span
from spacy.training import Example

from spacy_longformer import make_qa_doc
from spacy_longformer.ml.encoder_model import tokenizer_of
from spacy_longformer.ml.global_attention import configure_global_attention
from spacy_longformer.ml.planning import plan_doc
from spacy_longformer.random_checkpoint import synthetic_text

CLASSES = {
    "POSITIVE": "the outcome was excellent and everyone was pleased",
    "NEGATIVE": "the outcome was terrible and everyone was upset",
}


def _train(nlp, examples, steps, lr=3e-3):
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = lr
    history = []
    for _ in range(steps):
        losses = nlp.update(examples, sgd=optimizer, drop=0.0)
        history.append(sum(losses.values()))
    return history


def _textcat_examples(nlp):
    examples = []
    for seed, label in enumerate(["POSITIVE", "NEGATIVE", "POSITIVE", "NEGATIVE"]):
        text = f"{synthetic_text(8, seed=seed)} {CLASSES[label]}."
        ref = nlp.make_doc(text)
        ref.cats = {name: float(name == label) for name in CLASSES}
        examples.append(Example(nlp.make_doc(text), ref))
    return examples


def _ner_examples(nlp):
    examples = []
    for seed, (name, city) in enumerate([("Alice", "Paris"), ("Bob", "Berlin"), ("Carol", "Rome")]):
        text = f"{synthetic_text(6, seed=seed)} {name} flew to {city} today."
        ref = nlp.make_doc(text)
        words = [t.text for t in ref]
        ref.ents = [
            Span(ref, words.index(name), words.index(name) + 1, label="PER"),
            Span(ref, words.index(city), words.index(city) + 1, label="LOC"),
        ]
        examples.append(Example(nlp.make_doc(text), ref))
    return examples


def _qa_example(nlp, question, context, answer):
    doc = make_qa_doc(nlp, question, context)
    ref = make_qa_doc(nlp, question, context)
    start = ref.text.index(answer, ref.spans["question"][0].end_char)
    ref.spans["answer"] = [ref.char_span(start, start + len(answer))]
    return Example(doc, ref)


def _qa_examples(nlp, n_words):
    """Contexts of ``n_words`` filler words with the fact planted near the end."""
    examples = []
    for seed, (key, value) in enumerate([("alpha", "317"), ("beta", "842"), ("gamma", "509")]):
        filler = synthetic_text(n_words, seed=seed).rstrip(".")
        context = f"{filler}. The code of {key} is {value}. {synthetic_text(5, seed=seed + 10)}"
        examples.append(_qa_example(nlp, f"What is the code of {key}?", context, value))
    return examples


TASKS = {
    "longformer_textcat": (
        _textcat_examples,
        lambda doc, ref: max(doc.cats, key=doc.cats.get) == max(ref.cats, key=ref.cats.get),
    ),
    "longformer_textcat_multilabel": (
        _textcat_examples,
        lambda doc, ref: all((doc.cats[k] > 0.5) == (v > 0.5) for k, v in ref.cats.items()),
    ),
    "longformer_ner": (
        _ner_examples,
        lambda doc, ref: (
            [(e.start, e.end, e.label_) for e in doc.ents] == [(e.start, e.end, e.label_) for e in ref.ents]
        ),
    ),
    "longformer_qa": (
        lambda nlp: _qa_examples(nlp, 20),
        lambda doc, ref: doc.spans["answer"][0].text == ref.spans["answer"][0].text,
    ),
}


@pytest.fixture(scope="module", params=list(TASKS))
def trained(request, tiny_checkpoint):
    factory = request.param
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
    make_examples, correct = TASKS[factory]
    examples = make_examples(nlp)
    history = _train(nlp, examples, steps=40)
    return factory, nlp, examples, correct, history


def test_overfits_a_tiny_set(trained):
    factory, nlp, examples, correct, history = trained
    assert history[-1] < 0.2 * history[0], history
    for example in examples:
        doc = nlp(example.predicted.copy())
        assert correct(doc, example.reference), factory
    scores = nlp.evaluate(examples)
    key = {"longformer_ner": "ents_f", "longformer_qa": "qa_exact"}.get(factory, "cats_score")
    assert scores[key] == 1.0


def _predictions(doc):
    return (
        dict(doc.cats),
        [(e.start, e.end, e.label_) for e in doc.ents],
        [(s.start, s.end) for s in doc.spans.get("answer", [])],
    )


def test_saves_and_reloads_with_identical_predictions(trained, tmp_path):
    factory, nlp, examples, _, _ = trained
    nlp.to_disk(tmp_path / "pipeline")
    reloaded = spacy.load(tmp_path / "pipeline")
    from_bytes = spacy.blank("en").from_config(nlp.config).from_bytes(nlp.to_bytes())
    for example in examples:
        expected = _predictions(nlp(example.predicted.copy()))
        assert _predictions(reloaded(example.predicted.copy())) == expected
        assert _predictions(from_bytes(example.predicted.copy())) == expected


def test_pipe_equals_call(trained):
    factory, nlp, examples, _, _ = trained
    docs = [example.predicted.copy() for example in examples]
    singles = [nlp(doc.copy()) for doc in docs]
    for batch_size in (1, 2, 8):
        piped = list(nlp.pipe([doc.copy() for doc in docs], batch_size=batch_size))
        for one, other in zip(singles, piped, strict=True):
            assert _predictions(one)[1:] == _predictions(other)[1:]
            np.testing.assert_allclose(list(one.cats.values()), list(other.cats.values()), atol=1e-5)


def test_empty_docs(trained):
    factory, nlp, _, _, _ = trained
    doc = nlp(make_qa_doc(nlp, "What?", "") if factory == "longformer_qa" else "")
    if factory == "longformer_qa":
        assert len(doc.spans["answer"]) == 0
    elif factory == "longformer_ner":
        assert doc.ents == ()
    else:
        assert all(0.0 <= v <= 1.0 for v in doc.cats.values()) and len(doc.cats) == 2
        if factory == "longformer_textcat":
            assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)


def test_qa_doc_without_question_is_a_clear_error(tiny_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_qa", config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
    nlp.initialize()
    with pytest.raises(ValueError, match=r'doc.spans\["question"\].*no such group'):
        nlp("A context with no question.")
    doc = nlp.make_doc("Who? Someone.")
    doc.spans["question"] = [doc[1:2]]
    with pytest.raises(ValueError, match=r"starting at token 0"):
        nlp(doc)


def test_qa_context_longer_than_a_window(tiny_checkpoint):
    """The answer lies several windows in: every window repeats the question, and training
    finds the answer there."""
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_qa", config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
    examples = _qa_examples(nlp, 150)
    _train(nlp, examples, steps=40)
    qa = nlp.get_pipe("longformer_qa")
    encoder = qa.model.get_ref("encoder")
    doc = examples[0].predicted
    plan = plan_doc(
        doc,
        tokenizer_of(encoder),
        getter=encoder.attrs["global_attention"],
        window=126,
        overlap=encoder.attrs["window_overlap"],
        pair_key="question",
    )
    assert len(plan.windows) >= 3
    question = plan.ids[: plan.prefix]
    assert question[0] == 0 and list(question[-2:]) == [2, 2]
    assert plan.global_mask[: plan.prefix - 2].all() and not plan.global_mask[plan.prefix - 2 :].any()
    for example in examples:
        doc = nlp(example.predicted.copy())
        assert doc.spans["answer"][0].text == example.reference.spans["answer"][0].text


def test_textcat_reads_every_window_of_a_long_document(tiny_checkpoint):
    """Two docs share their first windows and differ only in the last: the mean of all windows'
    <s> states carries the difference, so the component learns what the start alone can't show."""
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_textcat", config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
    examples = []
    for label in ["POSITIVE", "NEGATIVE"]:
        text = f"{synthetic_text(150, seed=0)} {CLASSES[label]}."
        ref = nlp.make_doc(text)
        ref.cats = {name: float(name == label) for name in CLASSES}
        examples.append(Example(nlp.make_doc(text), ref))
    textcat = nlp.get_pipe("longformer_textcat")
    optimizer = nlp.initialize(lambda: examples)
    datas = textcat.model.get_ref("encoder").predict([eg.predicted for eg in examples])
    assert all(len(data.windows) >= 3 for data in datas)
    first = datas[0].windows[0]
    assert (datas[0].input_ids[slice(*first)] == datas[1].input_ids[slice(*first)]).all()
    for _ in range(20):
        for _ in range(10):
            nlp.update(examples, sgd=optimizer, drop=0.0)
        if nlp.evaluate(examples)["cats_score"] == 1.0:
            break
    assert nlp.evaluate(examples)["cats_score"] == 1.0


def test_listener_textcat_and_qa_on_a_shared_encoder(tiny_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "longformer_encoder",
        config={"model": {"name": str(tiny_checkpoint), "question_key": "question"}},
    )
    listener = {"@architectures": "spacy-longformer.LongformerListener.v1", "upstream": "*"}
    nlp.add_pipe("longformer_qa", config={"model": {"encoder": listener}})
    examples = _qa_examples(nlp, 20)
    history = _train(nlp, examples, steps=40)
    assert history[-1] < 0.2 * history[0]
    encoder = nlp.get_pipe("longformer_encoder")
    assert encoder.listening_components == ["longformer_qa"]
    for example in examples:
        doc = nlp(example.predicted.copy())
        assert doc.spans["answer"][0].text == example.reference.spans["answer"][0].text


def test_qa_listener_on_an_encoder_without_question_key_is_a_clear_error(tiny_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(tiny_checkpoint)}})
    listener = {"@architectures": "spacy-longformer.LongformerListener.v1", "upstream": "*"}
    nlp.add_pipe("longformer_qa", config={"model": {"encoder": listener}})
    nlp.initialize()
    with pytest.raises(ValueError, match="question_key"):
        nlp(make_qa_doc(nlp, "Who?", "Alice did."))


def test_listener_textcat(tiny_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(tiny_checkpoint)}})
    listener = {"@architectures": "spacy-longformer.LongformerListener.v1", "upstream": "longformer_encoder"}
    nlp.add_pipe("longformer_textcat", config={"model": {"encoder": listener}})
    examples = _textcat_examples(nlp)
    history = _train(nlp, examples, steps=40)
    assert history[-1] < 0.2 * history[0]
    assert nlp.evaluate(examples)["cats_score"] == 1.0


@pytest.mark.parametrize(
    "getter",
    [
        {"cls": False, "sentence_starts": True},
        {"cls": True, "entities": True},
        {"cls": False, "spans_key": "g"},
    ],
)
@pytest.mark.parametrize("factory", ["longformer_textcat", "longformer_ner", "longformer_qa"])
def test_every_getter_works_for_every_component(tiny_checkpoint, factory, getter):
    nlp = spacy.blank("en")
    if getter.get("sentence_starts"):
        nlp.add_pipe("sentencizer")
    encoder = {"name": str(tiny_checkpoint), "global_attention": getter}
    nlp.add_pipe(factory, config={"model": {"encoder": encoder}})
    examples = {
        "longformer_textcat": _textcat_examples,
        "longformer_ner": _ner_examples,
        "longformer_qa": lambda nlp: _qa_examples(nlp, 20),
    }[factory](nlp)
    for example in examples:
        example.predicted.spans["g"] = [example.predicted[1:3]]
        if "sentencizer" in nlp.pipe_names:  # nlp.update runs no sentencizer on the examples
            nlp.get_pipe("sentencizer")(example.predicted)
    _train(nlp, examples, steps=2)
    doc = examples[0].predicted.copy()
    doc.ents = [Span(doc, 1, 2, label="X")]
    model = nlp.get_pipe(factory).model.get_ref("encoder")
    choice = model.attrs["global_attention"](doc)
    assert choice.cls == getter["cls"] and len(choice.tokens) > 0
    nlp(doc)


def test_fresh_head_labels_and_errors(tiny_checkpoint):
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe(
        "longformer_textcat", config={"model": {"encoder": {"name": str(tiny_checkpoint)}}}
    )
    with pytest.raises(ValueError, match=r"LF135.*too few"):
        nlp.initialize()  # a base checkpoint has no labels, and no examples give any
    textcat.add_label("A")
    textcat.add_label("B")
    nlp.initialize()
    with pytest.raises(ValueError, match=r"LF137.*after its head has weights"):
        textcat.add_label("C")
    ner_nlp = spacy.blank("en")
    ner = ner_nlp.add_pipe("longformer_ner", config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
    ner.add_label("PER")
    ner_nlp.initialize()
    assert ner.tags == ("O", "B-PER", "I-PER")
    doc = ner_nlp.make_doc("Alice went to Paris")
    ref = ner_nlp.make_doc("Alice went to Paris")
    ref.ents = [Span(ref, 3, 4, label="LOC")]
    with pytest.raises(ValueError, match=r"LF139.*'LOC'"):
        ner_nlp.update([Example(doc, ref)])


def test_bad_encoder_block_is_a_clear_error(tiny_checkpoint):
    nlp = spacy.blank("en")
    bad = {
        "@architectures": "spacy.HashEmbedCNN.v2",
        "width": 8,
        "depth": 1,
        "embed_size": 100,
        "window_size": 1,
        "maxout_pieces": 2,
        "subword_features": False,
        "pretrained_vectors": None,
    }
    with pytest.raises(ValueError, match="LF131"):
        nlp.add_pipe("longformer_textcat", config={"model": {"encoder": bad}})


def test_global_attention_getter_default_per_component(tiny_checkpoint):
    nlp = spacy.blank("en")
    defaults = {}
    for factory in ("longformer_textcat", "longformer_ner", "longformer_qa"):
        pipe = nlp.add_pipe(factory, config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
        doc = make_qa_doc(nlp, "Who is it?", "It is Alice.")
        choice = pipe.model.get_ref("encoder").attrs["global_attention"](doc)
        defaults[factory] = (choice.cls, choice.tokens.tolist())
    assert defaults == {
        "longformer_textcat": (True, []),
        "longformer_ner": (False, []),
        "longformer_qa": (True, [0, 1, 2, 3]),
    }
    assert configure_global_attention()(nlp.make_doc("x")).cls


def test_issue14_a_pipeline_saved_by_0_1_is_a_clear_error(tiny_checkpoint, tmp_path):
    """0.1 saved a task head as a thinc layer; 0.2 keeps the torch head. Loading the old format
    names both versions and the fix instead of failing deep in thinc."""
    from thinc.api import Dropout, Linear, chain

    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_textcat", config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
    _train(nlp, _textcat_examples(nlp), steps=1)
    nlp.to_disk(tmp_path / "pipeline")
    old_head = chain(Dropout(0.1), Linear(32, 32), Dropout(0.1), Linear(2, 32))
    old_head.initialize()
    (tmp_path / "pipeline" / "longformer_textcat" / "head").write_bytes(old_head.to_bytes())
    with pytest.raises(
        ValueError, match=r"LF142.*saved by spacy-longformer 0\.1.*\(0\.2\.0\).*spacy train.*<0\.2"
    ):
        spacy.load(tmp_path / "pipeline")
