"""spacy-longformer: a pure-PyTorch Longformer that loads Hugging Face checkpoints, for spaCy.

Importing the package stays light: torch is imported by ``spacy_longformer.model`` when you use it.
"""

from .qa_docs import make_qa_doc

__version__ = "0.2.0"

__all__ = ["__version__", "make_qa_doc"]
