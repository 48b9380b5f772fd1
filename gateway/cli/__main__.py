"""``python -m gateway.cli``: the same as the ``claimx`` command."""

from gateway.cli.main import main

main()
