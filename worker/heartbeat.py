"""Worker heartbeats into the job store, so /readyz can count live workers per queue
and reapers (worker.reaper) can tell a lost worker's jobs.

A daemon thread in the worker's main process (not in a pool process) records
a heartbeat for each queue the worker consumes, every `Settings.heartbeat_seconds`
(5 s), with the jobs whose messages the worker holds (started or not, each with
its dispatch), and at once when a message arrives: a worker that dies holding
a job it has not marked running yet has said so. It also tells the store of the
runs Celery stopped when the worker lost its connection to Redis, as soon as
the store answers again. It runs beside the pool, so a long job does not
silence it, and it stops with the worker (leaving the live set). A worker
killed outright simply stops beating and ages out of it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

from celery.signals import task_received, worker_ready, worker_shutdown
from celery.worker import state

from core.queue.tasks import DISPATCH_HEADER, task_job_ids
from core.settings import get_settings
from core.store.stores import JobStore
from worker import pool_state
from worker.background import log_failed_round
from worker.claims import in_flight
from worker.device import work_queues

logger = logging.getLogger(__name__)


# While waiting for its pool to be ready, the heartbeat looks this often, and past this
# long counts the worker as live all the same (a warm-up that failed). A worker that
# holds a job is live at once: a reaper must never take it for a silent one.
POOL_POLL_SECONDS = 0.05
POOL_READY_SECONDS = 60.0


class Heartbeat:
    """Records `hostname` as live on `queues` until stopped.

    With `wait_for_pool` (seconds), the worker counts as live only once its pool
    process says it is ready (worker.pool_state: the engine loaded, a graph traced),
    or once it holds a job, or after that long at most, whichever comes first: a
    client that waits for /readyz then gets its first job trained at once. The
    jobs it holds are recorded from the first beat on, for the reapers.
    """

    def __init__(
        self,
        store: JobStore,
        hostname: str,
        queues: Sequence[str],
        *,
        seconds: float = 5.0,
        wait_for_pool: float = 0.0,
    ) -> None:
        self.store = store
        self.hostname = hostname
        self.queues = tuple(queues)
        self.seconds = seconds
        self._started = time.monotonic()
        self._pool_deadline = self._started + wait_for_pool
        self._live = wait_for_pool <= 0
        self._stopped = threading.Event()
        self._soon = threading.Event()
        # (job id, note id) of runs Celery stopped on a lost connection, still to be told.
        self._interrupted: deque[tuple[str, str]] = deque()
        self._thread = threading.Thread(target=self._run, name="gradwatch-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop beating and leave the live set at once (a clean shutdown)."""
        self._stopped.set()
        self._soon.set()
        self._thread.join(timeout=self.seconds)
        for queue in self.queues:
            try:
                self.store.forget_worker(queue=queue, hostname=self.hostname)
            except Exception:  # the heartbeat ages out anyway
                logger.warning("could not remove %s from %s's live workers", self.hostname, queue)
        self.store.close()

    def beat(self) -> None:
        """Record one heartbeat on every queue, and the jobs the worker holds."""
        while self._interrupted:
            job_id, note = self._interrupted[0]
            self.store.note_interrupted(job_id, hostname=self.hostname, note=note)
            self._interrupted.popleft()
        # Jobs first: a reaper trusts the job list only when the beat that follows is fresh.
        jobs = held_jobs()
        self.store.record_worker_jobs(hostname=self.hostname, jobs=jobs)
        if not self._live and not self._pool_is_ready(holding=bool(jobs)):
            return
        for queue in self.queues:
            self.store.record_heartbeat(queue=queue, hostname=self.hostname)

    def _pool_is_ready(self, *, holding: bool) -> bool:
        ready = pool_state.read().ready
        if ready or holding or time.monotonic() >= self._pool_deadline:
            self._live = True
            waited = time.monotonic() - self._started
            why = "its pool is ready" if ready else "it holds a job" if holding else "waited"
            logger.info("live after %.2f s: %s", waited, why)
        return self._live

    @property
    def live(self) -> bool:
        """Whether the worker counts as live: its pool is ready (or waited for long enough)."""
        return self._live

    def beat_soon(self) -> None:
        """Beat now rather than at the next period (a message has arrived)."""
        self._soon.set()

    def interrupted(self, job_id: str) -> None:
        """Tell the store, as soon as it answers, that Celery stopped this worker's run of
        `job_id` on a lost connection: that delivery is not the job's doing."""
        self._interrupted.append((job_id, uuid.uuid4().hex))
        self._soon.set()

    def _run(self) -> None:
        while True:
            self._soon.clear()
            try:
                self.beat()
            except Exception as error:
                log_failed_round(logger, "heartbeat", error)
            self._soon.wait(self.seconds if self._live else POOL_POLL_SECONDS)
            if self._stopped.is_set():
                return


def held_jobs() -> list[tuple[str, int]]:
    """(job id, dispatch) of the messages this worker holds (a Celery task's id is its
    job's id, its dispatch in a header; a group's message holds each of its jobs).

    Celery adds a request as its message arrives, before a pool process has marked
    the job running, and drops it after the job is finished in the store. Before it
    arrives, a unit this worker claimed is held all the same (worker.claims).
    """
    # tuple() copies the set in one step under the GIL, while the consumer changes it.
    reserved = {
        (job_id, _dispatch(request))
        for request in tuple(state.reserved_requests)
        for job_id in task_job_ids(request.kwargs) or [request.id]
    }
    return sorted(reserved.union(in_flight()))


def _dispatch(request: Any) -> int:
    headers = getattr(request, "request_dict", None) or {}
    try:
        return int(headers.get(DISPATCH_HEADER) or 0)
    except (TypeError, ValueError):
        return 0


_current: list[Heartbeat] = []


def connect_heartbeat() -> None:
    """Beat from worker start to worker shutdown, and as each message arrives."""
    worker_ready.connect(_start, weak=False)
    worker_shutdown.connect(_stop, weak=False)
    task_received.connect(_received, weak=False)


def _received(**_: Any) -> None:
    for heartbeat in _current:
        heartbeat.beat_soon()


def note_interrupted(job_id: str) -> None:
    """Celery stopped this worker's run of `job_id` because the worker lost its connection
    to Redis (worker_cancel_long_running_tasks_on_connection_loss): say so to the store,
    once it answers, so that the delivery does not count as one that killed its worker."""
    for heartbeat in _current:
        heartbeat.interrupted(job_id)


def worker_is_live() -> bool:
    """Whether this worker's heartbeat counts it as live (its pool is ready)."""
    return any(heartbeat.live for heartbeat in _current)


def _start(sender: Any, **_: Any) -> None:
    settings = get_settings()
    queues = work_queues(sender.app, sender.hostname)
    store = JobStore.from_settings(settings)
    wait = POOL_READY_SECONDS if settings.warm_start else 0.0
    heartbeat = Heartbeat(
        store, sender.hostname, queues, seconds=settings.heartbeat_seconds, wait_for_pool=wait
    )
    heartbeat.start()
    _current.append(heartbeat)
    logger.info("heartbeat every %g s on %s", settings.heartbeat_seconds, ", ".join(queues))


def _stop(**_: Any) -> None:
    while _current:
        _current.pop().stop()
