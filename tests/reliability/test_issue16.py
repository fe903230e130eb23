"""Regressions of issue 16: each input that once ended badly (a silent wrong result, a bare error
from torch, a misleading message) now ends in a right answer or a clear error."""

import json

import numpy as np
import pytest
import spacy
import torch
import transformers
from spacy.tokens import Span
from spacy.training import Example

from spacy_longformer import make_qa_doc
from spacy_longformer.data import read_squad
from spacy_longformer.model import LongformerConfig, LongformerModel

from ..model.oracle import hf_config, make_batch, run_hf, save_hf_model


def _ner(tiny_checkpoint, labels=("ORG",)):
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("longformer_ner", config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
    for label in labels:
        ner.add_label(label)
    nlp.initialize()
    return nlp, ner


def test_a_whitespace_token_never_starts_or_ends_an_entity(tiny_checkpoint):
    """A whitespace token reads the next word's piece; tagged like it, it used to become an entity
    of its own: `[(' ', 'ORG'), ('Initech', 'ORG')]`."""
    nlp, ner = _ner(tiny_checkpoint)
    doc = nlp.make_doc("They met  Initech and\n\nNew  York Corp today")
    assert [t.is_space for t in doc] == [
        False,
        False,
        True,
        False,
        False,
        True,
        False,
        True,
        False,
        False,
        False,
    ]
    tag = {t: i for i, t in enumerate(ner.tags)}
    # What the head gives when a whitespace token copies its next word's tag.
    ids = [tag["O"], tag["O"], tag["B-ORG"], tag["B-ORG"], tag["O"], tag["B-ORG"], tag["B-ORG"]]
    ids += [tag["I-ORG"], tag["I-ORG"], tag["I-ORG"], tag["O"]]
    ner.set_annotations([doc], [np.asarray(ids)])
    assert [(e.text, e.label_) for e in doc.ents] == [("Initech", "ORG"), ("New  York Corp", "ORG")]


def test_a_whitespace_token_does_not_decide_its_pieces_label(tiny_checkpoint):
    """Its gold tag (O) would pull the shared piece away from the word's B-ORG: it carries no loss."""
    nlp, ner = _ner(tiny_checkpoint)
    ref = nlp.make_doc("They met  Initech today")
    ref.ents = [Span(ref, 3, 4, label="ORG")]
    example = Example(nlp.make_doc(ref.text), ref)
    logits = ner.model.predict([example.predicted])
    loss, (d_logits,) = ner.get_loss([example], logits)
    assert loss > 0
    assert not d_logits[2].any(), "the double space's row got a gradient"
    assert d_logits[3].any() and d_logits[0].any()


@pytest.mark.parametrize(
    "context,answer",
    [
        ("Acme signed the lease in May.", "Acme"),  # the first word of the context
        ("The lease was signed by  Initech in May.", "Initech"),  # after a double space
        ("The lease was signed by\n\nGlobex\n", "Globex"),  # between newlines
    ],
)
def test_a_qa_answer_never_starts_or_ends_with_whitespace(tiny_checkpoint, context, answer):
    """The best span's pieces map to words: an answer used to come back as '\\nAcme' or ' Initech'
    when the best span started on the whitespace before the word."""
    nlp = spacy.blank("en")
    qa = nlp.add_pipe("longformer_qa", config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
    nlp.initialize()
    doc = make_qa_doc(nlp, "Who signed the lease?", context)
    ((_, data),) = qa.model.predict([doc])
    lengths = np.asarray(data.alignment.lengths)
    pieces = np.asarray(data.alignment.dataXd)
    first, last = pieces[np.cumsum(lengths) - lengths], pieces[np.cumsum(lengths) - 1]
    target = next(t for t in doc if t.text == answer)
    before = [t.i for t in doc[: target.i] if not t.is_space and t.i >= doc.spans["question"][0].end]
    # The best span starts on the first piece after the previous word: the whitespace between.
    start = last[before[-1]] + 1 if before else data.context_start
    assert start < first[target.i] or not before
    logits = np.full((data.n_pieces, 2), -10.0, dtype="f")
    logits[start, 0] = logits[last[target.i], 1] = 10.0
    start, end, _ = qa._best_answer(doc, logits, data)
    assert doc[start : end + 1].text == answer


def test_attention_mask_value_2_is_global_as_in_transformers(tmp_path):
    """transformers and allenai's code read 2 in `attention_mask` as global; we used to read it as
    local (7e-2 away from transformers)."""
    config = hf_config("w4-8")
    theirs = save_hf_model(transformers.LongformerModel, config, tmp_path)
    ours = LongformerModel.from_pretrained(tmp_path).eval()
    batch = make_batch([19, 11], global_kind="span", seed=3)
    old_style = batch.attention_mask * (batch.global_attention_mask + 1)
    assert (old_style == 2).any()
    with torch.no_grad():
        expected, _ = run_hf(theirs, config, input_ids=batch.input_ids, attention_mask=old_style)
        got = ours(input_ids=batch.input_ids, attention_mask=old_style).last_hidden_state
        new_style = ours(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            global_attention_mask=batch.global_attention_mask,
        ).last_hidden_state
    real = batch.attention_mask.bool()
    assert float((got - expected.last_hidden_state[:, : got.shape[1]])[real].abs().max()) <= 1e-4
    assert torch.equal(got[real], new_style[real])
    bad = batch.attention_mask.clone()
    bad[0, 2] = 3
    with pytest.raises(ValueError, match=r"LF034.*holds 3 at \(0, 2\).*global_attention_mask"):
        ours(input_ids=batch.input_ids, attention_mask=bad)


def test_a_config_with_fewer_layers_than_the_weights_is_an_error(tmp_path):
    config = LongformerConfig(
        vocab_size=80, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
        attention_window=4, max_position_embeddings=40,
    )  # fmt: skip
    LongformerModel(config).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "num_hidden_layers": 1, "attention_window": 4}))
    with pytest.raises(ValueError, match=r"LF060.*layers\.1\..*`num_hidden_layers` = 1"):
        LongformerModel.from_pretrained(tmp_path)


