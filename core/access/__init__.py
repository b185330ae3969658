"""Who may see what: API keys kept as hashes, and signed links that share one plot.

Standard library only (the `gradwatch keys` command is core.cli.keys).
"""
