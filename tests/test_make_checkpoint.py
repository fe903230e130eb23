"""`python -m spacy_longformer make-checkpoint`: a random checkpoint whose BPE knows the data."""

import json

import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_longformer.cli import app
from spacy_longformer.model import LongformerModel
from spacy_longformer.tokenization import LongformerTokenizer


def test_make_checkpoint_from_docbin_texts(tmp_path):
    nlp = spacy.blank("en")
    texts = ["zyxwv quokka " * 20, "plain words here " * 20]
    DocBin(docs=[nlp(text) for text in texts]).to_disk(tmp_path / "train.spacy")
    result = CliRunner().invoke(
        app,
        [
            "make-checkpoint",
            str(tmp_path / "ck"),
            "--texts",
            str(tmp_path / "train.spacy"),
            "--hidden-size",
            "16",
            "--heads",
            "2",
            "--intermediate-size",
            "32",
            "--attention-window",
            "8",
            "--max-length",
            "64",
            "--vocab-size",
            "400",
        ],
    )
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert (config["hidden_size"], config["max_position_embeddings"], config["attention_window"]) == (
        16,
        66,
        [8, 8],
    )
    model = LongformerModel.from_pretrained(tmp_path / "ck")
    assert model.config.max_tokens == 64
    tokenizer = LongformerTokenizer.from_pretrained(tmp_path / "ck")
    assert len(tokenizer.encode("quokka").ids) <= 4  # the BPE learned the data's words


def test_make_checkpoint_missing_texts_file(tmp_path):
    result = CliRunner().invoke(
        app, ["make-checkpoint", str(tmp_path / "ck"), "--texts", str(tmp_path / "nope.spacy")]
    )
    assert result.exit_code == 1 and "No such file" in result.output
