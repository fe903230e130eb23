"""spacy-longformer: a pure-PyTorch Longformer that loads Hugging Face checkpoints, for spaCy.

Importing the package stays light: torch is imported by ``spacy_longformer.model`` when you use it,
``fill_mask`` imports it when called, and ``plot_attention`` (matplotlib) is loaded on first use.
"""

from typing import Any

# Bound here, at import, because the function shares its module's name: a later import of the
# module must not leave the module where the function should be.
from .fill_mask import fill_mask
from .qa_docs import make_qa_doc

__version__ = "0.2.0"

__all__ = ["__version__", "fill_mask", "make_qa_doc", "plot_attention"]


def __getattr__(name: str) -> Any:
    if name == "plot_attention":
        from .attention_maps import plot_attention

        return plot_attention
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
