"""fill_mask and `fill-mask`: what transformers' fill-mask pipeline returns, on a random masked LM.

A text that fits one window is the pipeline's own input; a longer one runs as the encoder's windows,
each mask read in the window that owns it, which transformers runs alone as the oracle.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import transformers
from typer.testing import CliRunner

import spacy_longformer
from spacy_longformer.cli import app
from spacy_longformer.fill_mask import fill_mask, plan_text
from spacy_longformer.model import LongformerConfig, LongformerForMaskedLM
from spacy_longformer.random_checkpoint import synthetic_text
from spacy_longformer.tokenization import LongformerTokenizer

ONE_MASK = "The board <mask> the annual report."
MASKS = "The <mask> approved the plan, and the <mask> signed <mask> contract."


@pytest.fixture(scope="module")
def masked_lm(tiny_checkpoint, tmp_path_factory):
    """The tiny checkpoint as a ``LongformerForMaskedLM`` (128 pieces a window) with a random head
    whose biases spread the scores, so the top candidates are far apart."""
    config = LongformerConfig.from_json_file(tiny_checkpoint / "config.json")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LongformerForMaskedLM(config)
        with torch.no_grad():
            model.lm_head.bias.normal_(0.0, 2.0)
            for name, param in model.named_parameters():
                if "norm" in name:
                    param.add_(torch.randn_like(param) * 0.1)
    path = tmp_path_factory.mktemp("masked-lm")
    model.save_pretrained(path)
    LongformerTokenizer.from_pretrained(tiny_checkpoint).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pipeline(masked_lm):
    return transformers.pipeline("fill-mask", model=str(masked_lm), tokenizer=str(masked_lm), device="cpu")


def _assert_same(ours, theirs):
    assert [[c["token"] for c in row] for row in ours] == [[c["token"] for c in row] for row in theirs]
    for mine, hf in zip(sum(ours, []), sum(theirs, []), strict=True):
        assert mine["token_str"] == hf["token_str"] and mine["sequence"] == hf["sequence"]
        assert mine["score"] == pytest.approx(hf["score"], abs=1e-4)
        assert set(mine) == {"score", "token", "token_str", "sequence"}


def test_one_mask_equals_the_pipeline(masked_lm, pipeline):
    ours = fill_mask(masked_lm, ONE_MASK, top_k=5)
    theirs = pipeline(ONE_MASK, top_k=5)
    assert isinstance(ours, list) and isinstance(ours[0], dict) and len(ours) == 5
    _assert_same([ours], [theirs])
    assert "<s>" not in ours[0]["sequence"]  # one mask: specials skipped, as the pipeline does


def test_several_masks_equal_the_pipeline(masked_lm, pipeline):
    ours = fill_mask(str(masked_lm), MASKS, top_k=3)
    theirs = pipeline(MASKS, top_k=3)
    assert len(ours) == 3 and all(len(row) == 3 for row in ours)
    _assert_same(ours, theirs)
    assert ours[0][0]["sequence"].startswith("<s>") and "<mask>" in ours[0][0]["sequence"]


def test_a_loaded_model_with_its_tokenizer_gives_the_same(masked_lm):
    model = LongformerForMaskedLM.from_pretrained(masked_lm).train()  # evaluated in eval mode all the same
    tokenizer = LongformerTokenizer.from_pretrained(masked_lm)
    assert fill_mask(model, MASKS, tokenizer=tokenizer) == fill_mask(masked_lm, MASKS)
    assert model.training
    assert spacy_longformer.fill_mask is fill_mask


def test_a_long_text_reads_each_mask_in_the_window_that_owns_it(masked_lm):
    """A text of about 5 windows, masks near its start, middle and end: each mask's scores are what
    transformers gives on the window the planner picked for it, and the sequence is the whole text."""
    words = synthetic_text(300, seed=7).split()
    for i in (3, 150, 295):
        words[i] = "<mask>"
    text = " ".join(words)
    tokenizer = LongformerTokenizer.from_pretrained(masked_lm)
    plan = plan_text(text, tokenizer, max_pieces=128, overlap=32)
    assert len(plan.ids) > 128 and len(plan.windows) >= 4
    ours = fill_mask(masked_lm, text, top_k=4, window_overlap=32)
    theirs = transformers.LongformerForMaskedLM.from_pretrained(masked_lm).eval()
    masks = [int(i) for i in (plan.ids == tokenizer.mask_token_id).nonzero()[0]]
    owners = set()
    for position, row in zip(masks, ours, strict=True):
        window = next(w for w, (pieces, _) in enumerate(plan.owned) if position in pieces)
        owners.add(window)
        pieces, rows = plan.owned[window]
        ids, _ = plan.window_inputs(window)
        with torch.no_grad():
            logits = theirs(input_ids=torch.from_numpy(ids)[None]).logits[0]
        probs = logits[int(rows[list(pieces).index(position)])].softmax(-1)
        scores, tokens = probs.topk(4)
        assert [c["token"] for c in row] == tokens.tolist()
        assert [c["score"] for c in row] == pytest.approx(scores.tolist(), abs=1e-4)
        filled = plan.ids.copy()
        filled[position] = row[0]["token"]
        assert row[0]["sequence"] == tokenizer.decode(filled)  # several masks: specials kept
    assert len(owners) == 3, "the masks should fall in three different windows"


def test_top_k_past_the_vocabulary_gives_every_piece(masked_lm):
    vocab_size = LongformerConfig.from_json_file(masked_lm / "config.json").vocab_size
    ours = fill_mask(masked_lm, ONE_MASK, top_k=10_000)
    assert len(ours) == vocab_size and sum(c["score"] for c in ours) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize(
    "case,code",
    [("no-mask", "LF162"), ("no-head", "LF163"), ("no-tokenizer", "LF160"), ("two-tokenizers", "LF160")]
    + [("not-a-model", "LF161"), ("top-k", "LF118")],
)
def test_errors_name_the_fix(masked_lm, tiny_checkpoint, case, code):
    tokenizer = LongformerTokenizer.from_pretrained(masked_lm)
    calls = {
        "no-mask": lambda: fill_mask(masked_lm, "No mask here."),
        "no-head": lambda: fill_mask(tiny_checkpoint, ONE_MASK),  # a base LongformerModel
        "no-tokenizer": lambda: fill_mask(LongformerForMaskedLM.from_pretrained(masked_lm), ONE_MASK),
        "two-tokenizers": lambda: fill_mask(masked_lm, ONE_MASK, tokenizer=tokenizer),
        "not-a-model": lambda: fill_mask(
            transformers.LongformerForMaskedLM.from_pretrained(masked_lm), ONE_MASK
        ),
        "top-k": lambda: fill_mask(masked_lm, ONE_MASK, top_k=0),
    }
    with pytest.raises((ValueError, TypeError), match=rf"\[{code}\]"):
        calls[case]()


def test_cli_json_is_the_python_result(masked_lm):
    result = CliRunner().invoke(app, ["fill-mask", str(masked_lm), MASKS, "--top-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == fill_mask(masked_lm, MASKS, top_k=2)


def test_cli_table_and_errors(masked_lm, tiny_checkpoint):
    result = CliRunner().invoke(app, ["fill-mask", str(masked_lm), ONE_MASK, "--top-k", "3"])
    assert result.exit_code == 0, result.output
    best = fill_mask(masked_lm, ONE_MASK, top_k=3)
    assert all(repr(c["token_str"]) in result.output for c in best)
    assert f"Best: {best[0]['sequence']}" in result.output
    piped = CliRunner().invoke(app, ["fill-mask", str(masked_lm), "-", "--json"], input=ONE_MASK + "\n")
    assert json.loads(piped.output) == fill_mask(masked_lm, ONE_MASK)
    failed = CliRunner().invoke(app, ["fill-mask", str(tiny_checkpoint), ONE_MASK])
    assert failed.exit_code == 1 and "[LF163]" in failed.output


def test_the_package_export_stays_a_function_and_light():
    """``spacy_longformer.fill_mask`` is the function even after its module is imported by name, and
    ``import spacy_longformer`` loads neither matplotlib nor the attention maps."""
    code = (
        "import sys, spacy_longformer, spacy_longformer.fill_mask as m; "
        "assert callable(spacy_longformer.fill_mask) and m is spacy_longformer.fill_mask; "
        "assert 'matplotlib' not in sys.modules and 'spacy_longformer.attention_maps' not in sys.modules; "
        "assert 'spacy_longformer.model' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
