"""Training data: readers (textcat JSONL, SQuAD), synthetic long-document tasks, DocBin round trips, CLI."""

from __future__ import annotations

import json

import pytest
import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_longformer.cli import app
from spacy_longformer.data import (
    NER_NAMES,
    QA_KEYS,
    TEXTCAT_LABELS,
    iter_synthetic,
    read_squad,
    read_textcat_jsonl,
    synthetic_ner,
    synthetic_qa,
    synthetic_textcat,
    write_docbin,
)

N_WORDS = 400


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def _roundtrip(nlp, docs, tmp_path):
    path = write_docbin(docs, tmp_path / "sub" / "docs.spacy")
    return list(DocBin().from_disk(path).get_docs(nlp.vocab))


def _words_before(doc, char):
    """Whitespace-separated words of ``doc.text`` before character ``char``."""
    return len(doc.text[:char].split())


def _context_words_before(doc, char):
    """Words of the context (after the question) before doc character ``char``."""
    return len(doc.text[doc.spans["question"][0].end_char + 1 : char].split())


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf8")
    return path


# --- textcat JSONL -----------------------------------------------------------------------------------


def test_read_textcat_jsonl_roundtrip(nlp, tmp_path):
    path = _write_jsonl(
        tmp_path / "cats.jsonl",
        [
            {"text": "A fine day.", "cats": {"POS": 1.0, "NEG": 0.0}, "meta": {"id": 1}},
            {"text": "A bad day.", "cats": {"POS": 0, "NEG": 1}},
        ],
    )
    path.write_text(path.read_text() + "\n", encoding="utf8")  # a blank line is skipped
    docs = read_textcat_jsonl(nlp, path)
    assert [doc.text for doc in docs] == ["A fine day.", "A bad day."]
    again = _roundtrip(nlp, docs, tmp_path)
    assert [doc.cats for doc in again] == [{"POS": 1.0, "NEG": 0.0}, {"POS": 0.0, "NEG": 1.0}]


@pytest.mark.parametrize(
    "line,expected",
    [
        ('{"text": "x", "cats": {"A": 1.0}', ["LF111", "Line 2", "JSON"]),
        ('["x"]', ["LF112", "Line 2", "expected a JSON object"]),
        ('{"txt": "x", "cats": {"A": 1.0}}', ["LF112", "Line 2", '"text" is missing', "'txt'"]),
        ('{"text": "x", "cats": [1.0]}', ["LF112", "Line 2", '"cats" must be an object']),
        ('{"text": 3, "cats": {"A": 1.0}}', ["LF112", '"text" must be a string']),
        ('{"text": "x", "cats": {"A": "yes"}}', ["LF113", "Line 2", "'A'", "'yes'", "from 0 to 1"]),
        ('{"text": "x", "cats": {"A": 2.5}}', ["LF113", "2.5"]),
    ],
)
def test_read_textcat_jsonl_errors(nlp, tmp_path, line, expected):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok", "cats": {"A": 1.0}}\n' + line + "\n", encoding="utf8")
    with pytest.raises(ValueError) as excinfo:
        read_textcat_jsonl(nlp, path)
    for part in expected:
        assert part in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_read_missing_file(nlp, tmp_path):
    with pytest.raises(ValueError, match=r"LF110.*no such file"):
        read_textcat_jsonl(nlp, tmp_path / "nope.jsonl")
    with pytest.raises(ValueError, match=r"LF110.*folder"):
        read_squad(nlp, tmp_path)


# --- SQuAD ---------------------------------------------------------------------------------------------

CONTEXT = "The Broncos beat the Panthers 24-10 in Santa Clara, California."
QUESTION = "Who did the Broncos beat?"


def _official(answers, **extra):
    qa = {"question": QUESTION, "id": "q1", "answers": answers, **extra}
    return {"version": "v2.0", "data": [{"title": "SB", "paragraphs": [{"context": CONTEXT, "qas": [qa]}]}]}


def _check_answer(doc, text):
    assert doc.spans["question"][0].text == QUESTION
    assert len(doc.spans["answer"]) == 1
    assert doc.spans["answer"][0].text == text


