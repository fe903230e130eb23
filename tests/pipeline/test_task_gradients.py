"""Each task component's training step against transformers' head on the same fine-tuned
checkpoint: the loss its ``get_loss`` reports, the gradient it sends back into the logits, and the
parameter gradients of the encoder and the head after ``update`` (read before any optimizer step).

Oracle: ``LongformerFor*(..., labels=...)`` / ``(start_positions=..., end_positions=...)`` and
``loss.backward()``, on single-window documents, with gold pieces found from transformers' own
tokenizer offsets. Dropout is off on both sides: ``update(drop=0.0)`` for the head, and every
torch dropout of both encoders (``no_dropout_``). The encoder is the perturbed tiny checkpoint, so
every bias path carries gradient.
"""

import numpy as np
import pytest
import spacy
import torch
import transformers
from spacy.training import Example

from spacy_longformer import make_qa_doc
from spacy_longformer.ml.encoder_model import torch_model_of
from spacy_longformer.model.heads import TASK_HEADS
from spacy_longformer.model.hf_checkpoint import _ENCODER_BACKWARD, _translate

from ..model.oracle import doc_token_pieces, no_dropout_
from .conftest import NER_TAGS, TEXTCAT_LABELS

TEXTCAT_DOCS = [
    ("Alice Smith signed the lease in Paris on Monday.", "POSITIVE"),
    ("naïve café in 東京 — résumé  done.", "NEUTRAL"),
    ("The board\n\nrejected\tthe final report.", "NEGATIVE"),
]
# (text, [(entity text, label)]): whitespace tokens, multi-piece words and names
NER_DOCS = [
    ("Alice Smith signed the lease in Paris on Monday.", [("Alice Smith", "PER"), ("Paris", "LOC")]),
    ("They met  Bob in\n\nBerlin today.", [("Bob", "PER"), ("Berlin", "LOC")]),
    ("The résumé of Carol Okafor went to Madrid.", [("Carol Okafor", "PER"), ("Madrid", "LOC")]),
]
# (question, context, answer or None): answers of several words and pieces, one unanswerable
QA_DOCS = [
    ("Who signed the lease?", "The lease was signed by Acme  Northwind in Paris.", "Acme  Northwind"),
    ("Where did they meet?", "They met in\n\nNew  York City on Monday, said Okafor.", "New  York City"),
    ("What is the code?", "Nobody knows the code.", None),
    ("When?", "The final report was approved on Monday.", "Monday"),
]


def _pipeline(factory, path, **config):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe(factory, config={"model": {"encoder": {"name": str(path)}}, **config})
    nlp.initialize()
    no_dropout_(torch_model_of(pipe.model.get_ref("encoder")))
    return nlp, pipe


def _head_module(pipe):
    return pipe.model.get_ref("head").shims[0]._model


def _our_gradients(encoder, head, architecture):
    """Parameter gradients under transformers' names (``longformer.*`` and the head's)."""
    grads = {
        "longformer." + _translate(name, _ENCODER_BACKWARD): p.grad.clone()
        for name, p in encoder.named_parameters()
        if p.grad is not None
    }
    prefix = TASK_HEADS[architecture].head_attribute + "."
    grads.update({prefix + name: p.grad.clone() for name, p in head.named_parameters() if p.grad is not None})
    return grads


def _our_step(pipe, examples, architecture):
    """``get_loss`` on the logits, then one ``update`` with no optimizer: (loss, d_logits, grads)."""
    docs = [eg.predicted for eg in examples]
    loss, d_logits = pipe.get_loss(examples, pipe.model.predict(docs))
    encoder, head = torch_model_of(pipe.model.get_ref("encoder")), _head_module(pipe)
    encoder.zero_grad(set_to_none=True)
    head.zero_grad(set_to_none=True)
    losses = pipe.update(examples, drop=0.0, sgd=None)
    assert losses[pipe.name] == pytest.approx(loss, abs=1e-6)
    return loss, d_logits, _our_gradients(encoder, head, architecture)


