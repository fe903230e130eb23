"""Every head against its transformers counterpart: logits, losses, default global attention."""

import pytest
import torch
import transformers

from spacy_longformer import model as ours_module

from .oracle import BOS, EOS, PAD, PARITY_CONFIGS, VOCAB_SIZE, hf_config, make_batch, run_hf, save_hf_model

TOL = 1e-4
HEADS = [
    "LongformerForMaskedLM",
    "LongformerForSequenceClassification",
    "LongformerForTokenClassification",
    "LongformerForQuestionAnswering",
    "LongformerForMultipleChoice",
]


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


def _load(name: str, config_name: str, path, **overrides):
    config = hf_config(config_name, **overrides)
    theirs = save_hf_model(getattr(transformers, name), config, path)
    ours = getattr(ours_module, name).from_pretrained(path).eval()
    return theirs, ours, config


def _qa_batch(question_lengths, context_lengths, seed=0):
    """<s> question </s></s> context </s>, right-padded: the layout the QA default relies on."""
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for q, c in zip(question_lengths, context_lengths, strict=True):
        question = torch.randint(3, VOCAB_SIZE, (q,), generator=gen).tolist()
        context = torch.randint(3, VOCAB_SIZE, (c,), generator=gen).tolist()
        rows.append([BOS, *question, EOS, EOS, *context, EOS])
    seq_len = max(map(len, rows))
    ids = torch.full((len(rows), seq_len), PAD, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    return ids, mask


@pytest.mark.parametrize("config_name", list(PARITY_CONFIGS))
@pytest.mark.parametrize("global_kind", ["omitted", "random", "all"])
def test_masked_lm(tmp_path, config_name, global_kind):
    theirs, ours, config = _load("LongformerForMaskedLM", config_name, tmp_path)
    batch = make_batch([27, 14], global_kind=global_kind, seed=1)
    labels = torch.where(torch.rand(batch.input_ids.shape) < 0.3, batch.input_ids, -100)
    labels[:, 0] = 5
    inputs = dict(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        global_attention_mask=batch.global_attention_mask,
        labels=labels,
    )
    expected, _ = run_hf(theirs, config, **inputs)
    got = ours(**inputs)
    assert float((got.logits - expected.logits[:, :27])[batch.real].abs().max()) <= TOL
    assert abs(float(got.loss) - float(expected.loss)) <= TOL


@pytest.mark.parametrize("config_name", list(PARITY_CONFIGS))
@pytest.mark.parametrize("labels_kind", ["single", "multi", "regression"])
@pytest.mark.parametrize("global_kind", ["omitted", "span"])
def test_sequence_classification(tmp_path, config_name, labels_kind, global_kind):
    num_labels = 1 if labels_kind == "regression" else 3
    theirs, ours, config = _load(
        "LongformerForSequenceClassification", config_name, tmp_path, num_labels=num_labels
    )
    batch = make_batch([31, 9, 20], global_kind=global_kind, seed=2)
    if labels_kind == "single":
        labels = torch.tensor([0, 2, 1])
    elif labels_kind == "multi":
        labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    else:
        labels = torch.tensor([0.5, -1.0, 2.0])
    inputs = dict(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        global_attention_mask=batch.global_attention_mask,
        labels=labels,
    )
    expected, _ = run_hf(theirs, config, **inputs)
    got = ours(**inputs)
    assert got.logits.shape == (3, num_labels)
    assert float((got.logits - expected.logits).abs().max()) <= TOL
    assert abs(float(got.loss) - float(expected.loss)) <= TOL


def test_sequence_classification_default_puts_s_global(tmp_path):
    """Omitting the mask equals passing <s> global explicitly (and differs from no global)."""
    _, ours, _ = _load("LongformerForSequenceClassification", "w4-8", tmp_path)
    batch = make_batch([30, 30], global_kind="omitted", seed=4)
    first = torch.zeros_like(batch.input_ids)
    first[:, 0] = 1
    default = ours(input_ids=batch.input_ids, output_hidden_states=True)
    explicit = ours(input_ids=batch.input_ids, global_attention_mask=first, output_hidden_states=True)
    local_only = ours(
        input_ids=batch.input_ids, global_attention_mask=torch.zeros_like(first), output_hidden_states=True
    )
    assert torch.equal(default.logits, explicit.logits)
    assert torch.equal(default.hidden_states[-1], explicit.hidden_states[-1])
    assert (default.hidden_states[-1][:, 0] - local_only.hidden_states[-1][:, 0]).abs().max() > 1e-2


@pytest.mark.parametrize("config_name", list(PARITY_CONFIGS))
@pytest.mark.parametrize("global_kind", ["omitted", "first", "random"])
def test_token_classification(tmp_path, config_name, global_kind):
    theirs, ours, config = _load("LongformerForTokenClassification", config_name, tmp_path, num_labels=5)
    batch = make_batch([33, 18], global_kind=global_kind, seed=3)
    labels = torch.randint(0, 5, batch.input_ids.shape).masked_fill(~batch.real, -100)
    inputs = dict(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        global_attention_mask=batch.global_attention_mask,
        labels=labels,
    )
    expected, _ = run_hf(theirs, config, **inputs)
    got = ours(**inputs)
    assert float((got.logits - expected.logits[:, :33])[batch.real].abs().max()) <= TOL
    assert abs(float(got.loss) - float(expected.loss)) <= TOL


@pytest.mark.parametrize("config_name", list(PARITY_CONFIGS))
@pytest.mark.parametrize("explicit_global", [False, True])
def test_question_answering(tmp_path, config_name, explicit_global):
    theirs, ours, config = _load("LongformerForQuestionAnswering", config_name, tmp_path)
    ids, mask = _qa_batch([4, 7, 2], [30, 11, 19], seed=5)
    glob = None
    if explicit_global:
        glob = (torch.rand(ids.shape, generator=torch.Generator().manual_seed(9)) < 0.3).long() * mask
    inputs = dict(
        input_ids=ids,
        attention_mask=mask,
        global_attention_mask=glob,
        start_positions=torch.tensor([10, 12, 500]),
        end_positions=torch.tensor([14, 12, 20]),
        output_attentions=True,
    )
    expected, extra = run_hf(theirs, config, **inputs)
    got = ours(**inputs)
    seq_len = ids.shape[1]
    real = mask.bool()
    for name in ("start_logits", "end_logits"):
        assert float((getattr(got, name) - getattr(expected, name)[:, :seq_len])[real].abs().max()) <= TOL
    if not extra:
        # transformers' QA loss soft-maxes over padding too, so it moves when we pre-pad for it.
        assert abs(float(got.loss) - float(expected.loss)) <= TOL
    if not explicit_global:
        # The question (<s> and the tokens before the first </s>) is global: x = longest question + 1.
        assert got.global_attentions[0].shape[-1] == 7 + 1


def test_question_answering_default_needs_a_separator(tmp_path):
    _, ours, _ = _load("LongformerForQuestionAnswering", "w4-8", tmp_path)
    ids = torch.randint(3, VOCAB_SIZE, (2, 12))
    ids[1, 5] = EOS
    with pytest.raises(ValueError, match=r"LF028.*row 0"):
        ours(input_ids=ids)


@pytest.mark.parametrize("config_name", list(PARITY_CONFIGS))
@pytest.mark.parametrize("explicit_global", [False, True])
def test_multiple_choice(tmp_path, config_name, explicit_global):
    theirs, ours, config = _load("LongformerForMultipleChoice", config_name, tmp_path)
    choices = 3
    ids, mask = _qa_batch([5, 3, 6, 4, 2, 8], [12, 17, 9, 15, 20, 6], seed=6)
    ids, mask = ids.view(2, choices, -1), mask.view(2, choices, -1)
    glob = None
    if explicit_global:
        glob = torch.zeros_like(ids)
        glob[..., 0] = 1
    inputs = dict(input_ids=ids, attention_mask=mask, global_attention_mask=glob, labels=torch.tensor([2, 0]))
    expected, _ = run_hf(theirs, config, **inputs)
    got = ours(**inputs)
    assert got.logits.shape == (2, choices)
    assert float((got.logits - expected.logits).abs().max()) <= TOL
    assert abs(float(got.loss) - float(expected.loss)) <= TOL


@pytest.mark.parametrize("name", HEADS)
def test_get_input_embeddings_is_the_word_table(tmp_path, name):
    _, ours, config = _load(name, "w4-8", tmp_path)
    embeddings = ours.get_input_embeddings()
    assert embeddings.weight.shape == (config.vocab_size, config.hidden_size)
    assert embeddings is ours.longformer.embeddings.word
