"""Byte-level BPE: ids and offsets equal to transformers' Longformer tokenizers (fast and slow).

A tokenizer is trained here on generated text, saved, and loaded by both sides; transformers is
the oracle only and the tests needing it are skipped without it.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import srsly

from spacy_longformer.tokenization import LongformerTokenizer, TokenizedText, train_byte_level_bpe

WORDS = (
    "the a of and to in is was for on that with as by at from this agreement party company board "
    "report court market contract year quarter revenue price share investor customer committee notice "
    "payment period claim section clause document patient treatment study result risk policy city bank "
    "loan rate team manager office product service system network data model record letter meeting "
    "decision law rule statement account fund plan project budget cost profit loss asset right shall "
    "will may must not said agreed signed paid reported increased declined announced approved reviewed "
    "New York London Paris Berlin Monday January Smith Johnson Inc Ltd Corp don't it's we're they'll "
    "co-operate well-known e-mail café naïve résumé Zürich"
).split()
PUNCT = (".", ",", ";", ":", "!", "?", " -", " (see above)", '"', "'s", "...")
SYLLABLES = ("ka", "lo", "mer", "tis", "an", "qu", "ber", "on", "ex", "vi", "dra", "ment", "ing", "ly", "ze")


def make_corpus(n_sentences: int, *, seed: int) -> list[str]:
    """English-ish sentences with punctuation, numbers and made-up words (so that BPE leaves some
    words in pieces), deterministic for a seed."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n_sentences):
        words = [
            rng.choice(WORDS) if rng.random() < 0.8 else "".join(rng.choices(SYLLABLES, k=rng.randint(1, 4)))
            for _ in range(rng.randint(4, 18))
        ]
        if rng.random() < 0.4:
            words.insert(rng.randrange(len(words)), rng.choice(["12", "2024", "3.5%", "$1,250.00", "No. 7"]))
        sentence = " ".join(words)
        sentences.append(sentence[0].upper() + sentence[1:] + rng.choice(PUNCT))
    return sentences


LONG_TEXT = "\n\n".join(" ".join(make_corpus(12, seed=seed)) for seed in range(100, 125))
assert len(LONG_TEXT) > 10_000

TEXTS = [
    "Hello world",
    "The board approved the agreement on Monday.",
    " leading space",
    "trailing space ",
    "   three leading and three trailing   ",
    "repeated    spaces   between  words",
    "",
    " ",
    "\t",
    "tabs\tbetween\twords\t",
    "new\nlines\n\nand\r\nwindows\r\n",
    "Café naïve résumé Zürich — “quotes” and ‘apostrophes’",
    "日本語のテキストと中文文本",
    "emoji 🤗🚀👩‍👩‍👧 and flags 🇩🇪",
    "mixed: Ωmega ß straße İstanbul ǅ ﬁ ligature",
    "The <mask> approved the agreement.",
    "<mask> at the start",
    "at the end <mask>",
    "glued<mask>words and   <mask>   spaced",
    "\n<mask>\t<mask>",
    "literal specials <s> and </s> and <pad> in text",
    "numbers 1,234.56 and 3.5% and $1,250.00 and 2024-01-31",
    "don't it's we're they'll CO-OPERATE e-mail",
    "\u00a0non-breaking\u00a0spaces\u2009and\u200bzero width",
    "control \x00 \x07 chars",
    LONG_TEXT,
]
PAIRS = [
    ("Who approved the agreement?", "The board approved the agreement on Monday."),
    ("", "empty question"),
    ("empty context", ""),
    (" spaced question ", "  spaced context  "),
    ("Wo ist das Café?", "Das Café ist in Zürich 🤗."),
    ("What is <mask>?", "The <mask> is here."),
    ("How long?", LONG_TEXT),
]
TEXT_IDS = [repr(text[:30]) for text in TEXTS]
PAIR_IDS = [repr(question[:20]) for question, _ in PAIRS]


@pytest.fixture(scope="module")
def tokenizer() -> LongformerTokenizer:
    return train_byte_level_bpe(make_corpus(3000, seed=0), vocab_size=800, model_max_length=4096)