def _hf_gradients(hf):
    return {name: p.grad.clone() for name, p in hf.named_parameters() if p.grad is not None}


def assert_same_gradients(ours, theirs, *, factor=1.0):
    """Every parameter's gradient is transformers' (times ``factor``). A parameter our fast path
    gives no gradient must have none in transformers either: the global key bias, which adds the
    same score to every key and so cancels in the softmax."""
    assert len(ours) > 30 and set(ours) <= set(theirs)
    scale = max(float(g.abs().max()) for g in theirs.values())
    for name, grad in theirs.items():
        if name.startswith("longformer.pooler."):
            continue
        got = ours.get(name, torch.zeros_like(grad))
        torch.testing.assert_close(got, grad * factor, rtol=1e-4, atol=1e-5 * scale, msg=name)


def _hf_model(cls, path, **config):
    model = cls.from_pretrained(path, **config)
    return no_dropout_(model).train()


# --- textcat ----------------------------------------------------------------------------------------


def _textcat_examples(nlp, exclusive):
    examples = []
    for i, (text, label) in enumerate(TEXTCAT_DOCS):
        ref = nlp.make_doc(text)
        if exclusive:
            ref.cats = {name: float(name == label) for name in TEXTCAT_LABELS}
        else:  # a different, independent set of labels per doc
            ref.cats = {name: float((j + i) % 2 == 0) for j, name in enumerate(TEXTCAT_LABELS)}
        examples.append(Example(nlp.make_doc(text), ref))
    return examples


@pytest.mark.parametrize("factory", ["longformer_textcat", "longformer_textcat_multilabel"])
def test_textcat_loss_and_gradients_equal_transformers(hf_heads, hf_tokenizer, factory):
    exclusive = factory == "longformer_textcat"
    nlp, pipe = _pipeline(factory, hf_heads["textcat"])
    examples = _textcat_examples(nlp, exclusive)
    architecture = "LongformerForSequenceClassification"
    loss, d_logits, ours = _our_step(pipe, examples, architecture)

    problem = "single_label_classification" if exclusive else "multi_label_classification"
    hf = _hf_model(
        transformers.LongformerForSequenceClassification, hf_heads["textcat"], problem_type=problem
    )
    inputs = hf_tokenizer([text for text, _ in TEXTCAT_DOCS], padding=True, return_tensors="pt")
    truths = [[eg.reference.cats[name] for name in TEXTCAT_LABELS] for eg in examples]
    labels = torch.tensor(truths).argmax(-1) if exclusive else torch.tensor(truths)
    out = hf(**inputs, labels=labels)  # <s> global by default, as the component's getter
    out.logits.retain_grad()
    out.loss.backward()
    assert loss == pytest.approx(float(out.loss.detach()), abs=1e-5)
    np.testing.assert_allclose(d_logits, out.logits.grad.numpy(), atol=1e-6)
    assert_same_gradients(ours, _hf_gradients(hf))


# --- NER --------------------------------------------------------------------------------------------


def _ner_examples(nlp):
    examples = []
    for text, entities in NER_DOCS:
        ref = nlp.make_doc(text)
        ref.ents = [
            ref.char_span(text.index(ent), text.index(ent) + len(ent), label=label) for ent, label in entities
        ]
        examples.append(Example(nlp.make_doc(text), ref))
    return examples


def _bio_ids(doc):
    """Gold tag id of each token: B- on an entity's first token, I- on the rest, else O."""
    tags = ["O"] * len(doc)
    for ent in doc.ents:
        tags[ent.start] = f"B-{ent.label_}"
        for i in range(ent.start + 1, ent.end):
            tags[i] = f"I-{ent.label_}"
    return [NER_TAGS.index(tag) for tag in tags]


