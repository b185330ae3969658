"""Server-Sent Events over real HTTP, driven through the store: order, end, resume."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from core.experiment.jobs import Summary
from core.experiment.spec import ExperimentSpec
from core.store.stores import JobStore
from tests.api.conftest import UNTRAINED, WORKER


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]
    id: str | None


def sse_events(response: httpx.Response) -> Iterator[Event]:
    """Parse a text/event-stream response into events (comments skipped)."""
    return parse_events(response.iter_lines())


def parse_events(lines: Iterator[str]) -> Iterator[Event]:
    """Parse the lines of a text/event-stream into events (comments skipped)."""
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                yield Event(
                    fields.get("event", "message"), json.loads(fields["data"]), fields.get("id")
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


def run_job(store: JobStore, job_id: str, epochs: int) -> None:
    """What a worker would write: running, one progress per epoch, succeeded."""
    store.mark_running(job_id, worker=WORKER, max_deliveries=3)
    for epoch in range(1, epochs + 1):
        store.set_progress(job_id, epoch=epoch, epochs=epochs, metrics={"loss": 1.0 / epoch})
    store.mark_succeeded(
        job_id, summary=Summary(loss=0.1, accuracy=0.9), result_json="{}", plots={}
    )


def new_job(store: JobStore) -> str:
    return store.create(spec=ExperimentSpec.model_validate(UNTRAINED), queue="nowhere").record.id


def stream(client: httpx.Client, job_id: str, **headers: str) -> list[Event]:
    with client.stream("GET", f"/v1/experiments/{job_id}/events", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(sse_events(response))


def test_a_live_job_streams_its_epochs_in_order_then_ends(
    client: httpx.Client, store: JobStore
) -> None:
    job_id = new_job(store)
    events: list[Event] = []
    driver = threading.Thread(target=run_job, args=(store, job_id, 4))
    url = f"/v1/experiments/{job_id}/events"
    with client.stream("GET", url) as response:
        for event in sse_events(response):
            events.append(event)
            if len(events) == 1:  # subscribed: now let the "worker" run
                driver.start()
    driver.join()

    assert [event.type for event in events] == ["state", "state", *["progress"] * 4, "state"]
    assert [event.data["status"] for event in events if event.type == "state"] == [
        "queued",
        "running",
        "succeeded",
    ]
    assert [event.data["epoch"] for event in events if event.type == "progress"] == [1, 2, 3, 4]
    assert events[-1].data["summary"]["accuracy"] == 0.9
    ids = [event.id for event in events]
    assert all(ids) and len(set(ids)) == len(ids)


def test_resume_with_last_event_id_continues_after_it(
    client: httpx.Client, store: JobStore
) -> None:
    job_id = new_job(store)
    run_job(store, job_id, 3)
    everything = stream(client, job_id)

    resumed = stream(client, job_id, **{"Last-Event-ID": str(everything[2].id)})

    assert resumed == everything[3:]


def test_resume_after_the_end_is_204_so_eventsource_stops(
    client: httpx.Client, store: JobStore
) -> None:
    job_id = new_job(store)
    run_job(store, job_id, 1)
    last = stream(client, job_id)[-1]

    response = client.get(
        f"/v1/experiments/{job_id}/events", headers={"Last-Event-ID": str(last.id)}
    )
    assert response.status_code == 204
