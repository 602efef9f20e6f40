"""``python -m edi``: the same as the ``edi`` command."""

from edi.cli import main

main()