def test_ner_loss_and_gradients_equal_transformers(hf_heads, hf_tokenizer):
    """Labels sit on the first piece of each word (whitespace tokens carry none), -100 elsewhere,
    as transformers' token-classification recipe puts them."""
    nlp, pipe = _pipeline("longformer_ner", hf_heads["ner"])
    examples = _ner_examples(nlp)
    loss, d_logits, ours = _our_step(pipe, examples, "LongformerForTokenClassification")

    hf = _hf_model(transformers.LongformerForTokenClassification, hf_heads["ner"])
    inputs = hf_tokenizer([text for text, _ in NER_DOCS], padding=True, return_tensors="pt")
    labels = torch.full(inputs["input_ids"].shape, -100)
    first_pieces = []
    for row, example in enumerate(examples):
        ref = example.reference
        rows = doc_token_pieces(hf_tokenizer, ref)
        words = [t.i for t in ref if not t.is_space]
        assert len({rows[i][0] for i in words}) == len(words)  # no two words share a first piece
        for i, tag in zip(words, np.asarray(_bio_ids(ref))[words], strict=True):
            labels[row, rows[i][0]] = int(tag)
        first_pieces.append([row_[0] for row_ in rows])
    out = hf(**inputs, labels=labels)  # no global attention by default, as the component's getter
    out.logits.retain_grad()
    out.loss.backward()
    assert loss == pytest.approx(float(out.loss.detach()), abs=1e-5)
    for row, (example, d, pieces) in enumerate(zip(examples, d_logits, first_pieces, strict=True)):
        expected = out.logits.grad[row, pieces].numpy()
        expected[[t.i for t in example.reference if t.is_space]] = 0.0
        np.testing.assert_allclose(d, expected, atol=1e-6)
    assert_same_gradients(ours, _hf_gradients(hf))


# --- QA ---------------------------------------------------------------------------------------------


def _qa_examples(nlp):
    examples = []
    for question, context, answer in QA_DOCS:
        doc, ref = make_qa_doc(nlp, question, context), make_qa_doc(nlp, question, context)
        if answer is None:
            ref.spans["answer"] = []
        else:
            start = ref.text.index(answer, ref.spans["question"][0].end_char)
            ref.spans["answer"] = [ref.char_span(start, start + len(answer))]
        examples.append(Example(doc, ref))
    return examples


def _hf_positions(tokenizer, question, context, answer):
    """Start and end piece of the answer from transformers' offsets (``<s>`` when none)."""
    if answer is None:
        return 0, 0
    encoding = tokenizer(question, context)
    start = context.index(answer)
    return (
        encoding.char_to_token(start, sequence_index=1),
        encoding.char_to_token(start + len(answer) - 1, sequence_index=1),
    )


def test_qa_loss_and_gradients_equal_transformers(hf_heads, hf_tokenizer):
    """Answers of several words and pieces, and an unanswerable question (its answer is ``<s>``).

    transformers is run one question at a time: in a padded batch its softmax also spreads over
    the padding's logits, which the component (and transformers on one unpadded question) leaves
    out. The component's loss is the mean of those per-question losses."""
    nlp, pipe = _pipeline("longformer_qa", hf_heads["qa"])
    examples = _qa_examples(nlp)
    loss, d_logits, ours = _our_step(pipe, examples, "LongformerForQuestionAnswering")

    hf = _hf_model(transformers.LongformerForQuestionAnswering, hf_heads["qa"])
    total = 0.0
    for (question, context, answer), d in zip(QA_DOCS, d_logits, strict=True):
        start, end = _hf_positions(hf_tokenizer, question, context, answer)
        if answer is not None:
            assert end > start  # several pieces
        inputs = hf_tokenizer(question, context, return_tensors="pt")
        out = hf(**inputs, start_positions=torch.tensor([start]), end_positions=torch.tensor([end]))
        out.start_logits.retain_grad()
        out.end_logits.retain_grad()
        (out.loss / len(QA_DOCS)).backward()
        total += float(out.loss.detach()) / len(QA_DOCS)
        np.testing.assert_allclose(d[:, 0], out.start_logits.grad[0].numpy(), atol=1e-6)
        np.testing.assert_allclose(d[:, 1], out.end_logits.grad[0].numpy(), atol=1e-6)
    assert loss == pytest.approx(total, abs=1e-5)
    assert_same_gradients(ours, _hf_gradients(hf))


