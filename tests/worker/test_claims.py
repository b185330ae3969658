"""When a worker's pool slot counts as taken by a claim (worker.claims): from the claim
until Celery has done with its message, and not a moment longer, so that the next
job is claimed as the last one ends."""

from __future__ import annotations

import json
from typing import Any

import pytest
from celery.worker import state

from core.experiment.jobs import JobStatus
from core.experiment.spec import ExperimentSpec
from core.settings import Settings
from core.store.dispatch import Claim
from core.store.stores import JobStore
from tests.conftest import wait_for
from worker import claims


class _Store:
    """What a claimer asks of the store when it sends a claim: confirm its dispatch."""

    def __init__(self) -> None:
        self.confirmed: list[tuple[str, int]] = []

    def confirm_dispatch(self, job_id: str, *, dispatch: int) -> None:
        self.confirmed.append((job_id, dispatch))


class _Request:
    """A Celery request as the worker's state and the task_received signal see it."""

    def __init__(self, id: str) -> None:
        self.id = id


@pytest.fixture
def claimer(monkeypatch: pytest.MonkeyPatch) -> claims.Claimer:
    sent: list[Claim] = []

    def send(celery: Any, *, hostname: str, claim: Claim) -> None:
        sent.append(claim)

    monkeypatch.setattr(claims, "send_to_worker", send)
    return claims.Claimer(
        _Store(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        Settings(namespace="claims-test"),
        hostname="w1@test",
        queues=["cpu"],
    )


def test_a_claim_holds_the_slot_from_its_claim_until_its_job_is_done(
    claimer: claims.Claimer,
) -> None:
    assert claimer.free()
    claimer._send(Claim(task={}, jobs=[("01JOB", 4)]))
    assert not claimer.free()  # on its way to the worker's own queue
    assert claims.in_flight() == [("01JOB", 4)]

    request = _Request("01JOB")
    claims._received(request=request)
    assert not claimer.free()  # received, a moment before Celery reserves it
    state.task_reserved(request)
    assert not claimer.free()  # reserved: training
    assert claims.in_flight() == []  # Celery's list holds it now, for the heartbeat too

    state.task_ready(request)
    # Done: the slot is free at once, not a second after the message arrived (a fast
    # job's successor waited for that second).
    assert claimer.free()
    assert claims.messages_held() == set()


def test_a_claim_not_received_yet_keeps_its_slot(claimer: claims.Claimer) -> None:
    claimer._send(Claim(task={}, jobs=[("01LOST", 1)]))
    try:
        assert claims.messages_held() == {"01LOST"}
        assert not claimer.free()
        assert claims.lost_claims(older_than=claimer.silent_seconds) == []
    finally:
        claims._in_flight.clear()


def test_a_claim_whose_message_never_arrives_is_queued_anew_and_frees_its_slot(
    isolated_store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message sent and confirmed, then lost (a Redis that restarted between the send
    and the worker's read): after a silence period the job waits on the dispatcher again
    as a new dispatch, and holds the worker's slot no longer. A message that arrived
    stays held."""
    monkeypatch.setattr(claims, "send_to_worker", lambda *_, **__: None)
    no_celery: Any = None
    claimer = claims.Claimer(
        isolated_store, no_celery, Settings(), hostname="w1@test", queues=["cpu"]
    )
    spec = ExperimentSpec.model_validate({})
    lost, arrived = (
        isolated_store.create(spec=spec, queue="cpu", owner=owner).record.id for owner in ("a", "b")
    )
    sent = {}
    try:
        for _ in range(2):
            claim = isolated_store.claim(queue="cpu", hostname="w1@test")
            assert claim is not None
            claimer._send(claim)
            claims._in_flight[claim.message_id].sent_at -= claimer.silent_seconds + 1
            sent[claim.message_id] = claim.dispatch
        claims._received(request=_Request(arrived))
        assert isolated_store.waiting(queue="cpu") == []

        claimer.give_back_lost()

        assert claims.messages_held() == {arrived}
        record = isolated_store.get(lost)
        assert record is not None and record.status is JobStatus.QUEUED
        assert record.dispatch == sent[lost] + 1  # the lost message's dispatch is void
        assert isolated_store.waiting(queue="cpu") == [lost]
        assert isolated_store.unsent_dispatches() == []
        requeued = json.loads(isolated_store.read_events(lost)[-1].data)
        assert requeued["requeued"] and "never received" in requeued["reason"]
    finally:
        claims._in_flight.clear()


def test_a_worker_busy_with_a_message_it_did_not_claim_is_not_idle(
    isolated_store: JobStore,
) -> None:
    """A worker counts as idle on the dispatcher from a claim that finds nothing until
    its next claim. Busy meanwhile with a message Celery delivered again (no claim of
    its own), it must leave the idle workers at once: a unit left to an idle worker
    that holds its graph warm would otherwise wait for it, and another owner's flood
    would overtake it."""
    no_celery: Any = None  # it claims nothing, so it sends nothing
    settings = Settings(namespace="claims-test")
    claimer = claims.Claimer(
        isolated_store, no_celery, settings, hostname="w1@test", queues=["cpu"]
    )
    idle_key = isolated_store.plans.keys.dispatcher("cpu").idle

    def idle() -> bool:
        return isolated_store.client.hexists(idle_key, "w1@test")  # type: ignore[return-value]

    claimer.start()
    redelivered = _Request("01REDELIVERED")
    try:
        wait_for(idle, timeout=10, what="the worker to find nothing and be idle")
        state.task_reserved(redelivered)
        wait_for(lambda: not idle(), timeout=10, what="the busy worker to leave the idle ones")
        state.task_ready(redelivered)
        wait_for(idle, timeout=10, what="the worker, free again, to be idle again")
    finally:
        state.task_ready(redelivered)
        claimer.halt(timeout=claims.IDLE_SECONDS + 1)
