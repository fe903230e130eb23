"""The longformer_encoder pipe against transformers, on long and odd documents, saved and reloaded.

Parity runs on the perturbed tiny checkpoint (every bias and LayerNorm non-trivial); each token's
pieces come from transformers' tokenizer offsets by the alignment rule (``doc_token_pieces``).
"""

import contextlib
import shutil

import numpy as np
import pytest
import spacy
import torch
import transformers
from spacy.tokens import Span
from spacy.training import Example

from spacy_longformer.ml.encoder_model import torch_model_of
from spacy_longformer.ml.types import LongformerData
from spacy_longformer.random_checkpoint import synthetic_text

from ..model.oracle import doc_token_pieces, global_pieces, no_dropout_

TEXTS = [
    "Hello world! This is a short contract.",
    "naïve café in 東京 — résumé 🙂👍🏽 done.",
    "Tabs\tand\nnewlines\n\n  and   repeated    spaces.  ",
    " leading space, trailing newline\n",
    "Numbers 1,234.56 and e-mail a.b@c.de (parenthesised) [brackets] {braces}",
    "They met  New  York Corp\t\ttoday.\n\n\n  Then  left.",
]


@pytest.fixture(scope="module")
def nlp(perturbed_checkpoint):
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(perturbed_checkpoint)}})
    nlp.initialize()
    return nlp


@pytest.fixture(scope="module")
def hf(perturbed_checkpoint):
    model = transformers.LongformerModel.from_pretrained(perturbed_checkpoint).eval()
    tokenizer = transformers.LongformerTokenizerFast.from_pretrained(perturbed_checkpoint)
    return model, tokenizer


def _hf_states(model, ids, global_positions=(0,)):
    input_ids = torch.tensor([ids])
    glob = torch.zeros_like(input_ids)
    glob[0, list(global_positions)] = 1
    with torch.no_grad():
        return model(input_ids, global_attention_mask=glob).last_hidden_state[0].numpy()


@pytest.mark.parametrize("text", TEXTS)
def test_states_and_ids_match_transformers(nlp, hf, text):
    model, tokenizer = hf
    doc = nlp(text)
    data = doc._.longformer
    assert data.input_ids.tolist() == tokenizer(text)["input_ids"]
    assert data.windows == [(1, len(data.input_ids) - 1)]
    expected = _hf_states(model, data.input_ids.tolist())
    assert np.abs(data.last_hidden_state - expected).max() <= 1e-4
    assert data.global_attention_mask.tolist() == [1] + [0] * (len(data.input_ids) - 1)


@pytest.mark.parametrize("text", TEXTS)
def test_alignment_and_doc_tensor_follow_transformers_offsets(nlp, hf, text):
    """Each token's pieces are the rule's on transformers' offsets (a whitespace token that meets
    no piece takes the next one), and ``doc.tensor`` is the mean of transformers' states of them."""
    model, tokenizer = hf
    doc = nlp(text)
    data = doc._.longformer
    expected_rows = doc_token_pieces(tokenizer, doc)
    lengths, pieces = np.asarray(data.alignment.lengths), np.asarray(data.alignment.dataXd)
    starts = np.cumsum(lengths) - lengths
    rows = [pieces[s : s + n].tolist() for s, n in zip(starts, lengths, strict=True)]
    assert rows == expected_rows
    states = _hf_states(model, tokenizer(text)["input_ids"])
    expected = np.stack([states[row].mean(0) for row in expected_rows]) if len(doc) else np.zeros((0, 32))
    assert doc.tensor.shape == (len(doc), 32)
    np.testing.assert_allclose(doc.tensor, expected, atol=1e-4)


def test_long_document_windows_match_transformers_per_window(nlp, hf):
    """Each piece's state is transformers' state for it in the window that owns it."""
    model, _ = hf
    doc = nlp(synthetic_text(400, seed=3))
    data = doc._.longformer
    assert len(data.windows) > 2 and data.n_pieces > 126
    ids = data.input_ids
    checked = 0
    for w, (a, b) in enumerate(data.windows):
        assert b - a <= 126
        expected = _hf_states(model, [ids[0], *ids[a:b], ids[-1]])
        assert np.abs(data.window_states[w] - expected[0]).max() <= 1e-4  # each window's <s>
        nxt = data.windows[w + 1][0] if w + 1 < len(data.windows) else b
        prev_end = data.windows[w - 1][1] if w else a
        lo, hi = (a + prev_end + 1) // 2 if w else 0, (nxt + b + 1) // 2 if w + 1 < len(data.windows) else b
        for i in range(max(lo, a), min(hi, b)):
            assert np.abs(data.last_hidden_state[i] - expected[i - a + 1]).max() <= 1e-4
            checked += 1
    assert checked == data.n_pieces - 2
    assert np.isfinite(doc.tensor).all() and doc.tensor.shape == (len(doc), 32)