# --- Listeners ------------------------------------------------------------------------------------


def _listener_pipeline(factory, path, grad_factor):
    """A shared encoder (``<s>`` global) and a listening component whose head comes from ``path``."""
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(path)}})
    listener = {
        "@architectures": "spacy-longformer.LongformerListener.v1",
        "upstream": "longformer_encoder",
        "grad_factor": grad_factor,
    }
    pipe = nlp.add_pipe(factory, config={"model": {"encoder": listener, "head_checkpoint": str(path)}})
    nlp.initialize()
    no_dropout_(torch_model_of(nlp.get_pipe("longformer_encoder").model))
    return nlp, pipe


LISTENING = {
    "longformer_ner": (
        "ner",
        transformers.LongformerForTokenClassification,
        "LongformerForTokenClassification",
    ),
    "longformer_textcat": (
        "textcat",
        transformers.LongformerForSequenceClassification,
        "LongformerForSequenceClassification",
    ),
}


@pytest.mark.parametrize("grad_factor", [1.0, 0.5])
@pytest.mark.parametrize("factory", list(LISTENING))
def test_listener_sends_grad_factor_times_transformers_gradient_to_the_encoder(
    hf_heads, hf_tokenizer, factory, grad_factor
):
    """``nlp.update`` (no optimizer step) through a listener: the shared encoder's gradients are
    transformers' times ``grad_factor``, the head's are transformers' as they are. NER sends piece
    gradients; textcat sends ``<s>`` window-state gradients."""
    kind, cls, architecture = LISTENING[factory]
    texts = [text for text, _ in (NER_DOCS if kind == "ner" else TEXTCAT_DOCS)]
    nlp, pipe = _listener_pipeline(factory, hf_heads[kind], grad_factor)
    examples = _ner_examples(nlp) if kind == "ner" else _textcat_examples(nlp, exclusive=True)
    encoder = torch_model_of(nlp.get_pipe("longformer_encoder").model)
    head = _head_module(pipe)
    encoder.zero_grad(set_to_none=True)
    head.zero_grad(set_to_none=True)
    losses = nlp.update(examples, sgd=False, drop=0.0)
    ours = _our_gradients(encoder, head, architecture)

    hf = _hf_model(cls, hf_heads[kind])
    inputs = hf_tokenizer(texts, padding=True, return_tensors="pt")
    glob = torch.zeros_like(inputs["input_ids"])
    glob[:, 0] = 1  # the shared encoder's getter: <s>
    if kind == "ner":
        labels = torch.full(inputs["input_ids"].shape, -100)
        for row, example in enumerate(examples):
            rows = doc_token_pieces(hf_tokenizer, example.reference)
            for token, tag in zip(example.reference, _bio_ids(example.reference), strict=True):
                if not token.is_space:
                    labels[row, rows[token.i][0]] = tag
    else:
        labels = torch.tensor([TEXTCAT_LABELS.index(label) for _, label in TEXTCAT_DOCS])
    out = hf(**inputs, global_attention_mask=glob, labels=labels)
    out.loss.backward()
    theirs = _hf_gradients(hf)
    assert losses[pipe.name] == pytest.approx(float(out.loss.detach()), abs=1e-5)
    head_names = {name for name in theirs if not name.startswith("longformer.")}
    assert head_names and head_names <= set(ours)
    for name in head_names:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-7)
    encoder_ours = {k: v for k, v in ours.items() if k not in head_names}
    encoder_theirs = {k: v for k, v in theirs.items() if k not in head_names}
    assert_same_gradients(encoder_ours, encoder_theirs, factor=grad_factor)


