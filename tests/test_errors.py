"""spacy_longformer/errors.py: every code is defined once (a class body silently keeps the last of two
equal names, so a second LF160 would replace the first message), and every code the package raises
or warns with exists there."""

import ast
import re
from pathlib import Path

import spacy_longformer
from spacy_longformer.errors import Errors, Warnings

PACKAGE = Path(spacy_longformer.__file__).parent


def test_no_code_is_defined_twice():
    tree = ast.parse((PACKAGE / "errors.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            names = [
                target.id
                for statement in node.body
                if isinstance(statement, ast.Assign)
                for target in statement.targets
                if isinstance(target, ast.Name)
            ]
            repeated = sorted({name for name in names if names.count(name) > 1})
            assert not repeated, f"{node.name} defines {repeated} more than once"


def test_every_code_used_exists():
    used: dict[str, set[str]] = {"Errors": set(), "Warnings": set()}
    for path in PACKAGE.rglob("*.py"):
        for kind, code in re.findall(r"\b(Errors|Warnings)\.(LFW?\d+)\b", path.read_text()):
            used[kind].add(code)
    assert used["Errors"]
    assert not {code for code in used["Errors"] if not hasattr(Errors, code)}
    assert not {code for code in used["Warnings"] if not hasattr(Warnings, code)}
