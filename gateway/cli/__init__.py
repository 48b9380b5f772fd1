"""The ``claimx`` command line: one Typer app; each command group in its own module."""
