"""spacy-longformer: a pure-PyTorch Longformer that loads Hugging Face checkpoints, for spaCy.

Importing the package stays light: torch is imported by ``spacy_longformer.model`` when you use it.
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "make_qa_doc"]


def __getattr__(name: str) -> Any:
    """``make_qa_doc`` is imported on first use, with the pipeline floor it belongs to."""
    if name == "make_qa_doc":
        from .pipeline.qa_docs import make_qa_doc

        return make_qa_doc
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
