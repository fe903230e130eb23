"""A catalogue of what a user may feed us. Every case ends in a right answer (checked) or an error
of ours that names the problem (`[LF###]`), never a bare error from torch, thinc or spaCy.

Kinds: checkpoint folders, model inputs, documents, span groups, QA docs, training data; then the
invariants a pipeline keeps: a doc alone equals it in a batch, bytes round-trip unchanged.
"""

import json
import shutil

import numpy as np
import pytest
import spacy
import torch
from safetensors.torch import load_file
from spacy.tokens import Doc, Span
from spacy.training import Example

from spacy_longformer import make_qa_doc
from spacy_longformer.model import LongformerConfig, LongformerForSequenceClassification, LongformerModel
from spacy_longformer.random_checkpoint import synthetic_text


def _config_edit(**changes):
    def edit(folder):
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **changes}))

    return edit


def _sharded(folder):
    LongformerModel.from_pretrained(folder).save_pretrained(folder, max_shard_size=20_000)
    (folder / "model.safetensors").unlink()


def _pickle_only(folder):
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


# name -> (edit of a good checkpoint folder, code the pipe's error wraps, or None if it loads)
CHECKPOINTS = {
    "no config.json": (lambda f: (f / "config.json").unlink(), "LF050"),
    "config.json not JSON": (lambda f: (f / "config.json").write_text("{"), "LF010"),
    "config.json a list": (lambda f: (f / "config.json").write_text("[]"), "LF010"),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), "LF051"),
    "weights cut short": (
        lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:999]),
        "LF053",
    ),
    "weights empty": (lambda f: (f / "model.safetensors").write_bytes(b""), "LF053"),
    "no tokenizer files": (
        lambda f: [p.unlink() for p in f.iterdir() if p.name not in ("config.json", "model.safetensors")],
        "LF081",
    ),
    "tokenizer.json not JSON": (lambda f: (f / "tokenizer.json").write_text("{x"), "LF082"),
    "hidden size not the weights'": (_config_edit(hidden_size=64, num_attention_heads=4), "LF055"),
    "vocabulary smaller than the weights'": (_config_edit(vocab_size=10), "LF055"),
    "more layers than the weights": (_config_edit(num_hidden_layers=3, attention_window=16), "LF056"),
    "fewer layers than the weights": (_config_edit(num_hidden_layers=1, attention_window=16), "LF060"),
    "odd window": (_config_edit(attention_window=15), "LF003"),
    "unknown activation": (_config_edit(hidden_act="swoosh"), "LF006"),
    "pickle weights only": (_pickle_only, "LF052"),
    "sharded": (_sharded, None),
    "sharded, a shard missing": (lambda f: (_sharded(f), next(f.glob("model-00001-*")).unlink()), "LF054"),
    "sharded, index broken": (
        lambda f: (_sharded(f), (f / "model.safetensors.index.json").write_text("{}")),
        "LF058",
    ),
}


@pytest.mark.parametrize("case", list(CHECKPOINTS))
def test_checkpoint_folders(tiny_checkpoint, tmp_path, case):
    edit, code = CHECKPOINTS[case]
    folder = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint, folder)
    edit(folder)
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(folder)}})
    if code is None:
        nlp.initialize()
        assert nlp("a short text").tensor.shape[0] == 3
        return
    with pytest.raises(ValueError, match=rf"\[LF121\].*\[{code}\]"):
        nlp.initialize()


