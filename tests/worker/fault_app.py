"""The worker's Celery app with faults a test switches on and off while it runs (tests only).

`celery -A tests.worker.fault_app worker ...` runs `worker.celery_app`'s app with the
job store's `mark_running` wrapped, in every pool process, by what the folder named
by GRADWATCH_TEST_FAULTS holds when a delivery gets there:

    hold      while it exists, the delivery waits before marking its job running
              (as a fresh pool process once did while it imported TensorFlow)
    fail-*    each one fails one call, and is removed: with a Redis connection error,
              or with the error reply the file names (LOADING: a Redis reading its
              append-only file after a restart)

Without the variable, or with an empty folder, the worker is the production one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import redis

from core.store.stores import JobStore
from worker.celery_app import app

FAULTS_ENV = "GRADWATCH_TEST_FAULTS"

__all__ = ["FAULTS_ENV", "app"]

_mark_running = JobStore.mark_running
_FAULTS: dict[str, type[redis.RedisError]] = {"LOADING": redis.BusyLoadingError}


def _faulty_mark_running(self: JobStore, job_id: str, /, **kwargs: Any) -> Any:
    folder = Path(os.environ.get(FAULTS_ENV, ""))
    if folder.name:
        while (folder / "hold").exists():
            time.sleep(0.05)
        for fault in sorted(folder.glob("fail-*")):
            try:
                reply = fault.read_text().strip()
                fault.unlink()
            except FileNotFoundError:  # another pool process took this one
                continue
            error = _FAULTS.get(reply, redis.ConnectionError)
            raise error(f"injected by the test ({fault.name})")
    return _mark_running(self, job_id, **kwargs)


JobStore.mark_running = _faulty_mark_running  # type: ignore[method-assign]
