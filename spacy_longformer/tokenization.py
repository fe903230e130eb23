"""Byte-level BPE with the ids and offsets of transformers' ``LongformerTokenizerFast``.

The work is done by the ``tokenizers`` library (the same Rust code transformers' fast tokenizer
wraps), so this module only has to build the same pipeline from a checkpoint folder: BPE without
dropout, a ``ByteLevel`` pre-tokenizer and decoder, ``RobertaProcessing`` adding
``<s> A </s>`` / ``<s> A </s></s> B </s>``, and the special tokens (``<mask>`` swallows the
whitespace before it). We never import transformers: it is only the test oracle.

Nothing is ever truncated: long documents are split into windows by the encoder layer, which needs
every piece of the text and its character offsets.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import srsly
from tokenizers import AddedToken, Encoding, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from .errors import Errors

TOKENIZER_FILE = "tokenizer.json"
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"

# transformers' SPECIAL_TOKENS_ATTRIBUTES order, which is also the order in which special tokens
# missing from the vocabulary get new ids.
SPECIAL_TOKEN_ROLES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
DEFAULT_SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "sep_token": "</s>",
    "pad_token": "<pad>",
    "cls_token": "<s>",
    "mask_token": "<mask>",
}
# RoBERTa's order, so a trained tokenizer agrees with Longformer's config defaults:
# bos=0, pad=1, eos=sep=2 (then unk=3, mask=4).
TRAINING_SPECIAL_TOKEN_ROLES = ("bos_token", "pad_token", "eos_token", "unk_token", "mask_token")
_TOKEN_FLAGS = ("single_word", "lstrip", "rstrip", "normalized", "special")


@dataclass
class TokenizedText:
    """One encoded text (or question/context pair), aligned piece by piece.

    ``offsets[i]`` are character offsets into the text piece ``i`` came from (``(0, 0)`` for
    ``<s>``/``</s>``); for a pair, ``sequence_ids[i]`` says which text that is (0 = question,
    1 = context, None = special token). Whitespace-only pieces get empty offsets ``(end, end)``,
    as in transformers (``trim_offsets=True``). A dataclass rather than transformers'
    ``BatchEncoding`` so the fields are typed and nothing is padded.
    """

    ids: list[int]
    tokens: list[str]
    offsets: list[tuple[int, int]]
    sequence_ids: list[int | None]
    special_tokens_mask: list[int] = field(repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_encoding(cls, encoding: Encoding) -> TokenizedText:
        """Copy out of a ``tokenizers.Encoding`` (whose lists are rebuilt on every access)."""
        return cls(
            ids=list(encoding.ids),
            tokens=list(encoding.tokens),
            offsets=list(encoding.offsets),
            sequence_ids=list(encoding.sequence_ids),
            special_tokens_mask=list(encoding.special_tokens_mask),
        )


@dataclass(frozen=True)
class TokenizerSettings:
    """What ``tokenizer_config.json`` and ``special_tokens_map.json`` say, kept in the form
    transformers keeps it, so that ``LongformerTokenizer._assemble`` can resolve the special tokens
    exactly as transformers does when it loads the same folder.

    ``special_tokens`` holds only the roles (``bos_token``, ...) the files name: a plain string, or
    an ``AddedToken`` when the file gives its flags. ``added_tokens`` are the entries of
    ``added_tokens_decoder`` by id, or None when the config has none (older checkpoints).
    """

    special_tokens: Mapping[str, str | AddedToken] = field(default_factory=dict)
    added_tokens: tuple[AddedToken, ...] | None = None
    add_prefix_space: bool = False
    trim_offsets: bool = True
    model_max_length: int | None = None

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], special_tokens_map: Mapping[str, Any], *, source: str
    ) -> TokenizerSettings:
        """``source`` names where ``config`` came from, for error messages. As in transformers,
        ``special_tokens_map.json`` only counts when the config has no ``added_tokens_decoder``."""
        specs = {role: config[role] for role in SPECIAL_TOKEN_ROLES if config.get(role)}
        added_tokens = None
        if "added_tokens_decoder" in config:
            decoder = config["added_tokens_decoder"]
            if not isinstance(decoder, Mapping):
                raise ValueError(
                    Errors.LF084.format(value=decoder, key="added_tokens_decoder", source=source)
                )
            added_tokens = tuple(
                _added_token(entry, key=f"added_tokens_decoder.{index}", source=source)
                for index, entry in sorted(decoder.items(), key=lambda item: int(item[0]))
            )
        else:
            specs.update(
                {
                    role: special_tokens_map[role]
                    for role in SPECIAL_TOKEN_ROLES
                    if special_tokens_map.get(role)
                }
            )
        special_tokens = {
            role: spec if isinstance(spec, str) else _added_token(spec, key=role, source=source, special=True)
            for role, spec in specs.items()
        }
        return cls(
            special_tokens=special_tokens,
            added_tokens=added_tokens,
            add_prefix_space=bool(config.get("add_prefix_space", False)),
            trim_offsets=bool(config.get("trim_offsets", True)),
            model_max_length=config.get("model_max_length"),
        )


class LongformerTokenizer:
    """Byte-level BPE tokenizer of a Longformer checkpoint (RoBERTa's scheme).

    Build it with ``from_pretrained`` (a checkpoint folder), ``from_bytes`` or
    ``train_byte_level_bpe``; the constructor takes a backend that is already complete.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        *,
        special_tokens: Mapping[str, str],
        add_prefix_space: bool = False,
        trim_offsets: bool = True,
        model_max_length: int | None = None,
    ) -> None:
        self._tokenizer = tokenizer
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self.special_tokens = dict(special_tokens)
        self.add_prefix_space = add_prefix_space
        self.trim_offsets = trim_offsets
        self.model_max_length = model_max_length
        self._special_ids = {
            role: tokenizer.token_to_id(token) for role, token in self.special_tokens.items()
        }

    @classmethod
    def from_pretrained(cls, path: str | Path) -> LongformerTokenizer:
        """Load the tokenizer of a checkpoint folder in the Hugging Face layout.

        ``tokenizer.json`` is used when present, else ``vocab.json`` + ``merges.txt`` (built into
        the pipeline transformers' converter builds); ``tokenizer_config.json`` and
        ``special_tokens_map.json`` are read when present. Nothing is downloaded.
        """
        path = Path(path)
        if not path.is_dir():
            raise OSError(Errors.LF080.format(path=path))
        settings = TokenizerSettings.from_config(
            _read_json_object(path / TOKENIZER_CONFIG_FILE),
            _read_json_object(path / SPECIAL_TOKENS_MAP_FILE),
            source=str(path),
        )
        tokenizer_path = path / TOKENIZER_FILE
        vocab_path, merges_path = path / VOCAB_FILE, path / MERGES_FILE
        if tokenizer_path.is_file():
            try:
                backend = _load_backend(tokenizer_path.read_text(encoding="utf8"), settings)
            except Exception as err:  # json, UnicodeDecodeError and the Rust side's bare Exception
                raise OSError(Errors.LF082.format(path=tokenizer_path, error=err)) from err
            return cls._assemble(backend, settings, build_pipeline=False)
        if vocab_path.is_file() and merges_path.is_file():
            try:
                vocab, merges = models.BPE.read_file(str(vocab_path), str(merges_path))
            except Exception as err:  # the Rust side raises a bare Exception
                raise OSError(Errors.LF083.format(path=f"{vocab_path} or {merges_path}", error=err)) from err
            bpe = models.BPE(vocab, merges, dropout=None, continuing_subword_prefix="", end_of_word_suffix="")
            return cls._assemble(Tokenizer(bpe), settings, build_pipeline=True)
        found = sorted(p.name for p in path.iterdir())
        raise OSError(
            Errors.LF081.format(
                path=path,
                looked_for=f"`{TOKENIZER_FILE}`, or `{VOCAB_FILE}` and `{MERGES_FILE}`",
                found=", ".join(found) if found else "an empty folder",
            )
        )

    @classmethod
    def _assemble(
        cls, backend: Tokenizer, settings: TokenizerSettings, *, build_pipeline: bool
    ) -> LongformerTokenizer:
        """Add the special and added tokens as transformers does when it loads a folder, and with
        ``build_pipeline`` set the pre-tokenizer, decoder and post-processor of transformers'
        ``RobertaConverter``.

        ``build_pipeline`` is for a bare BPE model (``vocab.json`` + ``merges.txt``, or just
        trained). transformers' rules: a role's token named in the files takes its flags from
        ``added_tokens_decoder`` (or, without one, from the backend's added tokens); a role's token
        that is still a plain string is added only where missing, except ``<mask>`` (and every
        role's token for a bare BPE), which is (re-)added with Longformer's flags: ``<mask>``
        strips the whitespace on its left. Re-adding keeps the id and updates the flags.
        """
        present = {token.content: token for token in backend.get_added_tokens_decoder().values()}
        known = present if settings.added_tokens is None else {t.content: t for t in settings.added_tokens}
        to_add = list(settings.added_tokens or ())
        roles = {}
        for role in SPECIAL_TOKEN_ROLES:
            spec = settings.special_tokens.get(role)
            if spec is None:
                spec = DEFAULT_SPECIAL_TOKENS[role]
            else:
                spec = known.get(spec if isinstance(spec, str) else spec.content, spec)
            if isinstance(spec, str) and (role == "mask_token" or build_pipeline):
                # Fast Longformer makes `<mask>` an AddedToken; the slow one, which transformers
                # converts a bare BPE from, makes every role's token one.
                is_mask = role == "mask_token"
                spec = AddedToken(spec, lstrip=is_mask, rstrip=False, normalized=not is_mask)
            if isinstance(spec, AddedToken):
                to_add.append(_with_flags(spec, special=True))
                roles[role] = spec.content
            else:
                if spec not in present and all(token.content != spec for token in to_add):
                    to_add.append(AddedToken(spec, special=True))
                roles[role] = spec
        backend.add_tokens(to_add)
        if build_pipeline:
            cls_token, sep_token = roles["cls_token"], roles["sep_token"]
            backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=settings.add_prefix_space)
            backend.decoder = decoders.ByteLevel()
            # sep and cls go by position: tokenizers 0.23 renamed the keyword ``cls`` to ``cls_token``.
            backend.post_processor = processors.RobertaProcessing(
                (sep_token, backend.token_to_id(sep_token)),
                (cls_token, backend.token_to_id(cls_token)),
                trim_offsets=settings.trim_offsets,
                add_prefix_space=settings.add_prefix_space,
            )
        return cls(
            backend,
            special_tokens=roles,
            add_prefix_space=settings.add_prefix_space,
            trim_offsets=settings.trim_offsets,
            model_max_length=settings.model_max_length,
        )

    # Encoding

    def encode(self, text: str, *, add_special_tokens: bool = True) -> TokenizedText:
        """``<s> text </s>``: the ids of ``LongformerTokenizerFast()(text)["input_ids"]``."""
        return TokenizedText.from_encoding(
            self._tokenizer.encode(_check_text(text), add_special_tokens=add_special_tokens)
        )

    def encode_pair(self, question: str, context: str, *, add_special_tokens: bool = True) -> TokenizedText:
        """``<s> question </s></s> context </s>``, the two texts tokenized apart (as
        ``tokenizer(question, context)``); ``sequence_ids`` tells the two parts apart.

        An empty context keeps the layout (``<s> question </s></s></s>``), as transformers' slow
        tokenizer and batch call do; its fast single call alone drops an empty context.
        """
        encoding = self._tokenizer.encode(
            _check_text(question), _check_text(context), add_special_tokens=add_special_tokens
        )
        return TokenizedText.from_encoding(encoding)

    def encode_batch(self, texts: Iterable[str], *, add_special_tokens: bool = True) -> list[TokenizedText]:
        """``encode`` for many texts at once, in parallel on the Rust side."""
        encodings = self._tokenizer.encode_batch(
            [_check_text(text) for text in texts], add_special_tokens=add_special_tokens
        )
        return [TokenizedText.from_encoding(encoding) for encoding in encodings]

    def decode(self, ids: Iterable[int], *, skip_special_tokens: bool = False) -> str:
        """The text of ``ids`` (ids out of range are an error, not silently dropped)."""
        ids = [int(token_id) for token_id in ids]
        vocab_size = self.vocab_size
        for position, token_id in enumerate(ids):
            if not 0 <= token_id < vocab_size:
                raise ValueError(
                    Errors.LF087.format(token_id=token_id, position=position, vocab_size=vocab_size)
                )
        return self._tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    # Vocabulary

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The ``tokenizers.Tokenizer`` doing the work (as transformers names it); leave its
        truncation and padding off, the encoder splits long documents itself."""
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (what the embedding table needs)."""
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    @property
    def bos_token_id(self) -> int:
        return self._special_ids["bos_token"]

    @property
    def eos_token_id(self) -> int:
        return self._special_ids["eos_token"]

    @property
    def sep_token_id(self) -> int:
        return self._special_ids["sep_token"]

    @property
    def cls_token_id(self) -> int:
        return self._special_ids["cls_token"]

    @property
    def pad_token_id(self) -> int:
        return self._special_ids["pad_token"]

    @property
    def unk_token_id(self) -> int:
        return self._special_ids["unk_token"]

    @property
    def mask_token_id(self) -> int:
        return self._special_ids["mask_token"]

    # Serialization

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the tokenizer files of a Hugging Face checkpoint folder.

        ``tokenizer.json`` for fast loaders, ``vocab.json`` + ``merges.txt`` for the slow
        ``LongformerTokenizer``, and the two config files that carry the special tokens' roles and
        flags: transformers (fast or slow) and ``from_pretrained`` load the folder with the same ids.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self._tokenizer.save(str(path / TOKENIZER_FILE))
        self._tokenizer.model.save(str(path))
        added = self._tokenizer.get_added_tokens_decoder()
        by_content = {token.content: token for token in added.values()}
        special_tokens_map = {
            role: {key: value for key, value in _token_dict(by_content[token]).items() if key != "special"}
            for role, token in self.special_tokens.items()
        }
        _write_json(path / SPECIAL_TOKENS_MAP_FILE, special_tokens_map)
        _write_json(path / TOKENIZER_CONFIG_FILE, self._tokenizer_config())
        return path

    def _tokenizer_config(self) -> dict[str, Any]:
        """The ``tokenizer_config.json`` transformers writes for a Longformer tokenizer."""
        added = self._tokenizer.get_added_tokens_decoder()
        config: dict[str, Any] = {
            "add_prefix_space": self.add_prefix_space,
            "added_tokens_decoder": {str(index): _token_dict(added[index]) for index in sorted(added)},
            **self.special_tokens,
            "clean_up_tokenization_spaces": False,
            "errors": "replace",
            "tokenizer_class": "LongformerTokenizer",
            "trim_offsets": self.trim_offsets,
        }
        if self.model_max_length is not None:
            config["model_max_length"] = self.model_max_length
        return config

    def to_bytes(self) -> bytes:
        """``tokenizer.json`` and ``tokenizer_config.json`` in one msgpack message."""
        return srsly.msgpack_dumps(
            {"tokenizer": self._tokenizer.to_str(), "config": self._tokenizer_config()}
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> LongformerTokenizer:
        """The tokenizer ``to_bytes`` stored (a classmethod: there is no empty tokenizer to fill)."""
        try:
            message = srsly.msgpack_loads(data)
            tokenizer_json, config = message["tokenizer"], message["config"]
        except Exception as err:  # msgpack raises many unrelated types
            raise ValueError(Errors.LF086.format(error=f"{type(err).__name__}: {err}")) from err
        settings = TokenizerSettings.from_config(config, {}, source="the bytes")
        try:
            backend = _load_backend(tokenizer_json, settings)
        except Exception as err:  # json and the Rust side's bare Exception
            raise ValueError(Errors.LF086.format(error=f"{type(err).__name__}: {err}")) from err
        return cls._assemble(backend, settings, build_pipeline=False)


def train_byte_level_bpe(
    texts: Iterable[str],
    *,
    vocab_size: int = 1000,
    min_frequency: int = 1,
    model_max_length: int | None = None,
) -> LongformerTokenizer:
    """Train a small RoBERTa-style byte-level BPE offline, for tiny checkpoints without the hub.

    Special tokens come first in RoBERTa's order (``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3,
    ``<mask>``=4), matching Longformer's config defaults; the full 256-byte alphabet is in the
    vocabulary, so any text (accents, CJK, emoji) encodes without ``<unk>``. The vocabulary can end
    up smaller than ``vocab_size`` when the texts hold fewer merges.
    """
    special_tokens = [DEFAULT_SPECIAL_TOKENS[role] for role in TRAINING_SPECIAL_TOKEN_ROLES]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    minimum = len(alphabet) + len(special_tokens)
    if vocab_size < minimum:
        raise ValueError(
            Errors.LF085.format(vocab_size=vocab_size, n_special=len(special_tokens), minimum=minimum)
        )
    backend = Tokenizer(models.BPE(dropout=None, continuing_subword_prefix="", end_of_word_suffix=""))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special_tokens,
        initial_alphabet=alphabet,
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    settings = TokenizerSettings(model_max_length=model_max_length)
    return LongformerTokenizer._assemble(backend, settings, build_pipeline=True)


def _load_backend(tokenizer_json: str, settings: TokenizerSettings) -> Tokenizer:
    """Parse ``tokenizer.json`` with the config's ``add_prefix_space``/``trim_offsets`` applied to
    the pre-tokenizer and post-processor, as transformers applies them (defaults included)."""
    data = json.loads(tokenizer_json)
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    pre_tokenizer, post_processor = data.get("pre_tokenizer"), data.get("post_processor")
    overrides = (
        (pre_tokenizer, "add_prefix_space", settings.add_prefix_space),
        (post_processor, "add_prefix_space", settings.add_prefix_space),
        (post_processor, "trim_offsets", settings.trim_offsets),
    )
    for component, key, value in overrides:
        if isinstance(component, dict) and key in component:
            component[key] = value
    return Tokenizer.from_str(json.dumps(data))


def _added_token(entry: Any, *, key: str, source: str, **changes: bool) -> AddedToken:
    """An ``AddedToken`` from its JSON form ``{"content": ..., "lstrip": ..., ...}``."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("content"), str):
        raise ValueError(Errors.LF084.format(value=entry, key=key, source=source))
    flags = {flag: bool(entry[flag]) for flag in _TOKEN_FLAGS if flag in entry}
    return AddedToken(entry["content"], **{**flags, **changes})


def _with_flags(token: AddedToken, **changes: bool) -> AddedToken:
    flags = {flag: getattr(token, flag) for flag in _TOKEN_FLAGS}
    return AddedToken(token.content, **{**flags, **changes})


def _token_dict(token: AddedToken) -> dict[str, Any]:
    return {"content": token.content, **{flag: getattr(token, flag) for flag in sorted(_TOKEN_FLAGS)}}


def _check_text(text: Any) -> str:
    if not isinstance(text, str):
        raise TypeError(Errors.LF088.format(type_name=type(text).__name__, value=text))
    return text


def _read_json_object(path: Path) -> dict[str, Any]:
    """An optional JSON config file: ``{}`` when missing, a clear error when unreadable."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf8"))
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise OSError(Errors.LF083.format(path=path, error=err)) from err
    if not isinstance(data, dict):
        raise OSError(
            Errors.LF083.format(path=path, error=f"expected a JSON object, found {type(data).__name__}")
        )
    return data


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf8")
