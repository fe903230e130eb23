"""QA docs: layout, the question span, and the tokenizer that restores it from text."""

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Corpus

from spacy_longformer import make_qa_doc


def test_make_qa_doc_layout():
    nlp = spacy.blank("en")
    doc = make_qa_doc(nlp, "  Who signed\n the lease? ", "Alice signed it.\nBob did not.")
    assert doc.text == "Who signed the lease?\nAlice signed it.\nBob did not."
    question = doc.spans["question"][0]
    assert (question.start, question.text) == (0, "Who signed the lease?")
    assert doc.text[question.end_char + 1 :] == "Alice signed it.\nBob did not."


@pytest.mark.parametrize(
    "question,context,code", [(None, "c", "LF127"), ("q", b"c", "LF127"), (" \n", "c", "LF128")]
)
def test_make_qa_doc_errors(question, context, code):
    with pytest.raises(ValueError, match=code):
        make_qa_doc(spacy.blank("en"), question, context)


def test_qa_tokenizer_restores_the_question_from_text(tmp_path):
    config = {"nlp": {"tokenizer": {"@tokenizers": "spacy-longformer.QATokenizer.v1"}}}
    nlp = spacy.blank("en", config=config)
    doc = nlp("What is the code of alpha?\nThe code of alpha is 317.")
    assert doc.spans["question"][0].text == "What is the code of alpha?"
    assert "question" not in nlp("No newline, so no question.").spans
    assert "question" not in nlp("\nA leading newline: no question.").spans
    # Readers rebuild predicted docs from text: spaCy's Corpus keeps the question this way.
    DocBin(docs=[make_qa_doc(nlp, "Who?", "Alice.")]).to_disk(tmp_path / "qa.spacy")
    example = next(iter(Corpus(tmp_path / "qa.spacy")(nlp)))
    assert example.predicted.spans["question"][0].text == "Who?"
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert type(loaded.tokenizer).__name__ == "QATokenizer"
    doc = loaded("Who?\nAlice.")
    assert doc.spans["question"][0].text == "Who?"
