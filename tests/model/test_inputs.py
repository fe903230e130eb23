"""Bad inputs fail at the door with a message naming the value and the fix, never deep in torch."""

import pytest
import torch

from spacy_longformer.model import (
    LongformerConfig,
    LongformerForMultipleChoice,
    LongformerForQuestionAnswering,
    LongformerForTokenClassification,
    LongformerModel,
)


@pytest.fixture(scope="module")
def config():
    return LongformerConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=20,
        attention_window=[4, 6],
        max_position_embeddings=34,
        type_vocab_size=1,
    )


@pytest.fixture(scope="module")
def model(config):
    return LongformerModel(config).eval()


def test_longest_input_that_fits_runs(model, config):
    assert config.max_tokens == 32
    out = model(torch.full((1, 32), 5))
    assert out.last_hidden_state.shape == (1, 32, 16)


def test_input_longer_than_position_table(model):
    with pytest.raises(ValueError, match=r"LF020.*33 tokens.*`max_position_embeddings` is 34.*at most 32"):
        model(torch.full((1, 33), 5))


def test_padding_does_not_count_towards_the_length(model):
    ids = torch.full((2, 40), 1)
    ids[0, :32] = 5
    ids[1, :10] = 5
    out = model(ids, attention_mask=(ids != 1).long())
    assert torch.isfinite(out.last_hidden_state).all()


def test_inputs_embeds_longer_than_position_table(model):
    with pytest.raises(ValueError, match="LF020"):
        model(inputs_embeds=torch.randn(1, 33, 16))


def test_token_id_past_the_vocabulary(model):
    ids = torch.full((2, 7), 5)
    ids[1, 3] = 50
    with pytest.raises(ValueError, match=r"LF021.*Token id 50 at position \(1, 3\).*50 ids.*tokenizer"):
        model(ids)
    ids[1, 3] = -1
    with pytest.raises(ValueError, match=r"LF021.*Token id -1"):
        model(ids)


def test_explicit_position_past_the_table(model):
    with pytest.raises(ValueError, match=r"LF027.*Position id 34"):
        model(torch.full((1, 3), 5), position_ids=torch.tensor([[2, 3, 34]]))


def test_token_type_past_the_table(model):
    with pytest.raises(ValueError, match=r"LF033.*1 types.*omit `token_type_ids`"):
        model(torch.full((1, 3), 5), token_type_ids=torch.ones(1, 3, dtype=torch.long))


@pytest.mark.parametrize("name", ["attention_mask", "global_attention_mask", "position_ids"])
def test_mismatched_mask_shape(model, name):
    with pytest.raises(ValueError, match=rf"LF024.*`{name}` has shape \(1, 5\), expected \(1, 6\)"):
        model(torch.full((1, 6), 5), **{name: torch.ones(1, 5, dtype=torch.long)})


def test_ids_and_embeds_together_or_neither(model):
    with pytest.raises(ValueError, match="LF022"):
        model(torch.full((1, 3), 5), inputs_embeds=torch.randn(1, 3, 16))
    with pytest.raises(ValueError, match="LF023"):
        model()


def test_wrong_rank_and_width(model):
    with pytest.raises(ValueError, match=r"LF024.*`input_ids` has shape \(6,\)"):
        model(torch.full((6,), 5))
    with pytest.raises(ValueError, match=r"LF025.*\(1, 3, 8\).*16"):
        model(inputs_embeds=torch.randn(1, 3, 8))


def test_head_mask_shapes(model):
    ids = torch.full((1, 6), 5)
    per_layer = model(ids, head_mask=torch.ones(2, 2)).last_hidden_state
    shared = model(ids, head_mask=torch.ones(2)).last_hidden_state
    assert torch.equal(per_layer, shared)
    with pytest.raises(ValueError, match=r"LF026.*\(3, 2\).*\(2, 2\)"):
        model(ids, head_mask=torch.ones(3, 2))


def test_empty_batch_and_empty_rows(model):
    assert model(torch.zeros(0, 5, dtype=torch.long)).last_hidden_state.shape == (0, 5, 16)
    out = model(torch.full((2, 4), 1), attention_mask=torch.zeros(2, 4, dtype=torch.long))
    assert torch.isfinite(out.last_hidden_state).all()


def test_token_labels_shape(config):
    head = LongformerForTokenClassification(config)
    with pytest.raises(ValueError, match=r"LF031.*\(1, 5\).*\(1, 6\)"):
        head(torch.full((1, 6), 5), labels=torch.zeros(1, 5, dtype=torch.long))


def test_qa_with_embeds_and_no_mask_warns(config, caplog):
    head = LongformerForQuestionAnswering(config)
    out = head(inputs_embeds=torch.randn(1, 5, 16))
    assert out.start_logits.shape == (1, 5)
    assert "LFW001" in caplog.text


def test_multiple_choice_rank(config):
    head = LongformerForMultipleChoice(config)
    with pytest.raises(ValueError, match=r"LF032.*`input_ids` has shape \(2, 6\)"):
        head(torch.full((2, 6), 5))


def test_tuple_and_named_access(model):
    out = model(torch.full((1, 6), 5), output_hidden_states=True)
    assert out[0] is out.last_hidden_state is out["last_hidden_state"]
    assert out[1] is out.pooler_output
    plain = model(torch.full((1, 6), 5), return_dict=False)
    assert isinstance(plain, tuple) and torch.equal(plain[0], out.last_hidden_state)
