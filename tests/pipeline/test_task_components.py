"""Task components against transformers' fine-tuned heads, trained, saved and reloaded."""

import numpy as np
import pytest
import spacy
import torch
import transformers
from spacy.training import Example

from spacy_longformer import make_qa_doc
from spacy_longformer.pipeline.ner import decode_tags
from spacy_longformer.pipeline.qa import best_span, score_qa
from spacy_longformer.random_checkpoint import synthetic_text

from ..model.oracle import doc_token_pieces
from .conftest import NER_TAGS

TEXTS = [
    "Alice Smith signed the lease in Paris on Monday.",
    "naïve café in 東京 — résumé 🙂 done.",
    synthetic_text(35, seed=11),
]
# Texts no test fits on: the heads must agree with transformers on any input.
UNSEEN = [synthetic_text(30, seed=97), "Bob met Carol at the Acme office in Berlin."]
QUESTIONS = [
    ("Who signed the lease?", "Alice Smith signed the lease in Paris on Monday, witnessed by Bob."),
    ("Where?", synthetic_text(30, seed=5)),
    ("What was lowered before the general study?", synthetic_text(35, seed=3)),
]


@pytest.fixture(scope="module")
def heads(hf_heads, hf_tokenizer):
    """Each fine-tuned head folder (``conftest.hf_heads``, on the perturbed encoder) with its
    transformers model in eval mode."""
    classes = {
        "textcat": transformers.LongformerForSequenceClassification,
        "ner": transformers.LongformerForTokenClassification,
        "qa": transformers.LongformerForQuestionAnswering,
    }
    loaded = {kind: (path, classes[kind].from_pretrained(path).eval()) for kind, path in hf_heads.items()}
    return {**loaded, "tokenizer": hf_tokenizer}


def _pipeline(factory, checkpoint, **model):
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config={"model": {"encoder": {"name": str(checkpoint)}, **model}})
    return nlp


@pytest.mark.parametrize("text", TEXTS + UNSEEN)
def test_textcat_from_hf_head_equals_transformers_logits(heads, text):
    path, hf = heads["textcat"]
    nlp = _pipeline("longformer_textcat", path)
    nlp.initialize()  # no examples: labels and head come from the checkpoint
    textcat = nlp.get_pipe("longformer_textcat")
    assert textcat.labels == ("POSITIVE", "NEGATIVE", "NEUTRAL")
    inputs = heads["tokenizer"](text, return_tensors="pt")
    with torch.no_grad():
        logits = hf(**inputs).logits[0].numpy()  # <s> global by default, as ours
    np.testing.assert_allclose(textcat.model.predict([nlp.make_doc(text)])[0], logits, atol=1e-4)
    cats = nlp(text).cats
    assert list(cats) == ["POSITIVE", "NEGATIVE", "NEUTRAL"]
    np.testing.assert_allclose(list(cats.values()), torch.tensor(logits).softmax(-1).numpy(), atol=1e-5)


def test_multilabel_textcat_from_hf_head_equals_transformers_logits(heads):
    path, hf = heads["textcat"]
    nlp = _pipeline("longformer_textcat_multilabel", path)
    nlp.initialize()
    textcat = nlp.get_pipe("longformer_textcat_multilabel")
    for text in TEXTS + UNSEEN:
        with torch.no_grad():
            logits = hf(**heads["tokenizer"](text, return_tensors="pt")).logits[0]
        np.testing.assert_allclose(textcat.model.predict([nlp.make_doc(text)])[0], logits.numpy(), atol=1e-4)
        np.testing.assert_allclose(list(nlp(text).cats.values()), logits.sigmoid().numpy(), atol=1e-5)


def test_textcat_global_attention_from_a_span_group_matches_transformers(heads):
    path, hf = heads["textcat"]
    nlp = _pipeline(
        "longformer_textcat", path, encoder={"name": str(path), "global_attention": {"spans_key": "g"}}
    )
    nlp.initialize()
    doc = nlp.make_doc(TEXTS[0])
    doc.spans["g"] = [doc[3:5]]  # "the lease"
    inputs = heads["tokenizer"](TEXTS[0], return_tensors="pt", return_offsets_mapping=True)
    offsets = inputs.pop("offset_mapping")[0]
    glob = torch.zeros_like(inputs["input_ids"])
    glob[0, 0] = 1
    span = doc[3:5]
    glob[0, (offsets[:, 1] > span.start_char) & (offsets[:, 0] < span.end_char)] = 1
    with torch.no_grad():
        logits = hf(**inputs, global_attention_mask=glob).logits[0].numpy()
    np.testing.assert_allclose(nlp.get_pipe("longformer_textcat").model.predict([doc])[0], logits, atol=1e-4)


