"""pretrain and `pretrain`: continued MLM pretraining lowers the held-out loss, writes a checkpoint that
transformers and our components load, keeps a converted RoBERTa's head, and resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import spacy
import srsly
import torch
import transformers
from safetensors.torch import load_file
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_longformer.cli import app
from spacy_longformer.model import LongformerConfig, LongformerForMaskedLM
from spacy_longformer.model.convert_roberta import convert_roberta
from spacy_longformer.pretrain import PretrainSettings, mask_tokens, pack, pretrain, read_corpus
from spacy_longformer.random_checkpoint import synthetic_text
from spacy_longformer.tokenization import LongformerTokenizer

from .model.oracle import save_small_roberta

# Small steps on the tiny checkpoint (128 pieces a window): 2 blocks of 128 pieces each.
QUICK = dict(lr=5e-3, batch_pieces=256, max_length=128, warmup_steps=2)


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint with a masked-LM head."""
    config = LongformerConfig.from_json_file(tiny_checkpoint / "config.json")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LongformerForMaskedLM(config)
    path = tmp_path_factory.mktemp("masked-lm")
    model.save_pretrained(path)
    LongformerTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """20 long documents (500 words, about 4 windows each) as JSONL."""
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    srsly.write_jsonl(path, [{"text": synthetic_text(500, seed=100 + i)} for i in range(20)])
    return path


@pytest.fixture(scope="module")
def trained(checkpoint, corpus, tmp_path_factory):
    output = tmp_path_factory.mktemp("pretrained")
    settings = PretrainSettings(max_steps=20, eval_every=10, **QUICK)
    return pretrain(checkpoint, corpus, output, settings=settings, force=True, progress=False)


def test_pretraining_lowers_the_held_out_loss(trained):
    steps = [entry["step"] for entry in trained.history]
    assert steps == [0, 10, 20] and trained.finished and trained.step == 20
    assert trained.eval_loss_after < trained.eval_loss_before - 0.3, trained.history
    assert len(trained.train_loss) == 20 and trained.pieces_per_second > 0
    log = json.loads((trained.output / "pretraining.json").read_text())
    assert log["history"] == trained.history and log["run"]["max_length"] == 128


def test_the_output_loads_in_transformers_with_the_same_logits(trained):
    theirs, info = transformers.LongformerForMaskedLM.from_pretrained(
        trained.output, output_loading_info=True
    )
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    ours = LongformerForMaskedLM.from_pretrained(trained.output).eval()
    input_ids = torch.tensor(
        [LongformerTokenizer.from_pretrained(trained.output).encode("The board <mask> it.").ids]
    )
    with torch.no_grad():
        torch.testing.assert_close(
            ours(input_ids=input_ids).logits, theirs.eval()(input_ids=input_ids).logits, atol=1e-4, rtol=0
        )


def test_the_output_fine_tunes_in_our_components(trained):
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("longformer_textcat", config={"model": {"encoder": {"name": str(trained.output)}}})
    for label in ("POSITIVE", "NEGATIVE"):
        textcat.add_label(label)
    nlp.initialize()
    cats = nlp(synthetic_text(200, seed=3)).cats
    assert set(cats) == {"POSITIVE", "NEGATIVE"} and sum(cats.values()) == pytest.approx(1.0)


def test_resuming_gives_what_an_uninterrupted_run_gives(checkpoint, corpus, tmp_path):
    settings = PretrainSettings(max_steps=8, eval_every=2, save_every=2, **QUICK)
    whole = pretrain(checkpoint, corpus, tmp_path / "whole", settings=settings, progress=False)
    first = PretrainSettings(max_steps=8, eval_every=2, save_every=3, stop_after=5, **QUICK)
    half = pretrain(checkpoint, corpus, tmp_path / "split", settings=first, progress=False)
    assert half.step == 5 and not half.finished
    # a state saved at step 5 (the stop), not only at the save_every steps
    assert json.loads((tmp_path / "split" / "training-state" / "state.json").read_text())["step"] == 5
    rest = pretrain(checkpoint, corpus, tmp_path / "split", settings=settings, resume=True, progress=False)
    assert rest.finished and rest.step == 8
    assert rest.train_loss == pytest.approx(whole.train_loss, abs=1e-6)
    assert [e["eval_loss"] for e in rest.history] == pytest.approx(
        [e["eval_loss"] for e in whole.history], abs=1e-6
    )
    a, b = (
        load_file(tmp_path / "whole" / "model.safetensors"),
        load_file(tmp_path / "split" / "model.safetensors"),
    )
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)


def test_resuming_with_other_settings_or_nothing_saved_is_an_error(checkpoint, corpus, tmp_path):
    settings = PretrainSettings(max_steps=4, stop_after=1, **QUICK)
    pretrain(checkpoint, corpus, tmp_path / "run", settings=settings, progress=False)
    changed = PretrainSettings(max_steps=4, **{**QUICK, "lr": 1e-3})
    with pytest.raises(ValueError, match=r"\[LF171\].*lr: saved 0.005, now 0.001"):
        pretrain(checkpoint, corpus, tmp_path / "run", settings=changed, resume=True, progress=False)
    with pytest.raises(ValueError, match=r"\[LF169\]"):
        pretrain(checkpoint, corpus, tmp_path / "none", settings=settings, resume=True, progress=False)
    with pytest.raises(OSError, match=r"\[LF173\].*--force"):
        pretrain(checkpoint, corpus, tmp_path / "run", settings=settings, progress=False)
    with pytest.raises(ValueError, match=r"\[LF172\]"):
        pretrain(checkpoint, corpus, checkpoint, settings=settings, progress=False)