# --- Beyond transformers' heads: missing labels, documents of several windows -----------------------


def test_multilabel_loss_leaves_out_the_labels_a_doc_does_not_give(hf_heads):
    """A label missing from ``doc.cats`` carries no loss and gets no gradient: the loss is torch's
    binary cross-entropy of each (doc, label) pair the docs give, on the component's logits,
    averaged over those pairs only (transformers' head loss has no way to leave a label out)."""
    nlp, pipe = _pipeline("longformer_textcat_multilabel", hf_heads["textcat"])
    examples = _textcat_examples(nlp, exclusive=False)
    del examples[0].reference.cats["NEGATIVE"]
    del examples[2].reference.cats["POSITIVE"]
    del examples[2].reference.cats["NEUTRAL"]
    logits = pipe.model.predict([eg.predicted for eg in examples])
    loss, d_logits = pipe.get_loss(examples, logits)
    scores = torch.tensor(logits, requires_grad=True)
    given = torch.tensor([[name in eg.reference.cats for name in TEXTCAT_LABELS] for eg in examples])
    truths = torch.tensor([[eg.reference.cats.get(name, 0.0) for name in TEXTCAT_LABELS] for eg in examples])
    each = torch.nn.functional.binary_cross_entropy_with_logits(scores, truths, reduction="none")
    expected = each[given].mean()
    expected.backward()
    assert loss == pytest.approx(float(expected.detach()), abs=1e-6)
    np.testing.assert_allclose(d_logits, scores.grad.numpy(), atol=1e-7)
    assert not d_logits[~given.numpy()].any()


def test_textcat_on_a_document_of_several_windows_backpropagates_through_each(hf_heads):
    """A document read as three windows is classified from the mean of the windows' ``<s>``
    states. Oracle: transformers' encoder on each window alone, the mean of their ``<s>`` rows
    through transformers' classification head, cross-entropy, ``backward``."""
    path = hf_heads["textcat"]
    nlp = spacy.blank("en")
    encoder = {"name": str(path), "max_window_pieces": 16, "window_overlap": 4}
    pipe = nlp.add_pipe("longformer_textcat", config={"model": {"encoder": encoder}})
    nlp.initialize()
    no_dropout_(torch_model_of(pipe.model.get_ref("encoder")))
    text = "The board rejected the final report on Monday, and Acme  Northwind sold the building."
    ref = nlp.make_doc(text)
    ref.cats = {name: float(name == "NEGATIVE") for name in TEXTCAT_LABELS}
    examples = [Example(nlp.make_doc(text), ref)]
    loss, d_logits, ours = _our_step(pipe, examples, "LongformerForSequenceClassification")

    data = pipe.model.get_ref("encoder").predict([nlp.make_doc(text)])[0]
    assert len(data.windows) >= 3
    hf = _hf_model(transformers.LongformerForSequenceClassification, path)
    rows = []
    for a, b in data.windows:
        ids = torch.tensor([[int(data.input_ids[0]), *data.input_ids[a:b].tolist(), int(data.input_ids[-1])]])
        glob = torch.zeros_like(ids)
        glob[0, 0] = 1
        rows.append(hf.longformer(ids, global_attention_mask=glob).last_hidden_state[0, 0])
    logits = hf.classifier(torch.stack(rows).mean(0)[None, None, :])
    logits.retain_grad()
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor([TEXTCAT_LABELS.index("NEGATIVE")]))
    expected.backward()
    assert loss == pytest.approx(float(expected.detach()), abs=1e-5)
    np.testing.assert_allclose(d_logits, logits.grad.numpy(), atol=1e-6)
    assert_same_gradients(ours, _hf_gradients(hf))
