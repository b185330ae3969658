"""What the worker's background threads (worker.heartbeat, worker.reaper) do when a round
fails: log it and go on, so that a Redis outage never ends one for good. A store that
cannot serve for now is a warning; anything else is logged with its traceback.
"""

from __future__ import annotations

import logging

from core.store.errors import is_store_unavailable


def log_failed_round(logger: logging.Logger, thread: str, error: Exception) -> None:
    """Log that a round of `thread` failed with `error`; the thread tries again."""
    if is_store_unavailable(error):
        logger.warning("%s: the job store cannot serve (%s); retrying", thread, error)
    else:
        logger.exception("%s round failed; retrying", thread)
