"""``python -m brushpy``: the same as the ``brushpy`` command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="brushpy")
