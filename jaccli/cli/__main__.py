"""``python -m jaccli.cli``: the same as the ``jaccli`` command."""

from jaccli.cli import main

main()
