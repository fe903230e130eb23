"""A user's first spaCy pipeline, run by .ci/run in environments with no test extra.

Prints the version that pip resolved for every requirement of the installed package, then adds the
encoder pipe on a small random checkpoint, runs a document several windows long (with the double
spaces, newlines, tabs, emoji and control characters of real text), saves the pipeline, deletes the
checkpoint, loads the pipeline back with ``spacy.load`` and checks that it gives the same vectors.
Exits non-zero, with the reason, on any failure.
"""

import re
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import spacy

from spacy_longformer.random_checkpoint import build_random_checkpoint, synthetic_text


def print_versions() -> None:
    """What pip resolved: the installed release of each requirement, beside the range we declare."""
    print(f"python {sys.version.split()[0]}")
    print(f"spacy-longformer {metadata.version('spacy-longformer')}")
    for requirement in metadata.requires("spacy-longformer") or []:
        if "extra ==" in requirement:
            continue
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
        print(f"  {name} {metadata.version(name)}  (declared: {requirement})")


def main() -> None:
    print_versions()
    text = (
        synthetic_text(1500, seed=3)
        + "\n\nSigned  by the parties\ton 1 May.\n\n\nEmoji 🙂👍🏽, a bell\x07 and a zero\u200bwidth space."
    )
    with tempfile.TemporaryDirectory(prefix="spacy-longformer-smoke-") as tmp:
        checkpoint = build_random_checkpoint(
            Path(tmp) / "checkpoint", hidden_size=32, intermediate_size=64, max_position_embeddings=258
        )
        nlp = spacy.blank("en")
        nlp.add_pipe("longformer_encoder", config={"model": {"name": str(checkpoint)}})
        nlp.initialize()
        doc = nlp(text)
        data = doc._.longformer
        assert len(data.windows) > 1, f"expected several windows, got {data.windows}"
        assert doc.tensor.shape == (len(doc), 32), doc.tensor.shape
        assert np.isfinite(doc.tensor).all(), "non-finite token vectors"
        print(f"{len(doc):,} tokens -> {data.n_pieces:,} pieces in {len(data.windows)} windows")

        nlp.to_disk(Path(tmp) / "pipeline")
        shutil.rmtree(checkpoint)
        reloaded = spacy.load(Path(tmp) / "pipeline")
        again = reloaded(text)
        difference = float(np.abs(again.tensor - doc.tensor).max())
        assert difference <= 1e-5, f"spacy.load gives other vectors (max difference {difference:.2e})"
        print(f"to_disk -> spacy.load: same vectors (max difference {difference:.1e})")
    print("smoke test passed")


if __name__ == "__main__":
    main()