def test_windows_are_cut_on_token_boundaries(nlp):
    doc = nlp(synthetic_text(300, seed=4))
    data = doc._.longformer
    lengths, pieces = np.asarray(data.alignment.lengths), np.asarray(data.alignment.dataXd)
    starts = np.cumsum(lengths) - lengths
    token_of_piece = {}
    for t, (s, n) in enumerate(zip(starts, lengths, strict=True)):
        for p in pieces[s : s + n]:
            token_of_piece.setdefault(int(p), set()).add(t)
    for a, b in data.windows:
        # no token has pieces on both sides of a window's start or end
        assert not (token_of_piece.get(a - 1, set()) & token_of_piece.get(a, {-1}))
        assert not (token_of_piece.get(b - 1, set()) & token_of_piece.get(b, {-1}))


def test_very_long_empty_and_whitespace_documents(nlp):
    words = (synthetic_text(20000, seed=5)).split(" ")
    doc = nlp(" ".join(words[:20000]))
    assert len(doc) >= 20000
    assert doc.tensor.shape == (len(doc), 32) and np.isfinite(doc.tensor).all()
    for text in ("", "   ", "\n\n\t "):
        doc = nlp(text)
        assert doc.tensor.shape == (len(doc), 32) and np.isfinite(doc.tensor).all()


def test_pipe_batches_equal_single_calls(nlp):
    texts = TEXTS + [synthetic_text(150, seed=6), ""]
    singles = [nlp(t) for t in texts]
    for batch_size in (1, 3, 8):
        for doc, single in zip(nlp.pipe(texts, batch_size=batch_size), singles, strict=True):
            np.testing.assert_allclose(doc.tensor, single.tensor, atol=1e-5)


def test_max_batch_pieces_bounds_each_forward_without_changing_results(tiny_checkpoint):
    texts = [synthetic_text(n, seed=n) for n in (5, 40, 120, 300)]
    outputs = []
    for budget in (128, 100000):
        nlp = spacy.blank("en")
        nlp.add_pipe(
            "longformer_encoder", config={"model": {"name": str(tiny_checkpoint), "max_batch_pieces": budget}}
        )
        nlp.initialize()
        outputs.append([d.tensor for d in nlp.pipe(texts, batch_size=4)])
    for a, b in zip(*outputs, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_global_attention_from_a_span_group(perturbed_checkpoint, hf):
    """The span's pieces (found from transformers' offsets) are global, and the states are
    transformers' with that global mask."""
    model, tokenizer = hf
    nlp = spacy.blank("en")
    getter = {"@misc": "spacy-longformer.global_attention.v1", "cls": False, "spans_key": "topics"}
    encoder = nlp.add_pipe(
        "longformer_encoder",
        config={"model": {"name": str(perturbed_checkpoint), "global_attention": getter}},
    )
    nlp.initialize()
    doc = nlp.make_doc("The parties agree on  payment terms and on delivery dates.")
    doc.spans["topics"] = [Span(doc, 4, 7)]  # "  payment terms": a whitespace token inside
    doc = encoder(doc)
    data = doc._.longformer
    glob = global_pieces(doc_token_pieces(tokenizer, doc), range(4, 7), cls=False)
    assert np.flatnonzero(data.global_attention_mask).tolist() == glob and len(glob) >= 3
    expected = _hf_states(model, tokenizer(doc.text)["input_ids"], glob)
    assert np.abs(data.last_hidden_state - expected).max() <= 1e-4
    # an absent group means no global tokens
    assert encoder(nlp.make_doc("No topics here."))._.longformer.global_attention_mask.sum() == 0


def test_sentence_starts_need_sentence_boundaries(tiny_checkpoint):
    nlp = spacy.blank("en")
    getter = {"@misc": "spacy-longformer.global_attention.v1", "sentence_starts": True}
    nlp.add_pipe(
        "longformer_encoder", config={"model": {"name": str(tiny_checkpoint), "global_attention": getter}}
    )
    nlp.initialize()
    with pytest.raises(ValueError, match=r"LF122.*sentencizer"):
        nlp("One sentence. Two sentences.")
    nlp.add_pipe("sentencizer", first=True)
    doc = nlp("One sentence. Two sentences.")
    assert doc._.longformer.global_attention_mask.sum() >= 3


def test_save_and_load_without_the_checkpoint(tiny_checkpoint, tmp_path):
    source = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint, source)
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(source)}})
    nlp.initialize()
    expected = [nlp(t).tensor for t in TEXTS]
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(source)
    loaded = spacy.load(tmp_path / "pipeline")
    for text, tensor in zip(TEXTS, expected, strict=True):
        np.testing.assert_array_equal(loaded(text).tensor, tensor)
    data = loaded.get_pipe("longformer_encoder").to_bytes()
    again = spacy.blank("en")
    again.add_pipe("longformer_encoder", config={"model": {"name": "/nowhere"}}).from_bytes(data)
    assert again.get_pipe("longformer_encoder").to_bytes() == data
    np.testing.assert_array_equal(again(TEXTS[0]).tensor, expected[0])


