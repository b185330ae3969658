"""What the routes call to do their work: submission, study reads and plots, plot links, streams,
uploads.

A route module parses a request and answers it; the work it shares with another
route, or that is more than a few lines, lives here. Routes import only
`api.deps`, `api.schemas`, the problem, response and link helpers, and these modules,
never each other (pyproject.toml's import contracts).
"""