def test_a_converted_roberta_keeps_its_head(tmp_path, corpus):
    """convert-roberta keeps RobertaForMaskedLM's head; pretraining starts from it (a step of a
    vanishing learning rate leaves it as RoBERTa had it) and writes it back out."""
    roberta = save_small_roberta(transformers.RobertaForMaskedLM, tmp_path / "roberta")
    converted = convert_roberta(
        tmp_path / "roberta", tmp_path / "converted", max_length=128, attention_window=16
    )
    settings = PretrainSettings(max_steps=1, lr=1e-12, warmup_steps=0, batch_pieces=256, max_length=128)
    result = pretrain(converted, corpus, tmp_path / "out", settings=settings, progress=False)
    assert not result.fresh_head
    state = load_file(tmp_path / "out" / "model.safetensors")
    for name, value in roberta.lm_head.state_dict().items():
        if name.startswith("decoder"):
            continue  # tied to the word embeddings
        torch.testing.assert_close(state[f"lm_head.{name}"], value, atol=1e-6, rtol=0)


def test_masking_is_robertas_80_10_10():
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(5, 1000, (200, 500), generator=generator)
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    inputs, labels = mask_tokens(
        input_ids, special=special, probability=0.15, mask_id=4, vocab_size=1000, generator=generator
    )
    chosen = labels != -100
    assert not chosen[special].any() and torch.equal(labels[chosen], input_ids[chosen])
    assert torch.equal(inputs[~chosen], input_ids[~chosen])
    assert chosen[~special].float().mean().item() == pytest.approx(0.15, abs=0.005)
    masked = (inputs == 4) & chosen
    same = (inputs == input_ids) & chosen
    n = chosen.sum().item()
    assert masked.sum().item() / n == pytest.approx(0.8, abs=0.01)
    assert same.sum().item() / n == pytest.approx(0.1 + 0.1 / 1000, abs=0.01)  # kept, or drawn as itself


def test_packing_puts_documents_in_one_stream_of_framed_blocks():
    blocks = pack([[10, 11, 12], [20], [30, 31, 32, 33]], block=4, bos=0, eos=2)
    assert blocks == [[0, 10, 11, 12, 2, 2], [0, 20, 2, 30, 31, 2], [0, 32, 33, 2]]


def test_corpus_formats_and_their_errors(tmp_path, checkpoint):
    texts = ["first document", "second document"]
    (tmp_path / "docs.txt").write_text("first document\n\nsecond document\n")
    srsly.write_jsonl(tmp_path / "docs.jsonl", [{"text": t} for t in texts])
    nlp = spacy.blank("en")
    DocBin(docs=[nlp(t) for t in texts]).to_disk(tmp_path / "docs.spacy")
    for name in ("docs.txt", "docs.jsonl", "docs.spacy"):
        assert read_corpus(tmp_path / name) == texts
    (tmp_path / "docs.csv").write_text("text\n")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"body": "no text"}\n')
    srsly.write_jsonl(tmp_path / "one.jsonl", [{"text": "only one"}])
    with pytest.raises(ValueError, match=r"\[LF166\]"):
        read_corpus(tmp_path / "docs.csv")
    with pytest.raises(ValueError, match=r"\[LF167\] Line 2"):
        read_corpus(tmp_path / "bad.jsonl")
    with pytest.raises(ValueError, match=r"\[LF168\]"):
        pretrain(checkpoint, tmp_path / "one.jsonl", tmp_path / "out", settings=PretrainSettings(**QUICK))


@pytest.mark.parametrize(
    "change,code",
    [({"mlm_probability": 1.5}, "LF164"), ({"precision": "fp16"}, "LF165"), ({"max_steps": 0}, "LF118")]
    + [({"max_length": 4096}, "LF170")],
)
def test_bad_settings_name_the_option(checkpoint, corpus, tmp_path, change, code):
    settings = PretrainSettings(**{**QUICK, **change})
    with pytest.raises(ValueError, match=rf"\[{code}\]"):
        pretrain(checkpoint, corpus, tmp_path / "out", settings=settings, progress=False)


def test_cli_pretrains_and_resumes(checkpoint, corpus, tmp_path):
    out = tmp_path / "out"
    args = ["pretrain", str(checkpoint), str(corpus), str(out), "--max-steps", "4", "--lr", "0.005"]
    args += ["--batch-pieces", "256", "--max-length", "128", "--eval-every", "2"]
    stopped = CliRunner().invoke(app, [*args, "--stop-after", "2"])
    assert stopped.exit_code == 0, stopped.output
    assert "Stopped at step 2 of 4" in stopped.output and "--resume" in stopped.output
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "[LF173]" in again.output
    resumed = CliRunner().invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert "Resuming at step 2" in resumed.output and "Pretrained 4 steps" in resumed.output
    history = json.loads((out / "pretraining.json").read_text())["history"]
    assert [entry["step"] for entry in history] == [0, 2, 4]
    assert np.isfinite([entry["eval_loss"] for entry in history]).all()
