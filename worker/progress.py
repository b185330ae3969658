"""The training hook that reports a job's progress and honours its cancellation."""

from __future__ import annotations

import time
from collections.abc import Mapping

from core.experiment.hooks import TrainingCancelled, TrainingHook
from core.store.stores import JobStore

# Within a long epoch, the store is asked whether to go on at most this often.
CANCEL_POLL_SECONDS = 0.25


class JobProgressHook(TrainingHook):
    """Records a job's progress after each epoch; stops it if cancelled, within about a second.

    One Redis round trip per epoch: `set_progress` records the epoch and answers
    whether training should go on (False once a cancel was asked, the job was
    deleted or finished elsewhere, or delivered again: `delivery` is this run's
    fencing token). Within an epoch too long for one call (core.engine.chunks),
    between its calls, at most every `CANCEL_POLL_SECONDS`: whether a cancel was
    asked or the job is no longer running, so a cancel lands within about a second.

    Example:
        >>> run_experiment(spec, hooks=[JobProgressHook(store, job_id)])
    """

    def __init__(self, store: JobStore, job_id: str, *, delivery: int | None = None) -> None:
        self.store = store
        self.job_id = job_id
        self.delivery = delivery
        self._polled = time.monotonic()

    def on_epoch_end(self, epoch: int, epochs: int, logs: Mapping[str, float | None]) -> None:
        go_on = self.store.set_progress(
            self.job_id, epoch=epoch, epochs=epochs, metrics=logs, delivery=self.delivery
        )
        if not go_on:
            raise TrainingCancelled(f"job {self.job_id} stopped after epoch {epoch}/{epochs}")

    def on_chunk_end(self, epoch: int, epochs: int) -> None:
        now = time.monotonic()
        if now - self._polled < CANCEL_POLL_SECONDS:
            return
        self._polled = now
        if self.store.is_cancel_requested(self.job_id):
            raise TrainingCancelled(f"job {self.job_id} stopped during epoch {epoch}/{epochs}")