def test_pickle_weights_load_when_asked(tiny_checkpoint, tmp_path):
    folder = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint, folder)
    _pickle_only(folder)
    model = LongformerModel.from_pretrained(folder, allow_pickle=True)
    expected = LongformerModel.from_pretrained(tiny_checkpoint)
    for (name, a), (_, b) in zip(model.state_dict().items(), expected.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_a_checkpoint_that_is_a_file_or_nowhere(tiny_checkpoint, tmp_path):
    for name in (tiny_checkpoint / "config.json", tmp_path / "nowhere"):
        nlp = spacy.blank("en")
        nlp.add_pipe("longformer_encoder", config={"model": {"name": str(name)}})
        with pytest.raises(ValueError, match=r"\[LF121\].*\[LF050\]"):
            nlp.initialize()


@pytest.fixture(scope="module")
def model():
    config = LongformerConfig(
        vocab_size=80, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
        attention_window=[4, 8], max_position_embeddings=300,
    )  # fmt: skip
    return LongformerModel(config).eval()


def _ids(batch=3, length=50, seed=0):
    ids = torch.randint(3, 80, (batch, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = 0
    return ids


def _mask_with(lengths, length=50):
    mask = torch.zeros(len(lengths), length, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    return mask


# name -> inputs; each must give finite states of the right shape, equal to the 0/1 long-mask form
INPUTS = {
    "int32 ids": lambda: {"input_ids": _ids().int()},
    "uint8 ids": lambda: {"input_ids": _ids().to(torch.uint8)},
    "bool attention mask": lambda: {"input_ids": _ids(), "attention_mask": _mask_with([50, 20, 3]).bool()},
    "float attention mask": lambda: {"input_ids": _ids(), "attention_mask": _mask_with([50, 20, 3]).float()},
    "attention mask 0/1/2": lambda: {"input_ids": _ids(), "attention_mask": _mask_with([50, 20, 3]) * 2},
    "bool global mask": lambda: {"input_ids": _ids(), "global_attention_mask": _mask_with([2, 2, 2]).bool()},
    "float global mask": lambda: {
        "input_ids": _ids(),
        "global_attention_mask": _mask_with([2, 2, 2]).float(),
    },
    "an all-padding row": lambda: {"input_ids": _ids(), "attention_mask": _mask_with([50, 0, 9])},
    "every row all padding": lambda: {"input_ids": _ids(), "attention_mask": _mask_with([0, 0, 0])},
    "every token global": lambda: {
        "input_ids": _ids(),
        "global_attention_mask": torch.ones(3, 50, dtype=torch.long),
    },
    "global on padding": lambda: {
        "input_ids": _ids(),
        "attention_mask": _mask_with([50, 10, 10]),
        "global_attention_mask": torch.ones(3, 50, dtype=torch.long),
    },
    "lengths 298, 3 and 1": lambda: {
        "input_ids": _ids(length=298),
        "attention_mask": _mask_with([298, 3, 1], 298),
    },
}


def _canonical(inputs: dict) -> dict:
    """The same inputs in the documented form: long ids, 0/1 long masks, 1 for global."""
    ids = inputs["input_ids"].long()
    mask = inputs.get("attention_mask")
    glob = inputs.get("global_attention_mask")
    canonical = {"input_ids": ids}
    if mask is not None:
        mask = mask.long()
        canonical["attention_mask"] = (mask != 0).long()
        glob = (mask == 2).long() if glob is None else glob.long() | (mask == 2).long()
    if glob is not None:
        canonical["global_attention_mask"] = (glob != 0).long()
    return canonical


@pytest.mark.parametrize("case", list(INPUTS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_model_inputs(model, case, dtype):
    inputs = INPUTS[case]()
    model = model.to(dtype)
    with torch.no_grad():
        got = model(**inputs).last_hidden_state.float()
        expected = model(**_canonical(inputs)).last_hidden_state.float()
    model.float()
    mask = _canonical(inputs).get("attention_mask", torch.ones(got.shape[:2], dtype=torch.long)).bool()
    assert got.shape[:2] == inputs["input_ids"].shape and got.shape[-1] == 16
    assert torch.isfinite(got).all()
    assert torch.equal(got[mask], expected[mask])


BAD_INPUTS = {
    "negative id": ({"input_ids": torch.tensor([[0, -1, 2]])}, "LF021"),
    "id past the vocabulary": ({"input_ids": torch.tensor([[0, 80, 2]])}, "LF021"),
    "too long": ({"input_ids": _ids(1, 299)}, "LF020"),
    "1-D ids": ({"input_ids": torch.tensor([0, 5, 2])}, "LF024"),
    "rows of no tokens": ({"input_ids": torch.zeros(2, 0, dtype=torch.long)}, "LF036"),
    "float ids": ({"input_ids": _ids().float()}, "LF035"),
    "mask of another shape": ({"input_ids": _ids(), "attention_mask": torch.ones(3, 49)}, "LF024"),
    "mask value 3": ({"input_ids": _ids(), "attention_mask": torch.full((3, 50), 3)}, "LF034"),
    "mask value -1": ({"input_ids": _ids(), "attention_mask": -torch.ones(3, 50)}, "LF034"),
    "ids and embeddings": ({"input_ids": _ids(), "inputs_embeds": torch.zeros(3, 50, 16)}, "LF022"),
    "no ids nor embeddings": ({}, "LF023"),
    "embeddings of another width": ({"inputs_embeds": torch.zeros(1, 5, 8)}, "LF025"),
    "token type past the table": ({"input_ids": _ids(), "token_type_ids": torch.full((3, 50), 7)}, "LF033"),
    "position past the table": ({"input_ids": _ids(), "position_ids": torch.full((3, 50), 300)}, "LF027"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_model_inputs_are_our_errors(model, case):
    inputs, code = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=rf"\[{code}\]"):
        model(**inputs)


def test_bad_labels_are_our_errors():
    config = LongformerConfig(
        vocab_size=80, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
        attention_window=4, max_position_embeddings=60,
    )  # fmt: skip
    head = LongformerForSequenceClassification(config)
    with pytest.raises(ValueError, match=r"\[LF037\].*label 5.*2 classes"):
        head(input_ids=_ids(), labels=torch.tensor([0, 1, 5]))


@pytest.fixture(scope="module")
def nlp(tiny_checkpoint):
    """A shared encoder with a listening NER, and a textcat of its own that reads a span group."""
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(tiny_checkpoint)}})
    listener = {"@architectures": "spacy-longformer.LongformerListener.v1"}
    nlp.add_pipe("longformer_ner", config={"model": {"encoder": listener}}).add_label("ORG")
    getter = {"@misc": "spacy-longformer.global_attention.v1", "spans_key": "topics"}
    encoder = {"name": str(tiny_checkpoint), "global_attention": getter}
    textcat = nlp.add_pipe("longformer_textcat", config={"model": {"encoder": encoder}})
    for label in ("A", "B"):
        textcat.add_label(label)
    nlp.initialize()
    return nlp


DOCS = {
    "empty": "",
    "one space": " ",
    "whitespace runs": "a  b\n\n\nc\t\td   \n",
    "only whitespace": "   \n\n\t  ",
    "control characters": "a\x00b\x07c\x1bd\x7fe",
    "zero-width characters": "a\u200bb\u200c\u200dc\ufeffd",
    "right to left": "שלום עולם مرحبا بالعالم",
    "combining marks": "e\u0301 a\u0308 n\u0303 " * 10,
    "emoji sequences": "👩‍👩‍👧‍👦 🏳️‍🌈 🇩🇪 👍🏽 " * 20,
    "unicode line breaks": "a\r\nb\rc\u2028d\u2029e\x85f",
    "one 200k-character word": "x" * 200_000,
    "a 100k-character text": synthetic_text(17_000, seed=3)[:100_000],
}


@pytest.mark.parametrize("case", list(DOCS))
def test_documents(nlp, case):
    doc = nlp(DOCS[case])
    data = doc._.longformer
    assert doc.tensor.shape == (len(doc), 32) and np.isfinite(doc.tensor).all()
    assert len(data.alignment.lengths) == len(doc) and (np.asarray(data.alignment.lengths) >= 1).all()
    assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(not ent.text.isspace() and not ent[0].is_space and not ent[-1].is_space for ent in doc.ents)


def test_documents_built_from_words(nlp):
    for words, spaces in (
        (["New", "York", "!", "abc"], [False] * 4),
        ([" ", "a", "  ", "b"], [False, True, False, False]),
    ):
        doc = nlp(Doc(nlp.vocab, words=words, spaces=spaces))
        assert doc.tensor.shape == (len(words), 32) and np.isfinite(doc.tensor).all()


@pytest.mark.parametrize("spans", ["absent", "empty", "overlapping", "the whole doc"])
def test_span_groups(nlp, spans):
    """The getter's span group makes exactly its tokens' pieces global (and <s>)."""
    doc = nlp.make_doc(synthetic_text(60, seed=1))
    covered = {"absent": None, "empty": None, "overlapping": (3, 12), "the whole doc": (0, len(doc))}[spans]
    if spans == "empty":
        doc.spans["topics"] = []
    elif spans == "overlapping":
        doc.spans["topics"] = [Span(doc, 3, 9), Span(doc, 5, 12)]
    elif spans == "the whole doc":
        doc.spans["topics"] = [doc[:]]
    encoder = nlp.get_pipe("longformer_textcat").model.get_ref("encoder")
    (data,) = encoder.predict([doc])
    expected = {0}
    if covered is not None:
        lengths, pieces = np.asarray(data.alignment.lengths), np.asarray(data.alignment.dataXd)
        first, last = pieces[np.cumsum(lengths) - lengths], pieces[np.cumsum(lengths) - 1]
        expected |= set(range(first[covered[0]], last[covered[1] - 1] + 1))
    assert set(np.flatnonzero(data.global_attention_mask)) == expected
    assert sum(nlp(doc).cats.values()) == pytest.approx(1.0, abs=1e-5)


def test_qa_docs(tiny_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_qa", config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
    nlp.initialize()
    for context in ("", "  \n ", "Acme signed."):
        doc = nlp(make_qa_doc(nlp, "Who signed?", context))
        answers = doc.spans["answer"]
        assert len(answers) <= 1 and all(not span.text.isspace() for span in answers)
    for call, code in (
        (lambda: make_qa_doc(nlp, "  ", "a context"), "LF128"),
        (lambda: make_qa_doc(nlp, None, "a context"), "LF127"),
        (lambda: nlp("a doc without its question"), "LF129"),
        (lambda: nlp(make_qa_doc(nlp, "who " * 200, "Acme did.")), "LF130"),
    ):
        with pytest.raises(ValueError, match=rf"\[{code}\]"):
            call()


@pytest.mark.parametrize("factory", ["longformer_textcat", "longformer_ner"])
def test_training_data_with_labels_the_head_cannot_predict(tiny_checkpoint, factory):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe(factory, config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
    for label in ("A", "B"):
        pipe.add_label(label)
    nlp.initialize()
    ref = nlp.make_doc("Acme Corp signed it")
    if factory == "longformer_textcat":
        ref.cats = {"A": 0.0, "B": 0.0, "C": 1.0}
    else:
        ref.ents = [Span(ref, 0, 2, label="ORG")]
    with pytest.raises(ValueError, match=r"\[LF1(55|39)\].*'(C|ORG)'"):
        nlp.update([Example(nlp.make_doc(ref.text), ref)])


def test_a_doc_alone_equals_it_in_a_batch(nlp):
    texts = [synthetic_text(n, seed=n) for n in (5, 300, 40, 0, 1200, 1)]
    alone = [nlp(text) for text in texts]
    for batch_size in (2, 6):
        for doc, single in zip(nlp.pipe(texts, batch_size=batch_size), alone, strict=True):
            np.testing.assert_allclose(doc.tensor, single.tensor, atol=1e-5)
            assert doc.cats == pytest.approx(single.cats, abs=1e-5)
            assert [(e.start, e.end) for e in doc.ents] == [(e.start, e.end) for e in single.ents]


def test_bytes_round_trip_unchanged(nlp):
    data = nlp.to_bytes()
    again = spacy.util.load_model_from_config(nlp.config).from_bytes(data)
    assert again.to_bytes() == data
    text = synthetic_text(200, seed=9)
    np.testing.assert_allclose(again(text).tensor, nlp(text).tensor, atol=1e-6)
