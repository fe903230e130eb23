"""Training data for the task components: readers for common formats and synthetic long-document tasks.

Readers turn files into Docs that carry their gold annotation, ready for ``spacy train`` once written
with ``write_docbin``:

- ``read_textcat_jsonl``: JSONL lines ``{"text": ..., "cats": {label: score}}`` -> ``doc.cats``;
- ``read_squad``: SQuAD-style question answering (the official nested layout, or flat records as in
  Hugging Face ``datasets``) -> QA docs (``make_qa_doc``) with the gold answer as the one span of
  ``doc.spans["answer"]``, or an empty group for an unanswerable question.

NER needs no reader of ours: ``python -m spacy convert`` turns CoNLL / IOB files into ``.spacy``.

The synthetic tasks put their signal far from the start of each document (past the first half of
``n_words`` filler words, beyond any local attention window), over a small lowercase filler vocabulary
that a tiny byte-level BPE covers, so a tiny model shows in minutes on CPU whether its global and
long-range attention carry information:

- ``synthetic_textcat``: POSITIVE / NEGATIVE, decided by one keyword sentence in the second half;
- ``synthetic_ner``: PERSON and ORG names from small closed lists planted among the filler;
- ``synthetic_qa``: "What is the code for KEY?" answered by the code "KEY-NNN" in the second half,
  among distractor codes of other keys.

Each is deterministic by ``seed``: document ``i`` is drawn from its own generator seeded by
``(task, seed, i)``, so the first documents stay the same when you ask for more.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span

from .errors import Errors
from .qa_docs import ANSWER_KEY, context_start_char, make_qa_doc

__all__ = [
    "SYNTHETIC_TASKS",
    "iter_synthetic",
    "read_squad",
    "read_textcat_jsonl",
    "synthetic_ner",
    "synthetic_qa",
    "synthetic_textcat",
    "write_docbin",
]

_TEXTCAT_EXAMPLE = '{"text": "The board approved the plan.", "cats": {"POSITIVE": 1.0, "NEGATIVE": 0.0}}'


# --- Files -------------------------------------------------------------------------------------------


def write_docbin(docs: Sequence[Doc], path: str | Path) -> Path:
    """Write ``docs`` to a ``.spacy`` file (spaCy's DocBin) for ``spacy train``; returns the path.

    ``doc.cats``, entities and span groups (``doc.spans["question"]``, ``doc.spans["answer"]``, empty
    groups included) are kept; ``user_data`` is not stored. Missing parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    DocBin(docs=docs, store_user_data=False).to_disk(path)
    return path


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        problem = "it is a folder" if path.is_dir() else "no such file"
        raise ValueError(Errors.LF110.format(path=path, problem=problem))
    return path


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; a bad line raises naming its number."""
    with path.open(encoding="utf8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(
                    Errors.LF111.format(path=path, line=number, error=error, snippet=line.strip()[:60])
                ) from None


# --- Text classification -----------------------------------------------------------------------------


def read_textcat_jsonl(nlp: Language, path: str | Path) -> list[Doc]:
    """Docs with ``doc.cats`` from a JSONL file, one ``{"text": str, "cats": {label: float}}`` a line.

    Other keys on a line are ignored, blank lines skipped. Scores must be numbers between 0 and 1
    (``true``/``false`` count as 1/0); a bad line raises a ``ValueError`` naming its line number.
    """
    path = _check_file(path)
    docs: list[Doc] = []
    for number, record in _read_jsonl(path):
        if not isinstance(record, dict):
            problem = f"expected a JSON object, got {type(record).__name__}"
            raise ValueError(
                Errors.LF112.format(path=path, line=number, problem=problem, example=_TEXTCAT_EXAMPLE)
            )
        for key, kind in (("text", str), ("cats", dict)):
            if key not in record:
                problem = f'the key "{key}" is missing (found keys: {", ".join(map(repr, record)) or "none"})'
            elif not isinstance(record[key], kind):
                problem = (
                    f'"{key}" must be {"a string" if kind is str else "an object"}, got {record[key]!r:.60}'
                )
            else:
                continue
            raise ValueError(
                Errors.LF112.format(path=path, line=number, problem=problem, example=_TEXTCAT_EXAMPLE)
            )
        cats: dict[str, float] = {}
        for label, score in record["cats"].items():
            if not isinstance(score, int | float) or not 0.0 <= score <= 1.0:
                raise ValueError(Errors.LF113.format(path=path, line=number, label=label, value=score))
            cats[label] = float(score)
        doc = nlp.make_doc(record["text"])
        doc.cats = cats
        docs.append(doc)
    return docs


# --- Question answering ------------------------------------------------------------------------------


def read_squad(nlp: Language, path: str | Path) -> list[Doc]:
    """QA docs (``make_qa_doc``) with gold answers from a SQuAD-style file.

    Layouts accepted:

    - the official nested one: ``{"data": [{"paragraphs": [{"context": ..., "qas": [{"question": ...,
      "id": ..., "answers": [{"text": ..., "answer_start": ...}], "is_impossible": ...}]}]}]}``;
    - flat records ``{"question": ..., "context": ..., "answers": ...}`` (``id`` optional) as a JSON
      list, as ``{"data": [records]}``, or as JSONL (one record a line), with ``answers`` either as in
      Hugging Face ``datasets`` (``{"text": [...], "answer_start": [...]}``) or a list of
      ``{"text", "answer_start"}`` objects.

    The first answer becomes the one span of ``doc.spans["answer"]``, widened to whole tokens; a
    question with ``"is_impossible": true`` or no answers gets an empty ``doc.spans["answer"]`` group.
    An answer whose text is not at ``answer_start`` in the context raises a ``ValueError`` naming the
    question.
    """
    path = _check_file(path)
    docs: list[Doc] = []
    for index, record in enumerate(_squad_records(path)):
        docs.append(_squad_doc(nlp, record, index=index, path=path))
    return docs


def _squad_records(path: Path) -> Iterator[dict]:
    """Flat QA records ``{"question", "context", "answers", "id"?, "is_impossible"?}`` of either layout."""
    if path.suffix.lower() == ".jsonl":
        data: Any = [record for _, record in _read_jsonl(path)]
    else:
        text = path.read_text(encoding="utf8")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            if not _is_json_lines(text):
                problem = f"it is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
                raise ValueError(Errors.LF114.format(path=path, problem=problem)) from None
            data = [record for _, record in _read_jsonl(path)]
    if isinstance(data, dict):
        if "data" not in data:
            if {"question", "context"} <= data.keys():
                data = [data]
            else:
                problem = f'the top-level object has no "data" list (keys: {", ".join(map(repr, data))})'
                raise ValueError(Errors.LF114.format(path=path, problem=problem))
        else:
            data = data["data"]
    if not isinstance(data, list):
        problem = f"expected a list of articles or QA records, got {type(data).__name__}"
        raise ValueError(Errors.LF114.format(path=path, problem=problem))
    for n_article, article in enumerate(data):
        if isinstance(article, dict) and "paragraphs" in article:
            for n_paragraph, paragraph in enumerate(article["paragraphs"]):
                where = f"data[{n_article}].paragraphs[{n_paragraph}]"
                if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                    problem = f'{where} has no "qas" list'
                    raise ValueError(Errors.LF114.format(path=path, problem=problem))
                for qa in paragraph["qas"]:
                    if not isinstance(qa, dict):
                        problem = f'{where}.qas holds {type(qa).__name__}, expected objects with a "question"'
                        raise ValueError(Errors.LF114.format(path=path, problem=problem))
                    yield {**qa, "context": paragraph.get("context")}
        elif isinstance(article, dict) and ("question" in article or "context" in article):
            yield article
        else:
            problem = (
                f'item {n_article} of the data is neither an article (with "paragraphs") nor a QA '
                f'record (with "question" and "context"): {article!r:.80}'
            )
            raise ValueError(Errors.LF114.format(path=path, problem=problem))


def _is_json_lines(text: str) -> bool:
    """Whether a file that is not one JSON value is JSON lines: its first line is a whole value (a
    pretty-printed JSON file cut short starts with a lone ``{`` or ``[``)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        json.loads(first)
    except json.JSONDecodeError:
        return False
    return True


def _first_answer(record: dict, which: str, path: Path) -> tuple[str, int] | None:
    """The first answer's (text, answer_start), or None for an unanswerable question."""
    if record.get("is_impossible") is True:
        return None
    if "answers" not in record:
        problem = 'it has no "answers" (give "answers": [] or "is_impossible": true for an unanswerable one)'
        raise ValueError(Errors.LF115.format(which=which, path=path, problem=problem))
    answers = record["answers"]
    if isinstance(answers, dict):  # Hugging Face datasets: {"text": [...], "answer_start": [...]}
        texts, starts = answers.get("text"), answers.get("answer_start")
        if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
            problem = f'"answers" must hold equally long "text" and "answer_start" lists, got {answers!r:.80}'
            raise ValueError(Errors.LF115.format(which=which, path=path, problem=problem))
        if not texts:
            return None
        text, start = texts[0], starts[0]
    elif isinstance(answers, list):
        if not answers:
            return None
        first = answers[0]
        if not isinstance(first, dict) or "text" not in first or "answer_start" not in first:
            problem = f'each answer must be {{"text": ..., "answer_start": ...}}, got {first!r:.80}'
            raise ValueError(Errors.LF115.format(which=which, path=path, problem=problem))
        text, start = first["text"], first["answer_start"]
    else:
        problem = f'"answers" must be a list or a {{"text", "answer_start"}} object, got {answers!r:.80}'
        raise ValueError(Errors.LF115.format(which=which, path=path, problem=problem))
    if not isinstance(text, str) or isinstance(start, bool) or not isinstance(start, int):
        problem = f"an answer needs a string text and an int answer_start, got {text!r:.60} at {start!r}"
        raise ValueError(Errors.LF115.format(which=which, path=path, problem=problem))
    return text, start


def _squad_doc(nlp: Language, record: dict, *, index: int, path: Path) -> Doc:
    qid = record.get("id")
    which = f"#{index}" + (f" (id {qid!r})" if qid is not None else "")
    question, context = record.get("question"), record.get("context")
    for key, value in (("question", question), ("context", context)):
        if not isinstance(value, str):
            problem = f'"{key}" must be a string, got {value!r:.60}'
            raise ValueError(Errors.LF115.format(which=which, path=path, problem=problem))
    if not question.strip():
        raise ValueError(Errors.LF115.format(which=which, path=path, problem="the question is empty"))
    answer = _first_answer(record, which, path)
    doc = make_qa_doc(nlp, question, context)
    if answer is None:
        doc.spans[ANSWER_KEY] = []
        return doc
    text, start = answer
    found = context[start : start + len(text)] if start >= 0 else ""
    if found != text:
        at = [str(i) for i in _find_all(context, text)[:5]]
        hint = (
            f"the text occurs at character {' and '.join(at)} of the context"
            if at
            else "the text does not occur in the context"
        )
        raise ValueError(
            Errors.LF116.format(which=which, path=path, text=text, start=start, found=found, hint=hint)
        )
    span = _answer_span(doc, start, start + len(text))
    if span is None:
        raise ValueError(Errors.LF117.format(which=which, path=path, text=text, start=start))
    doc.spans[ANSWER_KEY] = [span]
    return doc


def _find_all(text: str, part: str) -> list[int]:
    if not part:
        return []
    found, start = [], text.find(part)
    while start != -1:
        found.append(start)
        start = text.find(part, start + 1)
    return found


def _answer_span(doc: Doc, start: int, end: int) -> Span | None:
    """The whole tokens covering context characters [start, end) of a QA doc, or None if no token."""
    offset = context_start_char(doc)
    span = doc.char_span(offset + start, offset + end, alignment_mode="expand")
    if span is None or not span.text.strip():
        return None
    return span


# --- Synthetic long-document tasks ---------------------------------------------------------------------

# Lowercase filler: no capitals, digits, "is", "code" or keyword, so it never carries a task's signal.
_DETERMINERS = ("the", "the", "a", "each", "this", "every")
_ADJECTIVES = tuple("new old large small annual final public private local general".split())
_NOUNS = tuple(
    (
        "board report market contract year price share customer committee notice payment period bank "
        "loan team office product service system record letter meeting plan project budget road river city"
    ).split()
)
_VERBS = tuple(
    "approved reviewed signed delivered received described included opened closed changed held noted".split()
)
_PREPOSITIONS = tuple("of in on with for after before during".split())

TEXTCAT_LABELS = ("POSITIVE", "NEGATIVE")
_TEXTCAT_KEYWORDS = {"POSITIVE": "excellent", "NEGATIVE": "terrible"}
# Capitalised, one or two words each; no word is shared between the labels or with the filler.
NER_NAMES = {
    "PERSON": tuple("Alice|Bruno|Chen|Dmitri|Elena|Farah|Gustav|Hiro|Ines Moreau|Kofi Mensah".split("|")),
    "ORG": tuple("Acme|Globex|Initech|Hooli|Vandelay|Umbrella|Stark Industries|Wayne Holdings".split("|")),
}
QA_KEYS = tuple("alpha bravo charlie delta echo foxtrot hotel india kilo lima oscar tango".split())
_MIN_WORDS = 20


def _filler(rng: random.Random, n_words: int) -> list[list[str]]:
    """Sentences of lowercase filler words (the last word of each ends in "."), ``n_words`` in all."""
    sentences: list[list[str]] = []
    left = n_words
    while left > 0:
        words = [rng.choice(_DETERMINERS)]
        if rng.random() < 0.4:
            words.append(rng.choice(_ADJECTIVES))
        words += [rng.choice(_NOUNS), rng.choice(_VERBS), rng.choice(_DETERMINERS), rng.choice(_NOUNS)]
        if rng.random() < 0.5:
            words += [rng.choice(_PREPOSITIONS), rng.choice(_DETERMINERS), rng.choice(_NOUNS)]
        words = words[:left]
        words[-1] += "."
        left -= len(words)
        sentences.append(words)
    return sentences


def _plant_sentences(
    rng: random.Random,
    sentences: list[list[str]],
    planted: list[tuple[list[str], int] | tuple[list[str], int, int]],
) -> list[list[str]]:
    """Insert each planted sentence at a random sentence boundary at or past its word index (and
    before its optional last word index)."""
    boundaries: list[tuple[int, int]] = []  # (number of sentences before, number of words before)
    n_before = 0
    for i, sentence in enumerate(sentences):
        boundaries.append((i, n_before))
        n_before += len(sentence)
    boundaries.append((len(sentences), n_before))
    inserts: dict[int, list[list[str]]] = {}
    for words, min_word, *max_word in planted:
        last = max_word[0] if max_word else n_before
        choices = [i for i, before in boundaries if min_word <= before < last] or [
            next((i for i, before in boundaries if before >= min_word), len(sentences))
        ]
        inserts.setdefault(rng.choice(choices), []).append(words)
    out: list[list[str]] = []
    for i in range(len(sentences) + 1):
        out += inserts.get(i, [])
        if i < len(sentences):
            out.append(sentences[i])
    return out


def _join(sentences: list[list[str]]) -> str:
    return " ".join(" ".join(words) for words in sentences)


def _textcat_doc(nlp: Language, rng: random.Random, index: int, n_words: int) -> Doc:
    label = TEXTCAT_LABELS[index % 2]
    sentence = ["overall", "the", "outcome", "was", _TEXTCAT_KEYWORDS[label] + "."]
    sentences = _plant_sentences(rng, _filler(rng, n_words), [(sentence, n_words // 2)])
    doc = nlp.make_doc(_join(sentences))
    doc.cats = {name: float(name == label) for name in TEXTCAT_LABELS}
    return doc


def _ner_doc(nlp: Language, rng: random.Random, index: int, n_words: int) -> Doc:
    words = [word for sentence in _filler(rng, n_words) for word in sentence]
    per_label = max(1, n_words // 120)
    labels = [label for label in NER_NAMES for _ in range(per_label)]
    rng.shuffle(labels)
    # Distinct gaps between filler words (never the ends), so filler surrounds every entity; the
    # first lies in the second half, the rest anywhere.
    gaps = {rng.randint(max(1, n_words // 2), n_words - 1)}
    while len(gaps) < len(labels):
        gaps.add(rng.randint(1, n_words - 1))
    entity_at = {
        gap: (label, rng.choice(NER_NAMES[label])) for gap, label in zip(sorted(gaps), labels, strict=True)
    }
    pieces: list[str] = []
    spans: list[tuple[int, int, str]] = []
    n_chars = 0
    for i in range(n_words + 1):
        if i in entity_at:
            label, name = entity_at[i]
            spans.append((n_chars, n_chars + len(name), label))
            pieces.append(name)
            n_chars += len(name) + 1
        if i < n_words:
            pieces.append(words[i])
            n_chars += len(words[i]) + 1
    doc = nlp.make_doc(" ".join(pieces))
    doc.ents = [doc.char_span(start, end, label=label) for start, end, label in spans]
    return doc


def _qa_doc(nlp: Language, rng: random.Random, index: int, n_words: int) -> Doc:
    n_facts = min(len(QA_KEYS), 4)
    keys = rng.sample(QA_KEYS, n_facts)
    codes = [
        f"{key}-{number}" for key, number in zip(keys, rng.sample(range(100, 1000), n_facts), strict=True)
    ]
    facts = [["the", "code", "is", f"{code}."] for code in codes]
    # One fact per stretch of n_words / n_facts words, kept to the middle half of its stretch, so
    # facts lie far apart (beyond a local window of each other); the asked fact (the first) in a
    # stretch of the second half.
    stretch = n_words // n_facts
    margin = stretch // 4
    stretches = list(range(n_facts))
    asked = rng.choice([i for i in stretches if i * stretch >= n_words // 2] or stretches[-1:])
    others = [i for i in stretches if i != asked]
    rng.shuffle(others)
    planted = [
        (fact, i * stretch + margin, (i + 1) * stretch - margin)
        for fact, i in zip(facts, [asked, *others], strict=True)
    ]
    sentences = _plant_sentences(rng, _filler(rng, n_words), planted)
    context = _join(sentences)
    before = _join(sentences[: sentences.index(facts[0])])
    start = len(before) + (1 if before else 0) + len(" ".join(facts[0][:-1])) + 1
    answer = codes[0]
    assert context[start : start + len(answer)] == answer
    doc = make_qa_doc(nlp, f"What is the code for {keys[0]}?", context)
    doc.spans[ANSWER_KEY] = [_answer_span(doc, start, start + len(answer))]
    return doc


SYNTHETIC_TASKS: dict[str, Callable[[Language, random.Random, int, int], Doc]] = {
    "textcat": _textcat_doc,
    "ner": _ner_doc,
    "qa": _qa_doc,
}


def iter_synthetic(task: str, nlp: Language, n_docs: int, *, n_words: int, seed: int) -> Iterator[Doc]:
    """Yield ``n_docs`` synthetic docs of ``task`` ("textcat", "ner" or "qa"); see the ``synthetic_*``
    functions. Document ``i`` depends only on ``(task, seed, i)``."""
    if task not in SYNTHETIC_TASKS:
        raise ValueError(Errors.LF119.format(task=task, options=", ".join(SYNTHETIC_TASKS)))
    for name, value, minimum in (("n_docs", n_docs, 0), ("n_words", n_words, _MIN_WORDS)):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(Errors.LF118.format(name=name, minimum=minimum, value=value))
    make_doc = SYNTHETIC_TASKS[task]
    for index in range(n_docs):
        # A string seed is hashed with SHA-512, the same on every run and machine.
        rng = random.Random(f"spacy-longformer/{task}/{seed}/{index}")
        yield make_doc(nlp, rng, index, n_words)


def synthetic_textcat(nlp: Language, n_docs: int, *, n_words: int, seed: int) -> list[Doc]:
    """Exclusive text classification (POSITIVE / NEGATIVE) decided far from the start of the doc.

    Each doc is ``n_words`` words of lowercase filler with one planted sentence, "overall the outcome
    was excellent." (POSITIVE) or "... was terrible." (NEGATIVE), at a sentence boundary in the second
    half (at least ``n_words // 2`` words in). The filler never holds either keyword, so only the
    planted sentence decides. Labels alternate (doc 0 POSITIVE, doc 1 NEGATIVE, ...): balanced.
    ``doc.cats`` has both labels, exactly one of them 1.0.
    """
    return list(iter_synthetic("textcat", nlp, n_docs, n_words=n_words, seed=seed))


def synthetic_ner(nlp: Language, n_docs: int, *, n_words: int, seed: int) -> list[Doc]:
    """Named entities (PERSON, ORG) from small closed lists (``NER_NAMES``: capitalised, one or two
    words) planted among ``n_words`` words of lowercase filler.

    Each doc has ``max(1, n_words // 120)`` entities of each label, at distinct random gaps between
    filler words, so filler (which never holds an entity word) surrounds every entity; at least one
    lies in the second half of the doc. Set as ``doc.ents``.
    """
    return list(iter_synthetic("ner", nlp, n_docs, n_words=n_words, seed=seed))


def synthetic_qa(nlp: Language, n_docs: int, *, n_words: int, seed: int) -> list[Doc]:
    """Extractive QA: "What is the code for KEY?" over ``n_words`` words of lowercase filler.

    The context holds four facts "the code is KEY-NNN." (distinct keys from ``QA_KEYS``, distinct
    three-digit numbers), each in its own quarter of the doc, far from the others: the asked one
    in the second half. Only the question tells the four codes apart, and it lies beyond any
    local window of the answer. The gold answer, the code token ``KEY-NNN``, is the one span of
    ``doc.spans["answer"]``; docs are built by ``make_qa_doc`` (question in ``doc.spans["question"]``).
    """
    return list(iter_synthetic("qa", nlp, n_docs, n_words=n_words, seed=seed))
