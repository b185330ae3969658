"""A worker's claims on the dispatcher: the next unit as soon as its pool has a free slot.

A daemon thread in the worker's main process (beside the heartbeat and the
reaper) claims the next unit of its queues from the dispatcher (core.store.dispatch:
fair between owners, warm where it can be) whenever the pool has a slot free, and
sends the unit's message to the worker's own Celery queue (Celery's worker-direct
queue, `<hostname>.dq2`), which only this worker consumes: Celery then carries the
job as it carries any (late ack, redelivery of a killed pool's message, delivery
fencing). With nothing to claim, the thread waits for a wake token (a unit was
queued, or one left to this worker because it holds its graph warm), or a second.
Busy, it leaves the dispatcher's idle workers at once, whatever made it busy (a
message Celery delivered again needs no claim): a unit left to an idle worker that
holds its graph warm must not wait for one that is training something else.

A claimed unit counts as held from the claim on: the claim writes its jobs into the
worker's report, and each heartbeat lists them (`in_flight`) until Celery receives
the message, so a reaper re-queues them should the worker die in between. A
message that cannot be sent is given back to the dispatcher at once (or, with
Redis away, by a reaper from the outbox once a silence period has passed); one
sent that has not arrived within a silence period (lost with a Redis that
restarted) is given back then, so that it holds its pool slot no longer.

The worker claims only once its heartbeat counts it live (its pool has loaded the
engine): until then another worker, ready, takes the work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from celery.signals import task_received, worker_ready, worker_shutdown
from celery.worker import state

from core.queue.app import make_celery, send_to_worker
from core.settings import Settings, get_settings
from core.store.dispatch import Claim, warm_graph
from core.store.stores import JobStore
from worker import pool_state
from worker.background import BackgroundThread, log_failed_round
from worker.device import work_queues

logger = logging.getLogger(__name__)

# An idle worker claims again at least this often, woken or not.
IDLE_SECONDS = 1.0
# A busy worker looks this often whether its pool has a slot free again: Celery's main
# process has no signal for a job's end, and a look costs a microsecond.
BUSY_POLL_SECONDS = 0.01
# After a failed round (Redis away), the thread waits this long before the next.
RETRY_SECONDS = 1.0

# Celery tells of a message (task_received) a moment before it reserves it: a claim's
# message received this recently, and not yet seen reserved, still counts. Once seen
# reserved, Celery's own list holds it until the job is done, and only that list: a job
# that ends sooner frees its slot as it ends, not this long after it arrived.
RESERVING_SECONDS = 1.0


@dataclass
class _InFlight:
    jobs: list[tuple[str, int]]
    received_at: float | None = None
    sent_at: float = field(default_factory=time.monotonic)


# Claims sent to this worker's own queue, by message id, until Celery has reserved them.
_in_flight: dict[str, _InFlight] = {}
_in_flight_lock = threading.Lock()


def in_flight() -> list[tuple[str, int]]:
    """(job id, dispatch) of the units this worker claimed whose message it has not
    received yet: the heartbeat lists them as held."""
    with _in_flight_lock:
        return [
            job for claim in _in_flight.values() if claim.received_at is None for job in claim.jobs
        ]


def lost_claims(*, older_than: float) -> list[Claim]:
    """The claims this worker sent to itself over `older_than` seconds ago whose message
    never arrived (lost with a Redis that restarted, say): they hold no slot from now on."""
    now = time.monotonic()
    with _in_flight_lock:
        lost = [
            message_id
            for message_id, claim in _in_flight.items()
            if claim.received_at is None and now - claim.sent_at > older_than
        ]
        return [Claim(task={}, jobs=_in_flight.pop(message_id).jobs) for message_id in lost]


def messages_held() -> set[str]:
    """The ids of the messages the pool's slots are taken by: reserved by Celery, or
    claimed and on their way (sent, or received but not yet reserved)."""
    held = {request.id for request in tuple(state.reserved_requests)}
    now = time.monotonic()
    with _in_flight_lock:
        for message_id, claim in list(_in_flight.items()):
            received = claim.received_at
            if message_id in held or (received is not None and now - received > RESERVING_SECONDS):
                # Reserved: from now on Celery's list says when its job is done.
                del _in_flight[message_id]
            else:
                held.add(message_id)
    return held


class Claimer(BackgroundThread):
    """Claims units of `queues` for worker `hostname` while its pool has a free slot."""

    name = "gradwatch-claims"

    def __init__(
        self,
        store: JobStore,
        celery: Celery,
        settings: Settings,
        *,
        hostname: str,
        queues: Sequence[str],
        slots: int = 1,
        live: Callable[[], bool] = lambda: True,
    ) -> None:
        self.store = store
        self.celery = celery
        self.hostname = hostname
        self.queues = list(queues)
        self.slots = slots
        self.live = live
        self.max_running = settings.max_running_jobs
        self.silent_seconds = settings.worker_silent_seconds
        super().__init__()

    def stop(self) -> None:
        """Stop claiming; no unit waits for this worker any more."""
        self.halt(timeout=IDLE_SECONDS + 1)
        try:
            self.store.forget_idle(queues=self.queues, hostname=self.hostname)
        except Exception:  # idle entries of a worker that stopped beating are ignored
            logger.warning("could not leave the dispatcher's idle workers")
        self.store.close()
        self.celery.close()

    def free(self) -> bool:
        """Whether the pool has a slot no message holds or is on its way to."""
        return len(messages_held()) < self.slots

    def claim_next(self) -> Claim | None:
        """Claim the next unit of this worker's queues and send it its message; None when
        there is nothing for this worker (it now counts as idle)."""
        warm = [warm_graph(signature, members) for signature, members, _ in pool_state.read().warm]
        for queue in self.queues:
            claim = self.store.claim(
                queue=queue, hostname=self.hostname, warm=warm, max_running=self.max_running
            )
            if claim is not None:
                self._send(claim)
                return claim
        return None

    def _send(self, claim: Claim) -> None:
        with _in_flight_lock:
            _in_flight[claim.message_id] = _InFlight(claim.jobs)
        try:
            send_to_worker(self.celery, hostname=self.hostname, claim=claim)
        except Exception:
            with _in_flight_lock:
                _in_flight.pop(claim.message_id, None)
            logger.exception("could not send job %s to itself; it goes back", claim.message_id)
            self._give_back(claim)
            return
        for job_id, dispatch in claim.jobs:
            self.store.confirm_dispatch(job_id, dispatch=dispatch)

    def _give_back(
        self, claim: Claim, *, reason: str = "could not send itself its message"
    ) -> None:
        for job_id, dispatch in claim.jobs:
            self.store.redispatch(
                job_id,
                dispatch=dispatch,
                unconfirmed_seconds=0,
                reason=f"its worker {self.hostname} {reason}",
            )

    def give_back_lost(self) -> None:
        """Queue anew the claims whose message has not arrived within a silence period:
        each goes back to the outbox, then to the dispatcher as a new dispatch, which
        voids the message should it arrive after all. Until then it held a pool slot."""
        for claim in lost_claims(older_than=self.silent_seconds):
            logger.warning("the message of job %s never arrived; it goes back", claim.message_id)
            for job_id, dispatch in claim.jobs:
                self.store.unconfirm_dispatch(job_id, dispatch=dispatch)
            self._give_back(claim, reason="never received the message it sent itself")

    def _run(self) -> None:
        # Whether a claim may have left this worker idle on one of its queues (a claim
        # that finds nothing on a queue leaves it idle there until its next claim).
        maybe_idle = False
        while not self._stopped.is_set():
            try:
                self.give_back_lost()
                if not (self.live() and self.free()):
                    if maybe_idle:
                        # Busy, perhaps with a message it did not claim (one Celery
                        # delivered again): a unit left to it as idle, warm, would wait.
                        self.store.forget_idle(queues=self.queues, hostname=self.hostname)
                        maybe_idle = False
                    self._stopped.wait(BUSY_POLL_SECONDS)
                    continue
                maybe_idle = True
                if self.claim_next() is None:
                    self.store.wait_for_work(
                        queues=self.queues, hostname=self.hostname, seconds=IDLE_SECONDS
                    )
            except Exception as error:
                log_failed_round(logger, "claims", error)
                self._stopped.wait(RETRY_SECONDS)


def _received(request: Any = None, **_: Any) -> None:
    """The message of a claim has arrived: Celery holds it now (state.reserved_requests)."""
    if request is not None:
        with _in_flight_lock:
            claim = _in_flight.get(request.id)
            if claim is not None:
                claim.received_at = time.monotonic()


_current: list[Claimer] = []


def connect_claims(live: Callable[[], bool]) -> None:
    """Claim from worker start to worker shutdown, once `live` says the worker is live."""

    def start(sender: Any, **_: Any) -> None:
        settings = get_settings()
        claimer = Claimer(
            JobStore.from_settings(settings),
            make_celery(settings, main="gradwatch-claims"),
            settings,
            hostname=sender.hostname,
            queues=work_queues(sender.app, sender.hostname),
            slots=getattr(sender.controller, "concurrency", None) or 1,
            live=live,
        )
        claimer.start()
        _current.append(claimer)

    worker_ready.connect(start, weak=False)
    worker_shutdown.connect(_stop, weak=False)
    task_received.connect(_received, weak=False)


def _stop(**_: Any) -> None:
    while _current:
        _current.pop().stop()
