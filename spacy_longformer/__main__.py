"""``python -m spacy_longformer ...``: the command line (see ``spacy_longformer.cli``)."""

from .cli import main

if __name__ == "__main__":
    main()