@pytest.fixture(scope="module")
def folder(tokenizer: LongformerTokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tokenizer.save_pretrained(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def hf_fast(folder: Path):
    transformers = pytest.importorskip("transformers")
    return transformers.LongformerTokenizerFast.from_pretrained(folder)


@pytest.fixture(scope="module")
def hf_slow(folder: Path):
    transformers = pytest.importorskip("transformers")
    return transformers.LongformerTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def vocab_merges_folder(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The saved checkpoint without ``tokenizer.json``: built from ``vocab.json`` + ``merges.txt``."""
    path = tmp_path_factory.mktemp("vocab_merges")
    for name in ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"):
        shutil.copy(folder / name, path / name)
    return path


def assert_same_encoding(ours: TokenizedText, theirs: TokenizedText) -> None:
    assert ours.ids == theirs.ids
    assert ours.tokens == theirs.tokens
    assert ours.offsets == theirs.offsets
    assert ours.sequence_ids == theirs.sequence_ids
    assert ours.special_tokens_mask == theirs.special_tokens_mask


@pytest.mark.parametrize("text", TEXTS, ids=TEXT_IDS)
def test_single_text_matches_transformers_fast(tokenizer: LongformerTokenizer, hf_fast, text: str) -> None:
    ours = tokenizer.encode(text)
    theirs = hf_fast(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    assert ours.ids == theirs["input_ids"]
    assert ours.offsets == theirs["offset_mapping"]
    assert ours.special_tokens_mask == theirs["special_tokens_mask"]
    assert ours.sequence_ids == theirs.sequence_ids()
    assert len(ours) == len(ours.tokens) == len(ours.offsets) == len(ours.sequence_ids)


@pytest.mark.parametrize("text", TEXTS, ids=TEXT_IDS)
def test_single_text_matches_transformers_slow(tokenizer: LongformerTokenizer, hf_slow, text: str) -> None:
    assert tokenizer.encode(text).ids == hf_slow(text)["input_ids"]


@pytest.mark.parametrize("text", TEXTS[:16], ids=TEXT_IDS[:16])
def test_without_special_tokens_matches_transformers(
    tokenizer: LongformerTokenizer, hf_fast, text: str
) -> None:
    ours = tokenizer.encode(text, add_special_tokens=False)
    theirs = hf_fast(text, add_special_tokens=False, return_offsets_mapping=True)
    assert ours.ids == theirs["input_ids"]
    assert ours.offsets == theirs["offset_mapping"]


@pytest.mark.parametrize(("question", "context"), PAIRS, ids=PAIR_IDS)
def test_pair_matches_transformers(
    tokenizer: LongformerTokenizer, hf_fast, hf_slow, question: str, context: str
) -> None:
    ours = tokenizer.encode_pair(question, context)
    # The batch call: the single call drops an empty context (see the test below).
    theirs = hf_fast([question], [context], return_offsets_mapping=True, return_special_tokens_mask=True)
    assert ours.ids == theirs["input_ids"][0] == hf_slow(question, context)["input_ids"]
    assert ours.offsets == theirs["offset_mapping"][0]
    assert ours.sequence_ids == theirs.sequence_ids(0)
    assert ours.special_tokens_mask == theirs["special_tokens_mask"][0]
    if context:
        assert ours.ids == hf_fast(question, context)["input_ids"]
    # <s> question </s></s> context </s>
    n_question = ours.sequence_ids.count(0)
    sep = tokenizer.sep_token_id
    assert ours.ids[0] == tokenizer.cls_token_id
    assert ours.ids[n_question + 1 : n_question + 3] == [sep, sep] and ours.ids[-1] == sep
    for offset, sequence in zip(ours.offsets, ours.sequence_ids, strict=True):
        if sequence is not None:
            assert 0 <= offset[0] <= offset[1] <= len((question, context)[sequence])


def test_empty_context_keeps_the_pair_layout(tokenizer: LongformerTokenizer, hf_fast, hf_slow) -> None:
    """transformers' fast tokenizer, called on one pair, drops an empty context (`if text_pair:`) and
    returns `<s> question </s>`; its batch call and the slow tokenizer keep `<s> question </s></s></s>`,
    and so do we: the pair layout never depends on the context's length."""
    sep = tokenizer.sep_token_id
    ours = tokenizer.encode_pair("Who signed?", "")
    assert ours.ids[-3:] == [sep, sep, sep]
    assert (
        ours.ids == hf_fast(["Who signed?"], [""])["input_ids"][0] == hf_slow("Who signed?", "")["input_ids"]
    )
    assert hf_fast("Who signed?", "")["input_ids"] == tokenizer.encode("Who signed?").ids


def test_mask_swallows_the_whitespace_before_it(tokenizer: LongformerTokenizer, hf_fast) -> None:
    """`<mask>` takes the spaces on its left (no `Ġ` piece before it); its token string keeps them,
    as transformers' `BatchEncoding.tokens()` does, while its offsets cover `<mask>` only."""
    text = "The  <mask> voted."
    encoded = tokenizer.encode(text)
    assert encoded.ids[2] == tokenizer.mask_token_id
    assert encoded.tokens[:3] == ["<s>", "The", "  <mask>"] == hf_fast(text).tokens()[:3]
    assert text[slice(*encoded.offsets[2])] == "<mask>"


def test_offsets_point_into_the_text(tokenizer: LongformerTokenizer) -> None:
    """Pieces cover the text in order; spaces are trimmed off, the bytes of one character share it."""
    text = "Café  au lait,\tplease 🤗 <mask> now\n"
    encoded = tokenizer.encode(text)
    spans = [
        span
        for span, special in zip(encoded.offsets, encoded.special_tokens_mask, strict=True)
        if not special
    ]
    distinct = [span for i, span in enumerate(spans) if i == 0 or span != spans[i - 1]]
    assert "".join(text[start:end] for start, end in distinct) == text.replace(" ", "")
    assert encoded.offsets[0] == encoded.offsets[-1] == (0, 0)


def test_vocabulary_and_special_ids(tokenizer: LongformerTokenizer, hf_fast) -> None:
    assert tokenizer.vocab_size == len(hf_fast) == 800  # the corpus has enough merges
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.sep_token_id == tokenizer.eos_token_id == hf_fast.sep_token_id
    assert tokenizer.cls_token_id == tokenizer.bos_token_id == hf_fast.cls_token_id
    assert tokenizer.unk_token_id == hf_fast.unk_token_id == 3
    assert tokenizer.mask_token_id == hf_fast.mask_token_id == 4
    assert tokenizer.model_max_length == hf_fast.model_max_length == 4096


def test_any_unicode_encodes_without_unk(tokenizer: LongformerTokenizer) -> None:
    for text in TEXTS:
        assert tokenizer.unk_token_id not in tokenizer.encode(text).ids


def test_no_truncation_and_no_warning(
    tokenizer: LongformerTokenizer, recwarn: pytest.WarningsRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    encoded = tokenizer.encode(LONG_TEXT * 3)
    assert len(encoded) > tokenizer.model_max_length
    assert encoded.ids[-1] == tokenizer.eos_token_id
    assert not recwarn.list and not caplog.records


def test_encode_batch_equals_encode(tokenizer: LongformerTokenizer) -> None:
    batch = tokenizer.encode_batch(TEXTS)
    for text, encoded in zip(TEXTS, batch, strict=True):
        assert_same_encoding(encoded, tokenizer.encode(text))


@pytest.mark.parametrize("text", TEXTS, ids=TEXT_IDS)
def test_decode_round_trips_text(tokenizer: LongformerTokenizer, hf_fast, text: str) -> None:
    ids = tokenizer.encode(text).ids
    assert tokenizer.decode(ids) == hf_fast.decode(ids)
    assert tokenizer.decode(ids, skip_special_tokens=True) == hf_fast.decode(ids, skip_special_tokens=True)
    if "<" not in text:  # <mask> swallows the whitespace before it
        assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False).ids) == text


def test_decode_rejects_ids_outside_the_vocabulary(tokenizer: LongformerTokenizer) -> None:
    with pytest.raises(ValueError, match=r"\[LF087\].*Token id 800 at position 1"):
        tokenizer.decode([0, tokenizer.vocab_size, 2])


def test_encode_rejects_non_text(tokenizer: LongformerTokenizer) -> None:
    with pytest.raises(TypeError, match=r"\[LF088\].*got bytes"):
        tokenizer.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"\[LF088\].*got list"):
        tokenizer.encode_pair("question", ["context"])  # type: ignore[arg-type]


def test_saved_files(folder: Path) -> None:
    names = {path.name for path in folder.iterdir()}
    assert names == {
        "tokenizer.json",
        "vocab.json",
        "merges.txt",
        "special_tokens_map.json",
        "tokenizer_config.json",
    }
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf8"))
    assert config["tokenizer_class"] == "LongformerTokenizer"
    assert config["model_max_length"] == 4096
    assert config["added_tokens_decoder"]["4"]["content"] == "<mask>"
    assert config["added_tokens_decoder"]["4"]["lstrip"] is True
    special_tokens_map = json.loads((folder / "special_tokens_map.json").read_text(encoding="utf8"))
    assert special_tokens_map["mask_token"]["lstrip"] is True


def test_from_pretrained_reloads_identically(
    tokenizer: LongformerTokenizer, folder: Path, tmp_path: Path, hf_fast
) -> None:
    reloaded = LongformerTokenizer.from_pretrained(folder)
    assert (
        reloaded.backend_tokenizer.to_str()
        == tokenizer.backend_tokenizer.to_str()
        == hf_fast.backend_tokenizer.to_str()
    )
    assert reloaded.to_bytes() == tokenizer.to_bytes()
    reloaded.save_pretrained(tmp_path)
    for path in folder.iterdir():
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def test_vocab_and_merges_without_tokenizer_json(
    tokenizer: LongformerTokenizer, vocab_merges_folder: Path
) -> None:
    from_files = LongformerTokenizer.from_pretrained(vocab_merges_folder)
    assert from_files.vocab_size == tokenizer.vocab_size
    assert from_files.special_tokens == tokenizer.special_tokens
    for text in TEXTS:
        assert_same_encoding(from_files.encode(text), tokenizer.encode(text))
    for question, context in PAIRS:
        assert_same_encoding(
            from_files.encode_pair(question, context), tokenizer.encode_pair(question, context)
        )


@dataclass(frozen=True)
class Variant:
    """A checkpoint folder made from the saved one: which files it keeps and how they are edited."""

    files: tuple[str, ...]
    mask_lstrip_in_tokenizer_json: bool | None = None
    config_changes: dict[str, object] | None = None
    drop_added_tokens_decoder: bool = False
    special_tokens_map: dict[str, object] | None = None


VOCAB_MERGES = ("vocab.json", "merges.txt")
TOKENIZER_JSON = ("tokenizer.json",)
MASK_WITHOUT_LSTRIP = {"mask_token": {"content": "<mask>", "lstrip": False, "normalized": False}}
VARIANTS = {
    "vocab+merges only, like older hub checkpoints": Variant(VOCAB_MERGES),
    "tokenizer.json only": Variant(TOKENIZER_JSON),
    "all but tokenizer.json": Variant(VOCAB_MERGES + ("special_tokens_map.json", "tokenizer_config.json")),
    "tokenizer.json's <mask> without lstrip, no config": Variant(TOKENIZER_JSON, False),
    "added_tokens_decoder beats tokenizer.json": Variant(TOKENIZER_JSON, False, {}),
    "tokenizer.json beats special_tokens_map": Variant(TOKENIZER_JSON, None, {}, True, MASK_WITHOUT_LSTRIP),
    "special_tokens_map without added_tokens_decoder": Variant(
        VOCAB_MERGES, None, {}, True, MASK_WITHOUT_LSTRIP
    ),
    "new special tokens get new ids (vocab+merges)": Variant(
        VOCAB_MERGES, None, {"mask_token": "[MASK]", "bos_token": "[BOS]"}, True
    ),
    "new special tokens get new ids (tokenizer.json)": Variant(
        TOKENIZER_JSON, None, {"mask_token": "[MASK]", "bos_token": "[BOS]"}, True
    ),
    "add_prefix_space, no trim_offsets (tokenizer.json)": Variant(
        TOKENIZER_JSON, None, {"add_prefix_space": True, "trim_offsets": False}
    ),
    "add_prefix_space, no trim_offsets (vocab+merges)": Variant(
        VOCAB_MERGES, None, {"add_prefix_space": True, "trim_offsets": False}
    ),
}


def make_variant(folder: Path, path: Path, variant: Variant) -> Path:
    for name in variant.files:
        shutil.copy(folder / name, path / name)
    if variant.mask_lstrip_in_tokenizer_json is not None:
        data = json.loads((path / "tokenizer.json").read_text(encoding="utf8"))
        for token in data["added_tokens"]:
            if token["content"] == "<mask>":
                token["lstrip"] = variant.mask_lstrip_in_tokenizer_json
        (path / "tokenizer.json").write_text(json.dumps(data), encoding="utf8")
    if variant.config_changes is not None:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf8"))
        config.update(variant.config_changes)
        if variant.drop_added_tokens_decoder:
            del config["added_tokens_decoder"]
        (path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf8")
    if variant.special_tokens_map is not None:
        (path / "special_tokens_map.json").write_text(json.dumps(variant.special_tokens_map), encoding="utf8")
    return path


@pytest.mark.parametrize("variant", list(VARIANTS.values()), ids=list(VARIANTS))
def test_checkpoint_variants_match_transformers(folder: Path, tmp_path: Path, variant: Variant) -> None:
    """Whatever mix of files a checkpoint has, we resolve special tokens, their flags and
    ``add_prefix_space``/``trim_offsets`` as transformers does: the same backend, token for token."""
    transformers = pytest.importorskip("transformers")
    path = make_variant(folder, tmp_path, variant)
    ours = LongformerTokenizer.from_pretrained(path)
    theirs = transformers.LongformerTokenizerFast.from_pretrained(path)
    assert ours.backend_tokenizer.to_str() == theirs.backend_tokenizer.to_str()
    assert ours.vocab_size == len(theirs)
    for role in ("bos", "eos", "sep", "cls", "pad", "unk", "mask"):
        assert getattr(ours, f"{role}_token_id") == getattr(theirs, f"{role}_token_id"), role
    for text in TEXTS[:20] + ["[MASK] and  [MASK], [BOS]"]:
        encoded = theirs(text, return_offsets_mapping=True)
        assert ours.encode(text).ids == encoded["input_ids"]
        assert ours.encode(text).offsets == encoded["offset_mapping"]
    for question, context in PAIRS:
        assert ours.encode_pair(question, context).ids == theirs([question], [context])["input_ids"][0]


def test_add_prefix_space_changes_the_first_word(folder: Path, tmp_path: Path) -> None:
    variant = VARIANTS["add_prefix_space, no trim_offsets (tokenizer.json)"]
    with_prefix = LongformerTokenizer.from_pretrained(make_variant(folder, tmp_path, variant))
    assert with_prefix.add_prefix_space and not with_prefix.trim_offsets
    assert with_prefix.encode("agreement").tokens[1].startswith("Ġ")
    assert not LongformerTokenizer.from_pretrained(folder).encode("agreement").tokens[1].startswith("Ġ")


def test_bytes_round_trip(tokenizer: LongformerTokenizer) -> None:
    data = tokenizer.to_bytes()
    restored = LongformerTokenizer.from_bytes(data)
    assert restored.to_bytes() == data
    assert restored.special_tokens == tokenizer.special_tokens
    assert restored.model_max_length == tokenizer.model_max_length
    for text in TEXTS:
        assert_same_encoding(restored.encode(text), tokenizer.encode(text))


def test_from_bytes_rejects_other_bytes(tokenizer: LongformerTokenizer) -> None:
    with pytest.raises(ValueError, match=r"\[LF086\]"):
        LongformerTokenizer.from_bytes(b"not msgpack at all")
    with pytest.raises(ValueError, match=r"\[LF086\].*KeyError"):
        LongformerTokenizer.from_bytes(srsly.msgpack_dumps({"config": {}}))


def test_training_is_deterministic(tokenizer: LongformerTokenizer) -> None:
    again = train_byte_level_bpe(make_corpus(3000, seed=0), vocab_size=800, model_max_length=4096)
    assert again.to_bytes() == tokenizer.to_bytes()


def test_training_rejects_a_vocabulary_below_the_alphabet() -> None:
    with pytest.raises(ValueError, match=r"\[LF085\].*`vocab_size` >= 261"):
        train_byte_level_bpe(["some text"], vocab_size=100)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"\[LF080\].*no such folder"):
        LongformerTokenizer.from_pretrained(tmp_path / "nowhere")


def test_folder_without_tokenizer_files(tmp_path: Path) -> None:
    with pytest.raises(
        OSError, match=r"\[LF081\].*tokenizer\.json.*vocab\.json.*merges\.txt.*an empty folder"
    ):
        LongformerTokenizer.from_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(OSError, match=r"\[LF081\].*found vocab\.json"):
        LongformerTokenizer.from_pretrained(tmp_path)


def test_unreadable_tokenizer_json(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0", "truncated...')
    with pytest.raises(OSError, match=r"\[LF082\].*tokenizer\.json"):
        LongformerTokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"valid json": "but no tokenizer"}')
    with pytest.raises(OSError, match=r"\[LF082\]"):
        LongformerTokenizer.from_pretrained(tmp_path)


def test_unreadable_config_and_vocab(folder: Path, tmp_path: Path) -> None:
    shutil.copy(folder / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "tokenizer_config.json").write_text("[1, 2]")
    with pytest.raises(OSError, match=r"\[LF083\].*tokenizer_config\.json.*JSON object, found list"):
        LongformerTokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    (tmp_path / "tokenizer_config.json").unlink()
    (tmp_path / "vocab.json").write_text("not json")
    shutil.copy(folder / "merges.txt", tmp_path / "merges.txt")
    with pytest.raises(OSError, match=r"\[LF083\].*vocab\.json"):
        LongformerTokenizer.from_pretrained(tmp_path)


def test_invalid_special_token_entry(folder: Path, tmp_path: Path) -> None:
    shutil.copy(folder / "tokenizer.json", tmp_path / "tokenizer.json")
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"mask_token": {"lstrip": True}}))
    with pytest.raises(ValueError, match=r"\[LF084\].*`mask_token`"):
        LongformerTokenizer.from_pretrained(tmp_path)
