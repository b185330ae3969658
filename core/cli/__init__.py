"""The `gradwatch` command: `run` here, `serve` the whole service, `keys` for access.

It may import any other package of `core`, each only in the command that needs it.
"""

from core.cli.main import main

__all__ = ["main"]