def _bio_entities(tags):
    """Independent decoder: B-X starts, I-X continues an X, else starts one."""
    entities, current = [], None
    for i, tag in enumerate(tags):
        if tag == "O":
            current = None
            continue
        prefix, label = tag.split("-", 1)
        if prefix == "I" and current is not None and current[2] == label:
            current[1] = i + 1
        else:
            current = [i, i + 1, label]
            entities.append(current)
    return [tuple(e) for e in entities]


@pytest.mark.parametrize("text", TEXTS[:1] + [TEXTS[2]] + UNSEEN)
def test_ner_from_hf_head_equals_transformers_logits_and_tags(heads, text):
    """Each token's logits are transformers' at its first piece (found from transformers' offsets)."""
    path, hf = heads["ner"]
    nlp = _pipeline("longformer_ner", path)
    nlp.initialize()
    ner = nlp.get_pipe("longformer_ner")
    assert ner.tags == tuple(NER_TAGS) and ner.labels == ("LOC", "PER")
    with torch.no_grad():
        logits = hf(**heads["tokenizer"](text, return_tensors="pt")).logits[0]  # no global attention
    doc = nlp.make_doc(text)
    first = [row[0] for row in doc_token_pieces(heads["tokenizer"], doc)]
    np.testing.assert_allclose(ner.model.predict([doc])[0], logits[first].numpy(), atol=1e-4)
    tags = [NER_TAGS[i] for i in logits[first].argmax(-1).tolist()]
    expected = _bio_entities(tags)
    assert expected, "the random head should predict some entities"
    assert [(e.start, e.end, e.label_) for e in nlp(text).ents] == expected


def _hf_answer(hf, tokenizer, doc, question, context, max_length=30):
    inputs = tokenizer(question, context, return_tensors="pt", return_offsets_mapping=True)
    offsets = inputs.pop("offset_mapping")[0].tolist()
    sequence_ids = inputs.sequence_ids(0)
    with torch.no_grad():
        out = hf(**inputs)  # question global by default
    start, end = out.start_logits[0].numpy(), out.end_logits[0].numpy()
    context_pieces = [i for i, s in enumerate(sequence_ids) if s == 1]
    best = max(
        ((s, e) for s in context_pieces for e in context_pieces if s <= e < s + max_length),
        key=lambda p: start[p[0]] + end[p[1]],
    )
    shift = doc.spans["question"][0].end_char + 1
    span = doc.char_span(offsets[best[0]][0] + shift, offsets[best[1]][1] + shift, alignment_mode="expand")
    return span.start, span.end, float(start[best[0]] + end[best[1]])


@pytest.mark.parametrize("question,context", QUESTIONS + [("Who met whom?", UNSEEN[1])])
def test_qa_from_hf_head_equals_transformers_best_span(heads, question, context):
    path, hf = heads["qa"]
    nlp = _pipeline("longformer_qa", path)
    nlp.initialize()
    doc = nlp(make_qa_doc(nlp, question, context))
    answers = doc.spans["answer"]
    assert len(answers) == 1
    start, end, score = _hf_answer(hf, heads["tokenizer"], doc, question, context)
    assert (answers[0].start, answers[0].end) == (start, end)
    assert answers[0].start >= doc.spans["question"][0].end
    assert answers.attrs["score"] == pytest.approx(score, abs=1e-3)


def test_qa_from_hf_head_equals_transformers_logits(heads):
    """The pieces are transformers' ``tokenizer(question, context)``; their start and end logits
    are transformers' (the question global by default, on both sides)."""
    path, hf = heads["qa"]
    nlp = _pipeline("longformer_qa", path)
    nlp.initialize()
    qa = nlp.get_pipe("longformer_qa")
    for question, context in QUESTIONS:
        inputs = heads["tokenizer"](question, context, return_tensors="pt")
        with torch.no_grad():
            out = hf(**inputs)
        ((logits, data),) = qa.model.predict([make_qa_doc(nlp, question, context)])
        assert data.input_ids.tolist() == inputs["input_ids"][0].tolist()
        np.testing.assert_allclose(logits[:, 0], out.start_logits[0].numpy(), atol=1e-4)
        np.testing.assert_allclose(logits[:, 1], out.end_logits[0].numpy(), atol=1e-4)


