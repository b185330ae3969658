"""The worker's background threads (worker.heartbeat, worker.claims, worker.reaper): a
daemon thread beside the pool, and what one does when a round fails: log it and go on,
so that a Redis outage never ends one for good. A store that cannot serve for now is a
warning; anything else is logged with its traceback.
"""

from __future__ import annotations

import logging
import threading

from core.store.errors import is_store_unavailable


def log_failed_round(logger: logging.Logger, thread: str, error: Exception) -> None:
    """Log that a round of `thread` failed with `error`; the thread tries again."""
    if is_store_unavailable(error):
        logger.warning("%s: the job store cannot serve (%s); retrying", thread, error)
    else:
        logger.exception("%s round failed; retrying", thread)


class BackgroundThread:
    """A daemon thread of the worker's main process running `_run` until `halt`.

    `_run` loops until `self._stopped` is set, waiting on it between rounds.
    """

    name = "gradwatch-background"

    def __init__(self) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def halt(self, *, timeout: float) -> None:
        """Ask the thread to stop, and wait up to `timeout` seconds for it."""
        self._stopped.set()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        raise NotImplementedError
