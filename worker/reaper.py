"""The reaper: every worker re-queues, or fails, the jobs of workers that were lost, and
re-queues the jobs a worker claimed but never confirmed it sent.

A daemon thread in each worker's main process looks over the running jobs
every `Settings.reap_interval_seconds` (10 s). A job is lost when the worker
its record names has sent no heartbeat for `worker_silent_seconds` (30 s: a
worker SIGKILLed, out of memory, its machine gone), or still beats but no
longer lists the job (its pool process died, or the task was dropped while
Redis was away). A queued job is lost when a worker that went silent held its
message, at the job's current dispatch, in its last heartbeat: it died after
taking the message and before marking the job running. Each lost job is
claimed in one atomic script, so when many workers reap at once exactly one
acts: it goes back to `queued` as a new dispatch, first of its owner's on its
queue's dispatcher (core.store.dispatch), where the next free worker claims it;
or, once it has been delivered `max_deliveries` times, it fails with the
reason (a job that kills its worker every time). No separate process is
needed: `gradwatch serve` and every deployment that runs a worker reap.

Every claim of a worker on the dispatcher is written to the store's outbox
before its message is sent, and confirmed after. One left unconfirmed for a
silence period (the worker could not reach the queue, or its claiming thread
died in between) is queued anew by any reaper: the new dispatch number voids
the first message, had it gone out after all.

Right after Redis comes back every heartbeat looks old, so a reaper acts only
once it has reached Redis for a full silence period itself.

Example:
    >>> reaper = Reaper(JobStore.from_settings(settings), settings)
    >>> reaper.reap()   # one round; the thread calls it every reap_interval_seconds
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from core.experiment.spec import Device
from core.settings import Settings, get_settings
from core.store.records import JobRecord
from core.store.stores import JobStore
from core.store.workers import Requeue
from worker.background import BackgroundThread, log_failed_round

logger = logging.getLogger(__name__)


class Reaper(BackgroundThread):
    """Re-queues or fails the jobs of lost workers, one round per `reap()`."""

    name = "gradwatch-reaper"

    def __init__(self, store: JobStore, settings: Settings) -> None:
        self.store = store
        self.silent_seconds = settings.worker_silent_seconds
        self.interval = settings.reap_interval_seconds
        self.max_deliveries = settings.max_deliveries
        self.queues = [settings.queue_for(device) for device in Device]
        super().__init__()

    def stop(self) -> None:
        self.halt(timeout=self.interval)
        self.store.close()

    def reap(self) -> list[Requeue]:
        """One round: claim every lost job (re-queued, failed or cancelled); what was done."""
        done = [self._claim(record) for record in self.store.running_jobs()]
        done += self._held_by_lost_workers()
        for job_id, dispatch in self.store.unsent_dispatches(older_than=self.silent_seconds):
            done.append(
                self.store.redispatch(
                    job_id, dispatch=dispatch, unconfirmed_seconds=self.silent_seconds
                )
            )
        acted = [outcome for outcome in done if outcome.action != "skip"]
        for outcome in acted:
            self._report(outcome)
        return acted

    def _claim(self, record: JobRecord) -> Requeue:
        return self.store.requeue_lost(
            record.id,
            queue=record.queue,
            hostname=str((record.worker or {}).get("hostname", "")),
            delivery=record.deliveries,
            silent_seconds=self.silent_seconds,
            max_deliveries=self.max_deliveries,
        )

    def _held_by_lost_workers(self) -> list[Requeue]:
        """Claim the queued jobs whose messages lost workers held: they died between
        taking a message and marking its job running (the message itself waits out
        Celery's visibility timeout, an hour and more)."""
        done = []
        for queue in self.queues:
            silent = self.silent_seconds
            for hostname, held in self.store.lost_workers(queue=queue, silent_seconds=silent):
                for job_id, dispatch in held:
                    done.append(
                        self.store.requeue_held(
                            job_id,
                            queue=queue,
                            hostname=hostname,
                            dispatch=dispatch,
                            silent_seconds=silent,
                        )
                    )
                self.store.forget_report(queue=queue, hostname=hostname, silent_seconds=silent)
        return done

    @staticmethod
    def _report(outcome: Requeue) -> None:
        logger.warning(
            "job %s %s%s: %s",
            outcome.job_id,
            outcome.action,
            f" (dispatch {outcome.dispatch})" if outcome.action == "requeued" else "",
            outcome.reason or "a cancel was asked",
        )

    def _run(self) -> None:
        reachable_since: float | None = None
        while not self._stopped.wait(self.interval):
            try:
                if reachable_since is None:
                    self.store.ping()
                    reachable_since = time.monotonic()
                if time.monotonic() - reachable_since >= self.silent_seconds:
                    self.reap()
            except Exception as error:
                # Redis away (or loading, busy...): try again, and wait a silence period
                # once it is back, when every heartbeat looks old.
                log_failed_round(logger, "reaper", error)
                reachable_since = None


_current: list[Reaper] = []


def connect_reaper() -> None:
    """Reap from worker start to worker shutdown."""
    worker_ready.connect(_start, weak=False)
    worker_shutdown.connect(_stop, weak=False)


def _start(**_: Any) -> None:
    settings = get_settings()
    reaper = Reaper(JobStore.from_settings(settings), settings)
    reaper.start()
    _current.append(reaper)
    logger.info(
        "reaping every %g s: jobs of workers silent for %g s",
        settings.reap_interval_seconds,
        settings.worker_silent_seconds,
    )


def _stop(**_: Any) -> None:
    while _current:
        _current.pop().stop()