def _qa_nlp(path, **settings):
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_qa", config={"model": {"encoder": {"name": str(path)}}, **settings})
    nlp.initialize()
    return nlp


@pytest.mark.parametrize("max_length", [1, 3])
def test_qa_max_answer_length_equals_transformers_best_span_of_that_length(heads, max_length):
    path, hf = heads["qa"]
    nlp = _qa_nlp(path, max_answer_length=max_length)
    for question, context in QUESTIONS:
        doc = nlp(make_qa_doc(nlp, question, context))
        expected = _hf_answer(hf, heads["tokenizer"], doc, question, context, max_length=max_length)
        answer = doc.spans["answer"][0]
        assert (answer.start, answer.end) == expected[:2]
        assert doc.spans["answer"].attrs["score"] == pytest.approx(expected[2], abs=1e-3)


CRAFTED_QUESTION = "Who signed the lease?"
CRAFTED_CONTEXT = "The lease was signed by Acme Northwind in Paris on Monday."


def _crafted_logits(tokenizer, spans):
    """Start/end logits over ``tokenizer(question, context)``'s pieces: -5 everywhere, 9 on every
    question piece (never an answer, so a rule reading them shows), and for each
    ``(text, start_logit, end_logit)`` in ``spans`` those values on the first and last piece of
    ``text`` in the context. ``<s>`` gets ``spans[0]``'s pair ``("<s>", start, end)``."""
    encoding = tokenizer(CRAFTED_QUESTION, CRAFTED_CONTEXT)
    logits = np.full((len(encoding["input_ids"]), 2), -5.0, dtype="f")
    logits[[i for i, s in enumerate(encoding.sequence_ids()) if s == 0]] = 9.0
    pieces = {}
    for text, start, end in spans:
        if text == "<s>":
            first = last = 0
        else:
            char = CRAFTED_CONTEXT.index(text)
            first = encoding.char_to_token(char, sequence_index=1)
            last = encoding.char_to_token(char + len(text) - 1, sequence_index=1)
        logits[first, 0], logits[last, 1] = start, end
        pieces[text] = (first, last)
    return logits, pieces


def _answer_with_logits(nlp, monkeypatch, logits):
    """The pipe's answer when its model gives ``logits`` (and the encoder's real data)."""
    from thinc.api import Model

    qa = nlp.get_pipe("longformer_qa")
    doc = make_qa_doc(nlp, CRAFTED_QUESTION, CRAFTED_CONTEXT)
    ((real, data),) = qa.model.predict([doc])
    assert real.shape == logits.shape
    original = Model.predict

    def predict(self, X):
        return [(logits, data)] if self is qa.model else original(self, X)

    monkeypatch.setattr(Model, "predict", predict)
    answers = nlp(doc).spans["answer"]
    return (answers[0].text, answers.attrs["score"]) if len(answers) else (None, answers.attrs["score"])


# (<s> start, <s> end, the best span's start and end logits, answer with allow_no_answer): the
# no-answer score is <s>'s start + end logit, against the best span's start + end.
NO_ANSWER_CASES = [
    (5.0, 1.0, 4.0, 1.5, None),  # 6 > 5.5: no answer, though <s>'s end alone is low
    (1.0, 5.0, 4.0, 1.5, None),  # 6 > 5.5, though <s>'s start alone is low
    (5.0, -4.0, 4.0, 1.5, "Acme Northwind"),  # 1 < 5.5, though <s>'s start alone beats the span's
    (-4.0, 5.0, 4.0, 1.5, "Acme Northwind"),  # 1 < 5.5, though <s>'s end alone beats the span's
    (2.0, 2.0, 2.5, 2.5, "Acme Northwind"),  # 4 < 5
]


@pytest.mark.parametrize("cls_start,cls_end,span_start,span_end,expected", NO_ANSWER_CASES)
def test_allow_no_answer_compares_the_cls_score_with_the_best_span(
    heads, monkeypatch, cls_start, cls_end, span_start, span_end, expected
):
    path, _ = heads["qa"]
    logits, _ = _crafted_logits(
        heads["tokenizer"], [("<s>", cls_start, cls_end), ("Acme Northwind", span_start, span_end)]
    )
    text, score = _answer_with_logits(_qa_nlp(path, allow_no_answer=True), monkeypatch, logits)
    assert text == expected
    assert score == (None if expected is None else pytest.approx(span_start + span_end))
    # Without allow_no_answer the best span is the answer whatever <s> scores.
    monkeypatch.undo()
    assert _answer_with_logits(_qa_nlp(path), monkeypatch, logits)[0] == "Acme Northwind"