@pytest.mark.parametrize("factory", ["longformer_textcat", "longformer_textcat_multilabel"])
def test_a_textcat_gold_label_unknown_to_the_head_is_an_error(tiny_checkpoint, factory):
    """Its loss used to read 0.0 while the gradient was up to 0.8."""
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe(factory, config={"model": {"encoder": {"name": str(tiny_checkpoint)}}})
    for label in ("POSITIVE", "NEGATIVE"):
        textcat.add_label(label)
    nlp.initialize()
    ref = nlp.make_doc("a fine day")
    ref.cats = {"POSITIVE": 0.0, "NEGATIVE": 0.0, "NEUTRAL": 1.0}
    example = Example(nlp.make_doc(ref.text), ref)
    with pytest.raises(ValueError, match=r"LF155.*'NEUTRAL'.*\['POSITIVE', 'NEGATIVE'\]"):
        nlp.update([example])


def test_a_cut_short_squad_file_names_its_real_line(tmp_path):
    record = {
        "data": [{"paragraphs": [{"context": "Acme signed.", "qas": [{"question": "Who?", "id": "1"}]}]}]
    }
    text = json.dumps(record, indent=2)
    path = tmp_path / "dev.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"LF114.*is not valid JSON: .* at line \d+, column \d+") as info:
        read_squad(spacy.blank("en"), path)
    assert "Line 1" not in str(info.value)


@pytest.mark.parametrize(
    "input_ids,match",
    [
        (torch.zeros(1, 0, dtype=torch.long), r"LF036.*\(1, 0\)"),
        (torch.tensor([[0.0, 5.0, 2.0]]), r"LF035.*torch.float32.*torch.long"),
        (torch.tensor([[True, False]]), r"LF035.*torch.bool"),
    ],
)
def test_ids_torch_would_fail_on_are_clear_errors(input_ids, match):
    config = LongformerConfig(
        vocab_size=80, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24,
        attention_window=4, max_position_embeddings=40,
    )  # fmt: skip
    with pytest.raises(ValueError, match=match):
        LongformerModel(config).eval()(input_ids=input_ids)


def test_window_settings_cut_by_the_checkpoint_are_said(tiny_checkpoint, caplog):
    """The tiny checkpoint holds 126 pieces a window; both settings used to be cut without a word."""
    nlp = spacy.blank("en")
    config = {"model": {"name": str(tiny_checkpoint), "max_window_pieces": 500, "window_overlap": 200}}
    nlp.add_pipe("longformer_encoder", config=config)
    with caplog.at_level("WARNING"):
        nlp.initialize()
    assert "LFW010" in caplog.text and "windows hold 126" in caplog.text
    assert "LFW011" in caplog.text and "overlap by 63" in caplog.text
    doc = nlp(" ".join(["word"] * 400))
    assert all(end - start <= 126 for start, end in doc._.longformer.windows)
