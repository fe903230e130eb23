"""The heads' losses backpropagate as transformers' do, not only their values (test_heads_parity.py
runs under no_grad: a loss whose value is right but whose gradient is scaled gets past it)."""

import pytest
import torch
import transformers

from spacy_longformer import model as ours_module

from .oracle import PARITY_CONFIGS, hf_config, make_batch, no_dropout_, run_hf, save_hf_model


@pytest.mark.parametrize("config_name", list(PARITY_CONFIGS)[:1])
def test_token_classification_loss_gradients_equal_transformers(tmp_path, config_name):
    config = hf_config(config_name, num_labels=5)
    theirs = save_hf_model(transformers.LongformerForTokenClassification, config, tmp_path)
    theirs = no_dropout_(theirs.train())
    ours = ours_module.LongformerForTokenClassification.from_pretrained(tmp_path)
    ours = no_dropout_(ours.train())
    batch = make_batch([33, 18], global_kind="random", seed=3)
    labels = torch.randint(0, 5, batch.input_ids.shape, generator=torch.Generator().manual_seed(1))
    labels = labels.masked_fill(~batch.real, -100)
    inputs = dict(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        global_attention_mask=batch.global_attention_mask,
        labels=labels,
    )
    expected, _ = run_hf(theirs, config, **inputs)
    expected.loss.backward()
    got = ours(**inputs)
    got.loss.backward()
    assert abs(float(got.loss.detach()) - float(expected.loss.detach())) <= 1e-5
    theirs_grads = dict(theirs.named_parameters())
    for name in ("classifier.weight", "classifier.bias"):
        torch.testing.assert_close(
            dict(ours.named_parameters())[name].grad, theirs_grads[name].grad, rtol=1e-4, atol=1e-6
        )
