"""Tiny randomly initialised Longformer checkpoints and synthetic text, made offline.

``build_random_checkpoint`` writes a folder in the Hugging Face layout (``config.json``,
``model.safetensors``, ``tokenizer.json``) that both this package and ``transformers`` load: the
tokenizer is a byte-level BPE trained on ``synthetic_text`` (or on texts you give), the weights are
random from a fixed seed. Tests, the demo and examples use it where a real checkpoint would need a
download.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path

# A small vocabulary in the register of the documents Longformer is for (filings, contracts, news).
_DETERMINERS = ("the", "the", "the", "a", "this", "each", "every", "that", "any", "its", "their")
_NOUNS = tuple(
    (
        "agreement party company board report court market contract year quarter revenue price share "
        "investor customer supplier committee notice payment period claim term section clause document "
        "patient doctor hospital treatment study result risk policy government minister city country "
        "bank loan rate team manager employee office product service system network data model record "
        "letter meeting decision law rule statement account fund plan project budget cost profit loss "
        "asset liability obligation right license property building land village river road season game "
        "player coach election vote tax trade energy oil"
    ).split()
)
_ADJECTIVES = tuple(
    (
        "new old large small annual final initial material significant general public private federal "
        "local national financial legal medical clinical previous current future total net strong weak "
        "early late major minor written prior reasonable applicable effective senior chief"
    ).split()
)
_VERBS = tuple(
    (
        "approved rejected signed reviewed reported announced delivered received paid increased reduced "
        "extended terminated required provided confirmed described included excluded owned sold bought "
        "filed issued held agreed expected noted treated measured recorded found built opened closed won "
        "lost raised lowered changed"
    ).split()
)
_AUXILIARIES = ("shall", "may", "will", "must", "can", "should", "would")
_BARE_VERBS = tuple("review terminate pay notify request approve deliver provide receive hold".split())
_ADVERBS = tuple(
    "quickly formally promptly jointly publicly previously recently already still also only further".split()
)
_PREPOSITIONS = tuple("of in on under with for by after before within during from to against between".split())
_CONJUNCTIONS = ("and", "but", "while", "because", "although", "so", "whereas")
_NAMES = tuple(
    (
        "Acme Northwind Contoso London Berlin Paris Madrid Chicago Toronto Sydney Smith Garcia Okafor "
        "Tanaka Novak Dubois Rossi Jensen"
    ).split()
)
_OPENERS = ("However", "Moreover", "In addition", "As a result", "Accordingly", "Meanwhile", "In particular")
_MONTHS = tuple(
    "January February March April May June July August September October November December".split()
)


def synthetic_text(n_words: int, seed: int = 0) -> str:
    """Deterministic English-like prose of exactly ``n_words`` words (whitespace-separated).

    Sentences follow a small grammar (subject, verb, object, prepositional phrases, clauses joined
    by conjunctions) over a built-in vocabulary, with capitals, commas, numbers, dates, questions
    and paragraphs, so a tokenizer trained on it and a model run over it see text shaped like the
    real thing. The same ``(n_words, seed)`` always gives the same string.
    """
    if n_words < 0:
        raise ValueError(f"n_words must be >= 0, got {n_words}")
    rng = random.Random(seed)
    paragraphs: list[str] = []
    sentences: list[str] = []
    n_left = n_words
    sentences_left = rng.randint(3, 7)
    while n_left > 0:
        words = _sentence(rng)
        if len(words) > n_left:
            words = words[:n_left]
            words[-1] = words[-1].rstrip(",;:") + "."
        n_left -= len(words)
        sentences.append(" ".join(words))
        sentences_left -= 1
        if sentences_left == 0 or n_left == 0:
            paragraphs.append(" ".join(sentences))
            sentences = []
            sentences_left = rng.randint(3, 7)
    return "\n\n".join(paragraphs)


def _noun_phrase(rng: random.Random) -> list[str]:
    roll = rng.random()
    if roll < 0.12:
        return [rng.choice(_NAMES)]
    if roll < 0.18:
        return [str(rng.randint(2, 990)), _plural(rng.choice(_NOUNS))]
    words = [rng.choice(_DETERMINERS)]
    if rng.random() < 0.45:
        words.append(rng.choice(_ADJECTIVES))
    words.append(rng.choice(_NOUNS))
    if rng.random() < 0.1:
        words[-1] += "'s"
        words.append(rng.choice(_NOUNS))
    return words


def _plural(noun: str) -> str:
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"


def _clause(rng: random.Random) -> list[str]:
    words = _noun_phrase(rng)
    if rng.random() < 0.2:
        words.append(rng.choice(_ADVERBS))
    if rng.random() < 0.25:
        words.extend((rng.choice(_AUXILIARIES), rng.choice(_BARE_VERBS)))
    else:
        words.append(rng.choice(_VERBS))
    if rng.random() < 0.85:
        words.extend(_noun_phrase(rng))
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        words.append(rng.choice(_PREPOSITIONS))
        words.extend(_noun_phrase(rng))
    if rng.random() < 0.12:
        words.extend(["on", rng.choice(_MONTHS), str(rng.randint(1, 28)) + ",", str(rng.randint(1990, 2030))])
    return words


def _sentence(rng: random.Random) -> list[str]:
    words: list[str] = []
    if rng.random() < 0.15:
        words.extend((rng.choice(_OPENERS) + ",").split())
    words.extend(_clause(rng))
    if rng.random() < 0.35:
        words[-1] += ","
        words.append(rng.choice(_CONJUNCTIONS))
        words.extend(_clause(rng))
    words[0] = words[0][0].upper() + words[0][1:]
    words[-1] = words[-1].rstrip(",") + ("?" if rng.random() < 0.05 else ".")
    return words


def build_random_checkpoint(
    path: str | Path,
    *,
    texts: Iterable[str] | None = None,
    vocab_size: int = 1000,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    intermediate_size: int = 128,
    attention_window: int | list[int] = 32,
    max_position_embeddings: int = 4098,
    seed: int = 0,
) -> Path:
    """Write a randomly initialised Longformer checkpoint folder in the Hugging Face layout.

    The folder gets ``config.json`` and ``model.safetensors`` (``LongformerModel.save_pretrained``)
    and the tokenizer files (``tokenizer.json`` and friends): a byte-level BPE with RoBERTa's special
    tokens trained on ``texts`` (default: 20,000 words of ``synthetic_text``) up to ``vocab_size``
    ids. The config takes its vocabulary size and special token ids from that tokenizer, so the
    model's ``vocab_size`` can be smaller than asked when the texts hold fewer merges.

    Weights come from ``torch.manual_seed(seed)`` inside a forked RNG (the caller's random state is
    left alone): the same arguments give the same checkpoint. ``max_position_embeddings=4098``
    leaves room for 4,096 pieces, as in ``longformer-base-4096``. Nothing is downloaded.

    Returns the folder's path.
    """
    import torch

    from .model import LongformerConfig, LongformerModel
    from .tokenization import train_byte_level_bpe

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if texts is None:
        texts = synthetic_text(20_000, seed=seed).split("\n\n")
    # positions start after pad_token_id (1): max_position_embeddings - 2 pieces fit
    tokenizer = train_byte_level_bpe(
        texts, vocab_size=vocab_size, model_max_length=max_position_embeddings - 2
    )
    config = LongformerConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        attention_window=attention_window,
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        sep_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LongformerModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
