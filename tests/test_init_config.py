"""`python -m spacy_longformer init-config`: the templates the package ships, the repository's
`configs/` as their copies, and what the options change."""

from pathlib import Path

import pytest
from thinc.api import Config
from typer.testing import CliRunner

from spacy_longformer.cli import app
from spacy_longformer.init_config import GPU_BATCH_PIECES, TASKS, init_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("task", TASKS)
def test_configs_folder_holds_what_init_config_writes(task):
    assert (CONFIGS / f"{task}.cfg").read_text(encoding="utf8") == init_config(task), (
        f"configs/{task}.cfg differs from the package's template: edit "
        f"spacy_longformer/configs/{task}.cfg, then `python -m spacy_longformer init-config {task} "
        f"configs/{task}.cfg --force`"
    )


def test_configs_folder_has_a_copy_of_every_template_and_nothing_else():
    assert sorted(path.stem for path in CONFIGS.glob("*.cfg")) == sorted(TASKS)


def _encoders(config: Config) -> list[dict]:
    found = []

    def walk(block: dict) -> None:
        if block.get("@architectures") == "spacy-longformer.LongformerEncoder.v1":
            found.append(block)
        for value in block.values():
            if isinstance(value, dict):
                walk(value)

    walk(config["components"])
    return found


@pytest.mark.parametrize("task", TASKS)
def test_options_set_the_checkpoint_and_gpu_settings(task):
    plain = Config().from_str(init_config(task), interpolate=False)
    config = Config().from_str(init_config(task, checkpoint="/models/my base", gpu=True), interpolate=False)
    assert plain["paths"]["longformer"] is None
    assert config["paths"]["longformer"] == "/models/my base"
    encoders = _encoders(config)
    assert encoders and all(e["mixed_precision"] is True for e in encoders)
    assert all(e["max_batch_pieces"] == GPU_BATCH_PIECES for e in encoders)
    assert config["training"]["batcher"]["size"] == GPU_BATCH_PIECES
    assert config["initialize"]["before_init"] == {"@callbacks": "spacy-longformer.allow_tf32.v1"}
    # Nothing else moves.
    for block in (config, plain):
        block["paths"]["longformer"] = None
        block["training"]["batcher"]["size"] = 0
        block["initialize"]["before_init"] = None
        for encoder in _encoders(block):
            encoder["mixed_precision"] = encoder["max_batch_pieces"] = None
    assert config == plain


def test_cli_writes_refuses_to_overwrite_and_prints(tmp_path):
    runner = CliRunner()
    out = tmp_path / "ner.cfg"
    result = runner.invoke(app, ["init-config", "ner", str(out), "--checkpoint", "/models/base"])
    assert result.exit_code == 0, result.output
    assert Config().from_disk(out, interpolate=False)["paths"]["longformer"] == "/models/base"
    result = runner.invoke(app, ["init-config", "ner", str(out)])
    assert result.exit_code == 1 and "--force" in result.output
    assert runner.invoke(app, ["init-config", "ner", str(out), "--force"]).exit_code == 0
    assert out.read_text(encoding="utf8") == init_config("ner")
    result = runner.invoke(app, ["init-config", "qa", "-"])
    assert result.exit_code == 0 and result.output == init_config("qa")
    result = runner.invoke(app, ["init-config", "parser", str(tmp_path / "x.cfg")])
    assert result.exit_code == 1 and "textcat_multilabel" in result.output
