"""Task components against transformers' fine-tuned heads, trained, saved and reloaded."""

import shutil

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

TEXTS = [
    "Alice Smith signed the lease in Paris on Monday.",
    "naïve café in 東京 — résumé 🙂 done.",
    synthetic_text(35, seed=11),
]
# Texts no test fits on: the heads must agree with transformers on any input.
UNSEEN = [synthetic_text(30, seed=97), "Bob met Carol at the Acme office in Berlin."]
NER_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
QUESTIONS = [
    ("Who signed the lease?", "Alice Smith signed the lease in Paris on Monday, witnessed by Bob."),
    ("Where?", synthetic_text(30, seed=5)),
    ("What was lowered before the general study?", synthetic_text(35, seed=3)),
]


def _fine_tuned(tiny_checkpoint, path, cls, **config):
    """A transformers head on the tiny encoder with a random, decisive head, saved as DIR."""
    torch.manual_seed(0)
    model = cls.from_pretrained(tiny_checkpoint, **config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not name.startswith("longformer."):
                parameter.normal_(0.0, 1.0)
    model.save_pretrained(path)
    for file in tiny_checkpoint.iterdir():
        if file.name not in {"config.json", "model.safetensors"}:
            shutil.copy(file, path / file.name)
    return model


@pytest.fixture(scope="module")
def heads(tiny_checkpoint, tmp_path_factory):
    labels = ["POSITIVE", "NEGATIVE", "NEUTRAL"]
    textcat = tmp_path_factory.mktemp("textcat-head")
    ner = tmp_path_factory.mktemp("ner-head")
    qa = tmp_path_factory.mktemp("qa-head")
    return {
        "textcat": (
            textcat,
            _fine_tuned(
                tiny_checkpoint,
                textcat,
                transformers.LongformerForSequenceClassification,
                id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)},
            ),
        ),
        "ner": (
            ner,
            _fine_tuned(
                tiny_checkpoint,
                ner,
                transformers.LongformerForTokenClassification,
                id2label=dict(enumerate(NER_TAGS)),
                label2id={tag: i for i, tag in enumerate(NER_TAGS)},
            ),
        ),
        "qa": (qa, _fine_tuned(tiny_checkpoint, qa, transformers.LongformerForQuestionAnswering)),
        "tokenizer": transformers.LongformerTokenizerFast.from_pretrained(tiny_checkpoint),
    }


def _pipeline(factory, checkpoint, **model):
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config={"model": {"encoder": {"name": str(checkpoint)}, **model}})
    return nlp


@pytest.mark.parametrize("text", TEXTS + UNSEEN)
def test_textcat_from_hf_head_equals_transformers_softmax(heads, text):
    path, hf = heads["textcat"]
    nlp = _pipeline("longformer_textcat", path)
    nlp.initialize()  # no examples: labels and head come from the checkpoint
    assert nlp.get_pipe("longformer_textcat").labels == ("POSITIVE", "NEGATIVE", "NEUTRAL")
    inputs = heads["tokenizer"](text, return_tensors="pt")
    with torch.no_grad():
        probs = hf(**inputs).logits.softmax(-1)[0].numpy()  # <s> global by default, as ours
    cats = nlp(text).cats
    assert list(cats) == ["POSITIVE", "NEGATIVE", "NEUTRAL"]
    np.testing.assert_allclose(list(cats.values()), probs, atol=1e-4)


def test_multilabel_textcat_from_hf_head_equals_transformers_sigmoid(heads):
    path, hf = heads["textcat"]
    nlp = _pipeline("longformer_textcat_multilabel", path)
    nlp.initialize()
    for text in TEXTS + UNSEEN:
        with torch.no_grad():
            probs = hf(**heads["tokenizer"](text, return_tensors="pt")).logits.sigmoid()[0].numpy()
        np.testing.assert_allclose(list(nlp(text).cats.values()), probs, atol=1e-4)


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
        probs = hf(**inputs, global_attention_mask=glob).logits.softmax(-1)[0].numpy()
    np.testing.assert_allclose(list(nlp(doc).cats.values()), probs, atol=1e-4)


def _first_pieces(doc, offsets):
    """For each spaCy token, the first (non-special) piece overlapping its characters."""
    firsts = []
    for token in doc:
        start, end = token.idx, token.idx + len(token.text)
        firsts.append(next(i for i, (a, b) in enumerate(offsets) if b > a and b > start and a < end))
    return firsts


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
def test_ner_from_hf_head_equals_transformers_argmax_tags(heads, text):
    path, hf = heads["ner"]
    nlp = _pipeline("longformer_ner", path)
    nlp.initialize()
    ner = nlp.get_pipe("longformer_ner")
    assert ner.tags == tuple(NER_TAGS) and ner.labels == ("LOC", "PER")
    inputs = heads["tokenizer"](text, return_tensors="pt", return_offsets_mapping=True)
    offsets = inputs.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        piece_tags = hf(**inputs).logits.argmax(-1)[0].tolist()  # no global attention by default
    doc = nlp(text)
    tags = [NER_TAGS[piece_tags[i]] for i in _first_pieces(doc, offsets)]
    expected = _bio_entities(tags)
    assert expected, "the random head should predict some entities"
    assert [(e.start, e.end, e.label_) for e in doc.ents] == expected


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