def test_docs_with_longformer_data_serialize(nlp):
    doc = nlp(TEXTS[1])
    back = spacy.tokens.Doc(nlp.vocab).from_bytes(doc.to_bytes())
    assert isinstance(back._.longformer, LongformerData)
    np.testing.assert_array_equal(back._.longformer.last_hidden_state, doc._.longformer.last_hidden_state)
    np.testing.assert_array_equal(back._.longformer.window_states, doc._.longformer.window_states)


def test_uninitialized_and_missing_checkpoint_errors(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(tmp_path / "missing")}})
    with pytest.raises(ValueError, match="LF120"):
        nlp("text")
    with pytest.raises(ValueError, match=r"LF121.*missing.*does not exist"):
        nlp.initialize()


def test_mixed_precision_reaches_the_shim_and_changes_nothing_on_cpu(perturbed_checkpoint, monkeypatch):
    """``mixed_precision`` is thinc's CUDA autocast flag: the encoder's shim holds it, and every
    forward pass (predict and training) runs inside ``autocast("cuda", enabled=True)``. On the CPU
    that autocast does nothing: states and gradients are those of ``mixed_precision = false``."""
    calls = []

    class RecordingAutocast(torch.autocast):
        def __init__(self, device_type, *args, **kwargs):
            calls.append((device_type, kwargs.get("enabled", args[1] if len(args) > 1 else True)))
            super().__init__(device_type, *args, **kwargs)

    monkeypatch.setattr(torch, "autocast", RecordingAutocast)
    monkeypatch.setattr(torch.amp, "autocast", RecordingAutocast)
    docs = [TEXTS[0], synthetic_text(80, seed=8)]
    results = {}
    for mixed in (False, True):
        nlp = spacy.blank("en")
        config = {"name": str(perturbed_checkpoint), "mixed_precision": mixed, "max_window_pieces": 40}
        encoder = nlp.add_pipe("longformer_encoder", config={"model": config}).model
        nlp.initialize()
        assert encoder.shims[0]._mixed_precision is mixed
        calls.clear()
        no_cuda = mixed and not torch.cuda.is_available()
        with pytest.warns(UserWarning, match="CUDA") if no_cuda else contextlib.nullcontext():
            states = [d.last_hidden_state for d in encoder.predict([nlp.make_doc(t) for t in docs])]
            torch_model = no_dropout_(torch_model_of(encoder))
            torch_model.zero_grad(set_to_none=True)
            datas, backprop = encoder.begin_update([nlp.make_doc(t) for t in docs])
            backprop([np.ones_like(d.last_hidden_state) for d in datas])
        assert calls and all(call == ("cuda", mixed) for call in calls), calls
        grads = {n: p.grad.clone() for n, p in torch_model.named_parameters() if p.grad is not None}
        results[mixed] = (states, grads)
    for ours, theirs in zip(results[True][0], results[False][0], strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert results[True][1].keys() == results[False][1].keys()
    for name, grad in results[False][1].items():
        assert torch.equal(results[True][1][name], grad), name


def test_listener_trains_spacy_ner(tiny_checkpoint):
    """spaCy's own ner on the shared encoder: its loss goes down and the encoder is updated."""
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("longformer_encoder", config={"model": {"name": str(tiny_checkpoint)}})
    nlp.add_pipe(
        "ner",
        config={
            "model": {
                "@architectures": "spacy.TransitionBasedParser.v2",
                "state_type": "ner",
                "extra_state_tokens": False,
                "hidden_width": 32,
                "maxout_pieces": 2,
                "use_upper": True,
                "tok2vec": {"@architectures": "spacy-longformer.LongformerListener.v1", "upstream": "*"},
            }
        },
    )
    data = [
        ("Alice signed the contract in Paris.", [(0, 5, "PERSON"), (29, 34, "GPE")]),
        ("Bob met Carol in Berlin yesterday.", [(0, 3, "PERSON"), (8, 13, "PERSON"), (17, 23, "GPE")]),
        ("The contract was signed in Rome by Dave.", [(27, 31, "GPE"), (35, 39, "PERSON")]),
    ]
    examples = [Example.from_dict(nlp.make_doc(t), {"entities": ents}) for t, ents in data]
    optimizer = nlp.initialize(lambda: examples)
    assert nlp.get_pipe("longformer_encoder").listening_components == ["ner"]
    encoder_weight = nlp.get_pipe("longformer_encoder").model.shims[0]._model.layers[0].ffn.output.weight
    before = encoder_weight.detach().clone()
    losses_seen = []
    for _ in range(100):
        losses = {}
        nlp.update(examples, sgd=optimizer, losses=losses, drop=0.0)
        losses_seen.append(losses["ner"])
    assert losses_seen[-1] < losses_seen[0] * 0.1
    assert not torch.equal(before, encoder_weight.detach())
    doc = nlp("Alice signed the contract in Paris.")
    assert [(e.text, e.label_) for e in doc.ents] == [("Alice", "PERSON"), ("Paris", "GPE")]
