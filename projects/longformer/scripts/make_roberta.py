"""A small random RoBERTa masked LM, built by transformers, offline: where the `convert` workflow starts.

    python scripts/make_roberta.py training/roberta --texts corpus/textcat/train.spacy [--hidden-size 64 ...]
    python scripts/make_roberta.py training/roberta --real /models/roberta-base

The weights are transformers' own `RobertaForMaskedLM` initialisation from `--seed`; the byte-level BPE
(RoBERTa's special tokens and ids) is trained on the texts of `--texts` and saved in the files
transformers reads. `--positions` is RoBERTa's learned position table (512 in roberta-base): kept short,
so that `convert-roberta` has something to tile. `--real` links OUT to a real RoBERTa folder instead (a
`RobertaForMaskedLM` such as roberta-base, whose head the conversion and `pretrain` then carry over).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import spacy
import torch
import transformers
import typer
from spacy.tokens import DocBin
from wasabi import msg

from spacy_longformer.tokenization import train_byte_level_bpe

# In a random checkpoint this script built, so that a rerun may replace it (and nothing else).
MARKER = ".built-by-project"


def main(
    out: Annotated[Path, typer.Argument(help="Folder for the RoBERTa checkpoint.")],
    texts: Annotated[list[Path] | None, typer.Option(help=".spacy files whose texts train the BPE.")] = None,
    real: Annotated[str, typer.Option(help="A real RoBERTa checkpoint folder to link to.")] = "",
    hidden_size: Annotated[int, typer.Option(help="Hidden size.")] = 64,
    layers: Annotated[int, typer.Option(help="Layers.")] = 2,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = 4,
    positions: Annotated[int, typer.Option(help="Learned positions (roberta-base: 512).")] = 128,
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the weights.")] = 0,
) -> None:
    if out.is_symlink():
        out.unlink()
    elif out.exists():
        if any(out.iterdir()) and not (out / MARKER).exists():
            msg.fail(f"{out} holds files this script did not write: not replacing them", exits=1)
        shutil.rmtree(out)
    if real.strip():
        source = Path(real)
        if not (source / "config.json").is_file():
            msg.fail(f"{source} is no checkpoint folder: it holds no config.json", exits=1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.symlink_to(source.resolve(), target_is_directory=True)
        msg.good(f"Linked {out} to the RoBERTa checkpoint {source.resolve()}")
        return
    vocab = spacy.blank("xx").vocab
    corpus = [doc.text for path in texts or [] for doc in DocBin().from_disk(path).get_docs(vocab)]
    if not corpus:
        msg.fail("No texts to train the BPE on: pass --texts FILE.spacy", exits=1)
    tokenizer = train_byte_level_bpe(corpus, vocab_size=vocab_size, model_max_length=positions)
    config = transformers.RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=positions + tokenizer.pad_token_id + 1,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.RobertaForMaskedLM(config)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / MARKER).write_text("Built by projects/longformer/scripts/make_roberta.py; replaced on a rerun.\n")
    msg.good(
        f"Wrote a random RobertaForMaskedLM ({layers} layers, hidden {hidden_size}, {positions} positions, "
        f"{tokenizer.vocab_size} pieces) to {out}"
    )


if __name__ == "__main__":
    typer.run(main)