def test_read_squad_official_layout(nlp, tmp_path):
    start = CONTEXT.index("the Panthers")
    data = _official([{"text": "the Panthers", "answer_start": start}, {"text": "x", "answer_start": 0}])
    data["data"][0]["paragraphs"][0]["qas"].append(
        {"question": "Where?", "id": "q2", "answers": [], "is_impossible": True}
    )
    path = tmp_path / "squad.json"
    path.write_text(json.dumps(data), encoding="utf8")
    docs = read_squad(nlp, path)
    assert len(docs) == 2
    _check_answer(docs[0], "the Panthers")
    assert docs[1].spans["question"][0].text == "Where?"
    assert "answer" in docs[1].spans and len(docs[1].spans["answer"]) == 0


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
@pytest.mark.parametrize("style", ["hf", "list"])
def test_read_squad_flat_layouts(nlp, tmp_path, suffix, style):
    start = CONTEXT.index("Santa Clara")
    if style == "hf":
        answers = {"text": ["Santa Clara", "Santa Clara, California"], "answer_start": [start, start]}
        empty = {"text": [], "answer_start": []}
    else:
        answers = [{"text": "Santa Clara", "answer_start": start}]
        empty = []
    records = [
        {"id": "a", "question": "Where?", "context": CONTEXT, "answers": answers},
        {"id": "b", "question": "When?", "context": CONTEXT, "answers": empty},
    ]
    path = tmp_path / f"flat{suffix}"
    if suffix == ".jsonl":
        _write_jsonl(path, records)
    else:
        path.write_text(json.dumps(records), encoding="utf8")
    docs = read_squad(nlp, path)
    assert [doc.spans["answer"][0].text if len(doc.spans["answer"]) else None for doc in docs] == [
        "Santa Clara",
        None,
    ]
    again = _roundtrip(nlp, docs, tmp_path)
    for old, new in zip(docs, again, strict=True):
        assert new.text == old.text
        for key in ("question", "answer"):
            assert [(s.start, s.end) for s in new.spans[key]] == [(s.start, s.end) for s in old.spans[key]]
    assert len(again[1].spans["answer"]) == 0


def test_read_squad_hf_data_wrapper_and_partial_token(nlp, tmp_path):
    # {"data": [flat records]}; an answer ending inside a token widens to the whole token.
    start = CONTEXT.index("Panth")
    record = {
        "question": QUESTION,
        "context": CONTEXT,
        "answers": {"text": ["Panth"], "answer_start": [start]},
    }
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"data": [record]}), encoding="utf8")
    (doc,) = read_squad(nlp, path)
    _check_answer(doc, "Panthers")


def test_read_squad_answer_offsets_follow_context(nlp, tmp_path):
    # The answer span's characters, shifted back by where the context starts, are the gold offsets.
    context = "  Leading spaces, then the answer: forty two.\n\nAnd more."
    start = context.index("forty two")
    path = tmp_path / "s.jsonl"
    _write_jsonl(
        path,
        [
            {
                "question": "  How many?  ",
                "context": context,
                "answers": [{"text": "forty two", "answer_start": start}],
            }
        ],
    )
    (doc,) = read_squad(nlp, path)
    span = doc.spans["answer"][0]
    offset = doc.spans["question"][0].end_char + 1
    assert doc.text[offset:] == context
    assert (span.start_char - offset, span.end_char - offset) == (start, start + len("forty two"))


def test_read_squad_mismatched_answer(nlp, tmp_path):
    start = CONTEXT.index("Panthers")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_official([{"text": "Panthers", "answer_start": start + 2}])), encoding="utf8")
    with pytest.raises(ValueError) as excinfo:
        read_squad(nlp, path)
    message = str(excinfo.value)
    for part in (
        "LF116",
        "'q1'",
        "does not match",
        "'Panthers'",
        f"at character {start}",
        "Fix `answer_start`",
    ):
        assert part in message, message
    path.write_text(
        json.dumps(
            [{"question": "Q?", "context": CONTEXT, "answers": {"text": ["Rams"], "answer_start": [0]}}]
        )
    )
    with pytest.raises(ValueError, match=r"LF116.*#0.*does not occur in the context"):
        read_squad(nlp, path)


@pytest.mark.parametrize(
    "record,expected",
    [
        ({"question": "Q?", "context": CONTEXT}, 'no "answers"'),
        ({"question": "", "context": CONTEXT, "answers": []}, "the question is empty"),
        ({"question": "Q?", "context": 3, "answers": []}, '"context" must be a string'),
        ({"question": "Q?", "context": CONTEXT, "answers": {"text": ["a"]}}, "equally long"),
        ({"question": "Q?", "context": CONTEXT, "answers": [{"text": "The"}]}, "each answer must be"),
        ({"question": "Q?", "context": CONTEXT, "answers": [{"text": "The", "answer_start": "0"}]}, "an int"),
    ],
)
def test_read_squad_invalid_records(nlp, tmp_path, record, expected):
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps([{"question": "ok?", "context": "ok", "answers": []}, record]), encoding="utf8"
    )
    with pytest.raises(ValueError) as excinfo:
        read_squad(nlp, path)
    assert "LF115" in str(excinfo.value) and "#1" in str(excinfo.value) and expected in str(excinfo.value)