def test_allow_no_answer_weighs_only_spans_within_max_answer_length(heads, monkeypatch):
    """A long span outscores <s>, but is longer than max_answer_length: the best span that may be
    an answer is the short one, which <s> beats."""
    path, _ = heads["qa"]
    logits, pieces = _crafted_logits(
        heads["tokenizer"], [("<s>", 3.0, 3.0), ("Acme Northwind", 5.0, 5.0), ("Paris", 2.0, 2.0)]
    )
    long_length = pieces["Acme Northwind"][1] - pieces["Acme Northwind"][0] + 1
    short_length = pieces["Paris"][1] - pieces["Paris"][0] + 1
    assert short_length < long_length
    for max_length, allow, expected in [
        (long_length, True, "Acme Northwind"),  # 10 > 6
        (long_length - 1, True, None),  # only Paris (4) may answer, and 6 > 4
        (long_length - 1, False, "Paris"),
    ]:
        nlp = _qa_nlp(path, allow_no_answer=allow, max_answer_length=max_length)
        assert _answer_with_logits(nlp, monkeypatch, logits)[0] == expected, (max_length, allow)
        monkeypatch.undo()


def test_decode_tags_schemes():
    assert decode_tags(["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-PER"]) == [
        (0, 2, "PER"),
        (3, 5, "LOC"),
        (5, 6, "LOC"),
        (6, 7, "PER"),
    ]
    assert decode_tags(["S-PER", "S-PER", "B-LOC", "E-LOC", "I-LOC"]) == [
        (0, 1, "PER"),
        (1, 2, "PER"),
        (2, 4, "LOC"),
        (4, 5, "LOC"),
    ]
    assert decode_tags(["U-ORG", "B-ORG", "L-ORG", "PER", "PER", "O"]) == [
        (0, 1, "ORG"),
        (1, 3, "ORG"),
        (3, 5, "PER"),
    ]


def test_best_span_rules():
    start = np.array([9.0, 0.0, 1.0, 5.0, 0.0, 0.0])
    end = np.array([9.0, 0.0, 0.0, 0.0, 0.0, 4.0])
    assert best_span(start, end, 1, 6, max_length=30) == (3, 5, 9.0)  # <s> (piece 0) excluded
    assert best_span(start, end, 1, 6, max_length=2) == (3, 3, 5.0)  # at most 2 pieces
    assert best_span(start, end, 4, 4, max_length=30) is None  # empty context


def test_qa_scorer_is_squad_exact_match_and_token_f1():
    nlp = spacy.blank("en")
    cases = [
        ("Where?", "He went to the Paris office.", "the Paris", "Paris"),  # articles ignored: EM 1
        ("Where?", "He went to Paris France today.", "Paris France", "Paris"),  # F1 2/3
        ("Who?", "Nobody knows.", None, None),  # unanswerable, answered with nothing
    ]
    examples = []
    for question, context, predicted, gold in cases:
        pred, ref = make_qa_doc(nlp, question, context), make_qa_doc(nlp, question, context)
        for doc, answer in ((pred, predicted), (ref, gold)):
            if answer is None:
                doc.spans["answer"] = []
            else:
                start = doc.text.index(answer, doc.spans["question"][0].end_char)
                doc.spans["answer"] = [doc.char_span(start, start + len(answer))]
        examples.append(Example(pred, ref))
    scores = score_qa(examples)
    assert scores["qa_exact"] == pytest.approx(2 / 3)
    assert scores["qa_f1"] == pytest.approx((1 + 2 / 3 + 1) / 3)


def test_listener_textcat_with_head_checkpoint_equals_transformers(heads):
    """A shared encoder and a listening textcat whose head comes from `head_checkpoint`."""
    path, hf = heads["textcat"]
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(path)}})
    listener = {"@architectures": "spacy-longformer.LongformerListener.v1", "upstream": "*"}
    nlp.add_pipe("longformer_textcat", config={"model": {"encoder": listener, "head_checkpoint": str(path)}})
    nlp.initialize()
    for text in UNSEEN:
        with torch.no_grad():
            probs = hf(**heads["tokenizer"](text, return_tensors="pt")).logits.softmax(-1)[0].numpy()
        np.testing.assert_allclose(list(nlp(text).cats.values()), probs, atol=1e-4)
