"""Fine-tuned transformers heads on the perturbed tiny encoder, saved as HF checkpoint folders: the
components load them and must give transformers' logits, losses and gradients."""

import shutil

import pytest
import torch

NER_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TEXTCAT_LABELS = ["POSITIVE", "NEGATIVE", "NEUTRAL"]
# Head weights N(0, 0.3): logits of a few units, and the classification head's tanh is not
# saturated, so a wrong <s> state still shows in the logits.
HEAD_STD = 0.3


def save_fine_tuned(encoder_checkpoint, path, cls, **config):
    """A transformers head on ``encoder_checkpoint`` with random weights, saved as ``path``."""
    torch.manual_seed(0)
    model = cls.from_pretrained(encoder_checkpoint, **config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not name.startswith("longformer."):
                parameter.normal_(0.0, HEAD_STD)
    model.save_pretrained(path)
    for file in encoder_checkpoint.iterdir():
        if file.name not in {"config.json", "model.safetensors"}:
            shutil.copy(file, path / file.name)
    return path


@pytest.fixture(scope="session")
def hf_heads(perturbed_checkpoint, tmp_path_factory):
    """Folders of a sequence-classification, a token-classification and a QA head (load a fresh
    transformers model from them with ``from_pretrained``: tests run backward on theirs)."""
    transformers = pytest.importorskip("transformers")  # the oracle: the test extra has it
    return {
        "textcat": save_fine_tuned(
            perturbed_checkpoint,
            tmp_path_factory.mktemp("textcat-head"),
            transformers.LongformerForSequenceClassification,
            id2label=dict(enumerate(TEXTCAT_LABELS)),
            label2id={label: i for i, label in enumerate(TEXTCAT_LABELS)},
        ),
        "ner": save_fine_tuned(
            perturbed_checkpoint,
            tmp_path_factory.mktemp("ner-head"),
            transformers.LongformerForTokenClassification,
            id2label=dict(enumerate(NER_TAGS)),
            label2id={tag: i for i, tag in enumerate(NER_TAGS)},
        ),
        "qa": save_fine_tuned(
            perturbed_checkpoint,
            tmp_path_factory.mktemp("qa-head"),
            transformers.LongformerForQuestionAnswering,
        ),
    }


@pytest.fixture(scope="session")
def hf_tokenizer(perturbed_checkpoint):
    transformers = pytest.importorskip("transformers")
    return transformers.LongformerTokenizerFast.from_pretrained(perturbed_checkpoint)
