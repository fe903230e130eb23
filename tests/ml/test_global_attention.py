"""Which pieces the global-attention getters make global, to the exact piece, against the rule
applied to transformers' tokenizer offsets (``tests/model/oracle.py``: ``doc_token_pieces``,
``global_pieces``) and, for one text, against the span's characters directly."""

import numpy as np
import pytest
import spacy
import transformers
from spacy.tokens import Span

from ..model.oracle import doc_token_pieces, global_pieces

# (text, token ranges of doc.spans["g"]). Double spaces, newlines and tabs give pieces with empty
# offsets that no token claims; several tokens are several pieces long.
SPAN_CASES = [
    ("They met  New  York Corp today.", [(3, 7)]),  # "New  York Corp": two spaces inside
    ("The résumé of\n\nAcme  Northwind\tcontract was signed.", [(1, 2), (4, 7)]),
    ("The résumé of\n\nAcme  Northwind\tcontract was signed.", [(3, 5), (5, 9)]),  # runs that touch
    ("  leading and trailing  ", [(0, 2)]),  # starts on a whitespace token
    ("Acme signed", [(0, 2)]),  # the whole text
    ("Acme signed the lease.", [(4, 5)]),  # the last word's piece before </s>
]


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    return transformers.LongformerTokenizerFast.from_pretrained(tiny_checkpoint)


def _encoder(tiny_checkpoint, **getter):
    nlp = spacy.blank("en")
    config = {"@misc": "spacy-longformer.global_attention.v1", **getter}
    encoder = nlp.add_pipe(
        "longformer_encoder", config={"model": {"name": str(tiny_checkpoint), "global_attention": config}}
    )
    nlp.initialize()
    return nlp, encoder


@pytest.fixture(scope="module")
def span_encoders(tiny_checkpoint):
    return {cls: _encoder(tiny_checkpoint, cls=cls, spans_key="g") for cls in (True, False)}


@pytest.mark.parametrize("cls", [True, False])
@pytest.mark.parametrize("text,ranges", SPAN_CASES)
def test_span_group_pieces_equal_the_rule_on_transformers_offsets(
    span_encoders, tokenizer, text, ranges, cls
):
    nlp, encoder = span_encoders[cls]
    doc = nlp.make_doc(text)
    doc.spans["g"] = [Span(doc, a, b) for a, b in ranges]
    data = encoder(doc)._.longformer
    tokens = [i for a, b in ranges for i in range(a, b)]
    expected = global_pieces(doc_token_pieces(tokenizer, doc), tokens, cls=cls)
    assert np.flatnonzero(data.global_attention_mask).tolist() == expected


def test_a_span_covers_the_whitespace_piece_inside_it_and_its_last_piece(span_encoders, tokenizer):
    """Checked on characters, not through the rule: "New  York Corp" is every piece from the one
    starting at "N" to the one ending at "p", which takes in an empty whitespace piece that no
    token claims (the rule gives the token " " the next piece) and Corp's three pieces."""
    nlp, encoder = span_encoders[False]
    text = "They met  New  York Corp today."
    doc = nlp.make_doc(text)
    span = Span(doc, 3, 7)
    assert span.text == "New  York Corp"
    doc.spans["g"] = [span]
    offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    first = next(i for i, (a, b) in enumerate(offsets) if b > a and a == span.start_char)
    last = next(i for i, (a, b) in enumerate(offsets) if b > a and b == span.end_char)
    claimed = {i for row in doc_token_pieces(tokenizer, doc) for i in row}
    unclaimed = [i for i in range(first, last + 1) if i not in claimed]
    assert unclaimed and all(offsets[i][0] == offsets[i][1] for i in unclaimed)
    assert offsets[last - 1][1] == offsets[last][0]  # Corp's last piece follows another of its own
    glob = encoder(doc)._.longformer.global_attention_mask
    assert np.flatnonzero(glob).tolist() == list(range(first, last + 1))


def test_entity_and_sentence_start_pieces(tiny_checkpoint, tokenizer):
    text = "Acme  Northwind signed.\n\nThe résumé was sent to Berlin today."
    nlp, encoder = _encoder(tiny_checkpoint, cls=False, entities=True, sentence_starts=True)
    nlp.add_pipe("sentencizer", first=True)
    doc = nlp.get_pipe("sentencizer")(nlp.make_doc(text))
    words = [t.text for t in doc]
    doc.ents = [
        Span(doc, 0, 3, label="ORG"),
        Span(doc, words.index("Berlin"), words.index("Berlin") + 1, label="GPE"),
    ]
    starts = [sent.start for sent in doc.sents]
    assert len(starts) >= 2
    tokens = [i for ent in doc.ents for i in range(ent.start, ent.end)] + starts
    expected = global_pieces(doc_token_pieces(tokenizer, doc), tokens, cls=False)
    assert np.flatnonzero(encoder(doc)._.longformer.global_attention_mask).tolist() == expected


def test_global_pieces_of_a_long_document_are_global_in_every_window_they_fall_in(tiny_checkpoint, tokenizer):
    """A span group in a document read as several windows: the doc-level mask is the rule's, and
    each window's input marks exactly those of its pieces (and its own ``<s>``)."""
    from spacy_longformer.ml.encoder_model import tokenizer_of
    from spacy_longformer.ml.planning import plan_doc
    from spacy_longformer.random_checkpoint import synthetic_text

    nlp, encoder = _encoder(tiny_checkpoint, cls=True, spans_key="g")
    doc = nlp.make_doc(synthetic_text(60, seed=2))
    doc.spans["g"] = [doc[5:8], doc[30:33], doc[50:52]]
    tokens = [i for span in doc.spans["g"] for i in range(span.start, span.end)]
    expected = global_pieces(doc_token_pieces(tokenizer, doc), tokens, cls=True)
    plan = plan_doc(
        doc, tokenizer_of(encoder.model), getter=encoder.model.attrs["global_attention"], window=40, overlap=8
    )
    assert len(plan.windows) >= 3
    assert np.flatnonzero(plan.global_mask).tolist() == expected
    for w, (a, b) in enumerate(plan.windows):
        _, glob = plan.window_inputs(w)
        inside = [p - a + 1 for p in expected if a <= p < b]
        assert np.flatnonzero(glob).tolist() == [0] + inside
