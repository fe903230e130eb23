"""The command line, run in-process through typer's CliRunner."""

from __future__ import annotations

from typer.testing import CliRunner

from spacy_longformer.cli import app


def test_demo_runs_and_reports(tmp_path):
    out = tmp_path / "checkpoint"
    result = CliRunner().invoke(app, ["demo", "--words", "400", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output
    for expected in ("Step 1/4", "Step 4/4", "attention_window", "last_hidden_state shape", "are finite"):
        assert expected in text, f"{expected!r} missing from demo output:\n{text}"
    assert "NaN" not in text
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}


def test_demo_cleans_up_without_out(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    result = CliRunner().invoke(app, ["demo", "--words", "50"])
    assert result.exit_code == 0, result.output
    assert list(tmp_path.iterdir()) == []


def test_demo_rejects_bad_words():
    result = CliRunner().invoke(app, ["demo", "--words", "0"])
    assert result.exit_code != 0


def test_help_lists_demo():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output
