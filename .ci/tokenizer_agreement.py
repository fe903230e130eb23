"""Our tokenizer under every tokenizers release CI installs gives transformers' ids and offsets.

transformers (the oracle) pins tokenizers, so it can only run in the test environment. This script
carries its answers to the other environments:

    python .ci/tokenizer_agreement.py write DIR   # test environment: folders + transformers' answers
    python .ci/tokenizer_agreement.py check DIR   # any environment: ours must give the same

``write`` saves a trained tokenizer twice, as ``tokenizer.json`` and as a bare ``vocab.json`` +
``merges.txt`` (the folder layout that makes us build RoBERTa's post-processor ourselves), and
records what ``LongformerTokenizerFast`` gives for each on texts and question/context pairs with
real text's whitespace, emoji and control characters. ``check`` loads both folders with our
tokenizer, and also trains one, saves it and loads it back both ways; it exits 1 on any difference.
"""

import json
import shutil
import sys
from pathlib import Path

from spacy_longformer.random_checkpoint import synthetic_text
from spacy_longformer.tokenization import LongformerTokenizer, train_byte_level_bpe

TEXTS = [
    "The board approved the agreement on Monday.",
    "",
    " ",
    "   three leading and trailing   ",
    "double  spaces,\ttabs\tand\nnew\n\nlines\r\nwindows",
    "Café naïve résumé Zürich — “quotes”, 日本語, 中文",
    "emoji 🤗🚀👩‍👩‍👧, skin tones 👍🏽, flags 🇩🇪",
    "The <mask> approved it. <mask>at the start, glued<mask>words",
    "literal specials <s> </s> <pad> in text",
    "control \x00 \x07 chars, zero\u200bwidth and non\u00a0breaking",
    synthetic_text(1200, seed=5),
]
PAIRS = [
    ("Who approved the agreement?", "The board approved the agreement on Monday."),
    (" spaced  question ", "  spaced\tcontext \n"),
    ("empty context", ""),
    ("What is <mask>?", synthetic_text(300, seed=6)),
]
FOLDERS = ("tokenizer_json", "vocab_merges")


def _encoded(ids: list[int], offsets: list[tuple[int, int]]) -> dict:
    return {"ids": list(ids), "offsets": [list(pair) for pair in offsets]}


def ours(folder: Path) -> dict:
    tokenizer = LongformerTokenizer.from_pretrained(folder)
    return {
        "texts": [_encoded(e.ids, e.offsets) for e in map(tokenizer.encode, TEXTS)],
        "pairs": [_encoded(e.ids, e.offsets) for e in (tokenizer.encode_pair(q, c) for q, c in PAIRS)],
    }


def write(out: Path) -> None:
    import transformers

    out.mkdir(parents=True, exist_ok=True)
    trained = train_byte_level_bpe(synthetic_text(20_000, seed=1).split("\n\n"), vocab_size=900)
    full = trained.save_pretrained(out / "tokenizer_json")
    bare = out / "vocab_merges"
    shutil.rmtree(bare, ignore_errors=True)
    shutil.copytree(full, bare)
    (bare / "tokenizer.json").unlink()
    answers = {}
    for name in FOLDERS:
        hf = transformers.LongformerTokenizerFast.from_pretrained(out / name)

        def encoded(*texts: str, hf=hf) -> dict:
            result = hf(*texts, return_offsets_mapping=True)
            return _encoded(result["input_ids"], result["offset_mapping"])

        answers[name] = {
            "texts": [encoded(text) for text in TEXTS],
            # transformers' fast single call drops an empty context; its batch call keeps the layout.
            "pairs": [
                _encoded(r["input_ids"][0], r["offset_mapping"][0])
                for r in (hf([q], [c], return_offsets_mapping=True) for q, c in PAIRS)
            ],
        }
    (out / "answers.json").write_text(json.dumps(answers), encoding="utf8")
    print(
        f"transformers {transformers.__version__}: answers for {len(TEXTS)} texts and {len(PAIRS)} pairs in {out}"
    )


def check(out: Path) -> int:
    import tokenizers

    answers = json.loads((out / "answers.json").read_text(encoding="utf8"))
    failures = []
    for name in FOLDERS:
        mine = ours(out / name)
        for kind in ("texts", "pairs"):
            for index, (got, expected) in enumerate(zip(mine[kind], answers[name][kind], strict=True)):
                if got != expected:
                    failures.append(f"{name}: {kind}[{index}] differs from transformers'")
    trained = train_byte_level_bpe(synthetic_text(5_000, seed=2).split("\n\n"), vocab_size=700)
    saved = trained.save_pretrained(out / "trained_here")
    bare = out / "trained_here_bare"
    shutil.rmtree(bare, ignore_errors=True)
    shutil.copytree(saved, bare)
    (bare / "tokenizer.json").unlink()
    if ours(saved) != ours(bare):
        failures.append(
            "a tokenizer trained here loads differently from tokenizer.json and from vocab+merges"
        )
    version = f"tokenizers {tokenizers.__version__}"
    if failures:
        print(f"{version}: {len(failures)} differences:\n  " + "\n  ".join(failures))
        return 1
    print(
        f"{version}: ids and offsets equal transformers' on {len(TEXTS)} texts and {len(PAIRS)} pairs, both layouts"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(f"usage: python {sys.argv[0]} write|check DIR")
    if sys.argv[1] == "write":
        write(Path(sys.argv[2]))
    else:
        sys.exit(check(Path(sys.argv[2])))
