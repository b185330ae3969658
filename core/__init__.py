"""Everything that is not HTTP or Celery, in sub-packages that each own one heavy dependency.

`core` never imports `api` or `worker`; the contracts in pyproject.toml say what each
sub-package may import, and the tests check them.
"""
