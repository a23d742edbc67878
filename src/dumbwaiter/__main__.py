"""``python -m dumbwaiter`` is the ``dumbwaiter`` command."""

from .cli import main

main()
