"""Every name in setup.cfg's entry points resolves through spaCy's registries, without imports."""

import configparser
from pathlib import Path

import pytest
from spacy.language import Language
from spacy.util import registry

SETUP_CFG = Path(__file__).parent.parent / "setup.cfg"


def _entry_points():
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    for group, lines in parser["options.entry_points"].items():
        for line in filter(None, (x.strip() for x in lines.splitlines())):
            name, target = (part.strip() for part in line.split("="))
            yield group, name, target


ENTRY_POINTS = list(_entry_points())
# spaCy reads `spacy_factories` entry points through this registry (its own factories live apart).
REGISTRIES = {
    "spacy_factories": registry._entry_point_factories,
    "spacy_architectures": registry.architectures,
    "spacy_misc": registry.misc,
    "spacy_scorers": registry.scorers,
    "spacy_tokenizers": registry.tokenizers,
    "spacy_callbacks": registry.callbacks,
}


def test_entry_points_are_declared():
    groups = {group for group, _, _ in ENTRY_POINTS}
    assert {"spacy_factories", "spacy_architectures", "spacy_misc"} <= groups


@pytest.mark.parametrize("group,name,target", ENTRY_POINTS, ids=[e[1] for e in ENTRY_POINTS])
def test_entry_point_resolves(group, name, target):
    """The installed entry point loads the function setup.cfg names, under a versioned name."""
    func = REGISTRIES[group].get_entry_point(name)
    module, attr = target.split(":")
    assert func.__module__ == module and func.__name__ == attr
    if group == "spacy_factories":
        assert name.startswith("longformer_") and Language.has_factory(name)
    else:
        assert REGISTRIES[group].get(name) is func
        assert name.startswith("spacy-longformer.") and name.rsplit(".", 1)[-1].startswith("v")
