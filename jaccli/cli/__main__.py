"""``python -m jaccli.cli``: the same as the ``jaccli`` command."""

from . import main

main()
