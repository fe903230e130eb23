"""What a plain install depends on: declared floors equal the pins CI tests them at, and the code
keeps to what the oldest spaCy in range can read."""

import configparser
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _install_requires() -> list[Requirement]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf8")
    lines = config["options"]["install_requires"].strip().splitlines()
    return [Requirement(line.strip()) for line in lines if line.strip()]


def _lowest_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / "lowest-constraints.txt").read_text(encoding="utf8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _floor(requirement: Requirement) -> str | None:
    floors = [spec.version for spec in requirement.specifier if spec.operator == ">="]
    return floors[0] if floors else None


def test_every_requirement_has_a_floor_that_ci_installs():
    pins = _lowest_pins()
    requirements = _install_requires()
    for requirement in requirements:
        floor = _floor(requirement)
        assert floor is not None, (
            f"{requirement} has no floor: give it one, tested in .ci/lowest-constraints.txt"
        )
        pinned = pins.get(requirement.name.lower())
        assert pinned is not None, f"{requirement.name} is not pinned in .ci/lowest-constraints.txt"
        assert Version(pinned) == Version(floor), (
            f"{requirement.name}: setup.cfg's floor is {floor} but CI tests {pinned}; make them the same"
        )
    assert set(pins) == {r.name.lower() for r in requirements}, (
        "lowest-constraints.txt pins something not required"
    )


def test_registered_modules_keep_their_annotations_evaluated():
    """spaCy 3.7 validates registered functions with pydantic v1, which fails on string annotations."""
    registering = re.compile(r"@(registry\.\w+|Language\.factory)\(")
    for path in (ROOT / "spacy_longformer").rglob("*.py"):
        text = path.read_text(encoding="utf8")
        if registering.search(text):
            assert "from __future__ import annotations" not in text, (
                f"{path.relative_to(ROOT)} registers functions for spaCy's config: drop "
                "`from __future__ import annotations` (spaCy 3.7 can't resolve postponed annotations)"
            )


def test_ci_runs_the_readme_demo_line_word_for_word():
    readme = (ROOT / "README.md").read_text(encoding="utf8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf8")
    demo = re.search(r"<!-- demo-command -->\n```bash\n(.+)\n```", readme)
    assert demo, "README.md lost its <!-- demo-command --> block"
    assert f"demo_command='{demo.group(1)}'" in ci, "`.ci/run` must run the README's demo line as written"