def test_read_squad_whitespace_answer(nlp, tmp_path):
    path = tmp_path / "ws.json"
    start = CONTEXT.index(" ")
    path.write_text(
        json.dumps(
            [{"question": "Q?", "context": CONTEXT, "answers": [{"text": " ", "answer_start": start}]}]
        )
    )
    with pytest.raises(ValueError, match="LF117"):
        read_squad(nlp, path)


@pytest.mark.parametrize("data", [{"version": 1}, 3, [{"title": "no paragraphs"}]])
def test_read_squad_unknown_layout(nlp, tmp_path, data):
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data), encoding="utf8")
    with pytest.raises(ValueError, match=r"LF114.*official layout"):
        read_squad(nlp, path)


# --- synthetic tasks -------------------------------------------------------------------------------------


def test_synthetic_textcat(nlp, tmp_path):
    docs = synthetic_textcat(nlp, 20, n_words=N_WORDS, seed=3)
    labels = [max(doc.cats, key=doc.cats.get) for doc in docs]
    assert labels.count("POSITIVE") == labels.count("NEGATIVE") == 10
    keywords = {"POSITIVE": "excellent", "NEGATIVE": "terrible"}
    for doc, label in zip(docs, labels, strict=True):
        assert sorted(doc.cats.values()) == [0.0, 1.0] and set(doc.cats) == set(TEXTCAT_LABELS)
        words = doc.text.split()
        assert N_WORDS <= len(words) <= N_WORDS + 5
        # The keyword of the label appears once, in the second half; the other label's never.
        hits = [i for i, token in enumerate(doc) if token.text in keywords.values()]
        assert len(hits) == 1 and doc[hits[0]].text == keywords[label]
        assert _words_before(doc, doc[hits[0]].idx) >= N_WORDS // 2
    again = _roundtrip(nlp, docs, tmp_path)
    assert [doc.cats for doc in again] == [doc.cats for doc in docs]


def test_synthetic_ner(nlp, tmp_path):
    docs = synthetic_ner(nlp, 10, n_words=N_WORDS, seed=1)
    entity_words = {word for names in NER_NAMES.values() for name in names for word in name.split()}
    counts = {"PERSON": 0, "ORG": 0}
    for doc in docs:
        ents = list(doc.ents)
        assert len(ents) == 2 * (N_WORDS // 120)
        assert max(_words_before(doc, ent.start_char) for ent in ents) >= N_WORDS // 2
        for ent in ents:
            assert ent.text in NER_NAMES[ent.label_]
            counts[ent.label_] += 1
            # Filler on both sides of every entity.
            assert ent.start > 0 and ent.end < len(doc)
            assert doc[ent.start - 1].ent_iob_ == "O" and doc[ent.end].ent_iob_ == "O"
        ent_tokens = {i for ent in ents for i in range(ent.start, ent.end)}
        assert not any(token.text in entity_words for token in doc if token.i not in ent_tokens)
        assert all(token.text.islower() or not token.is_alpha for token in doc if token.i not in ent_tokens)
    assert counts["PERSON"] == counts["ORG"]
    again = _roundtrip(nlp, docs, tmp_path)
    for old, new in zip(docs, again, strict=True):
        assert [(e.start, e.end, e.label_) for e in new.ents] == [
            (e.start, e.end, e.label_) for e in old.ents
        ]


def test_synthetic_qa(nlp, tmp_path):
    docs = synthetic_qa(nlp, 12, n_words=N_WORDS, seed=2)
    for doc in docs:
        question = doc.spans["question"][0].text
        assert question.startswith("What is the code for ") and question.endswith("?")
        key = question.removeprefix("What is the code for ").removesuffix("?")
        assert key in QA_KEYS
        (answer,) = doc.spans["answer"]
        # "the code is KEY-NNN": the asked fact, after half the filler; distractors differ.
        assert len(answer) == 1 and answer.text.startswith(f"{key}-") and answer.text[-3:].isdigit()
        assert doc[answer.start - 3 : answer.start].text == "the code is"
        assert _context_words_before(doc, answer.start_char) >= N_WORDS // 2
        codes = [token for token in doc if token.i > 2 and doc[token.i - 2 : token.i].text == "code is"]
        assert len(codes) == 4 and len({code.text.split("-")[0] for code in codes}) == 4
        # facts lie far apart: more than 16 tokens between any two
        assert min(b.i - a.i for a, b in zip(codes, codes[1:], strict=False)) > 16
    again = _roundtrip(nlp, docs, tmp_path)
    for old, new in zip(docs, again, strict=True):
        for group in ("question", "answer"):
            assert [s.text for s in new.spans[group]] == [s.text for s in old.spans[group]]


@pytest.mark.parametrize("make", [synthetic_textcat, synthetic_ner, synthetic_qa])
def test_synthetic_deterministic_by_seed(nlp, make):
    first = make(nlp, 4, n_words=60, seed=7)
    assert [doc.text for doc in make(nlp, 4, n_words=60, seed=7)] == [doc.text for doc in first]
    assert [doc.text for doc in make(nlp, 6, n_words=60, seed=7)][:4] == [doc.text for doc in first]
    assert [doc.text for doc in make(nlp, 4, n_words=60, seed=8)] != [doc.text for doc in first]
    assert len({doc.text for doc in first}) == 4


def test_synthetic_bad_arguments(nlp):
    with pytest.raises(ValueError, match=r"LF118.*n_words.*>= 20.*5"):
        synthetic_qa(nlp, 2, n_words=5, seed=0)
    with pytest.raises(ValueError, match=r"LF118.*n_docs"):
        synthetic_ner(nlp, -1, n_words=50, seed=0)
    with pytest.raises(ValueError, match=r"LF119.*'pos'.*textcat, ner, qa"):
        list(iter_synthetic("pos", nlp, 1, n_words=50, seed=0))


# --- CLI -------------------------------------------------------------------------------------------------


def test_cli_make_synthetic(nlp, tmp_path):
    out = tmp_path / "qa"
    args = [
        "make-synthetic",
        "qa",
        str(out),
        "--n-train",
        "6",
        "--n-dev",
        "3",
        "--n-words",
        "80",
        "--seed",
        "4",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())
    assert "Wrote 6 qa docs" in output and "Wrote 3 qa docs" in output
    train = list(DocBin().from_disk(out / "train.spacy").get_docs(nlp.vocab))
    dev = list(DocBin().from_disk(out / "dev.spacy").get_docs(nlp.vocab))
    assert (len(train), len(dev)) == (6, 3)
    expected = synthetic_qa(nlp, 9, n_words=80, seed=4)
    assert [doc.text for doc in train + dev] == [doc.text for doc in expected]
    assert all(len(doc.spans["answer"]) == 1 for doc in train + dev)


def test_cli_make_synthetic_unknown_task(tmp_path):
    result = CliRunner().invoke(app, ["make-synthetic", "pos", str(tmp_path)])
    assert result.exit_code == 1 and "textcat, ner, qa" in result.output


def test_cli_convert_textcat(nlp, tmp_path):
    source = _write_jsonl(tmp_path / "in.jsonl", [{"text": "Good.", "cats": {"POS": 1.0, "NEG": 0.0}}] * 3)
    result = CliRunner().invoke(app, ["convert-textcat", str(source), str(tmp_path / "out.spacy")])
    assert result.exit_code == 0, result.output
    assert "Wrote 3 docs" in " ".join(result.output.split())
    docs = list(DocBin().from_disk(tmp_path / "out.spacy").get_docs(nlp.vocab))
    assert [doc.cats for doc in docs] == [{"POS": 1.0, "NEG": 0.0}] * 3
    (tmp_path / "bad.jsonl").write_text('{"text": "x"}\n', encoding="utf8")
    result = CliRunner().invoke(
        app, ["convert-textcat", str(tmp_path / "bad.jsonl"), str(tmp_path / "b.spacy")]
    )
    assert result.exit_code == 1 and "LF112" in result.output
    assert not (tmp_path / "b.spacy").exists()


def test_cli_convert_qa(nlp, tmp_path):
    start = CONTEXT.index("the Panthers")
    source = tmp_path / "squad.json"
    data = _official([{"text": "the Panthers", "answer_start": start}])
    data["data"][0]["paragraphs"][0]["qas"].append({"question": "Why?", "id": "q2", "answers": []})
    source.write_text(json.dumps(data), encoding="utf8")
    result = CliRunner().invoke(app, ["convert-qa", str(source), str(tmp_path / "qa.spacy")])
    assert result.exit_code == 0, result.output
    assert "1 answerable, 1 unanswerable" in " ".join(result.output.split())
    docs = list(DocBin().from_disk(tmp_path / "qa.spacy").get_docs(nlp.vocab))
    _check_answer(docs[0], "the Panthers")
    assert len(docs[1].spans["answer"]) == 0


def test_cli_help_lists_data_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("convert-qa", "convert-textcat", "make-synthetic"):
        assert command in result.output
    result = CliRunner().invoke(app, ["make-synthetic", "--help"])
    assert "python -m spacy convert" in " ".join(result.output.split())
