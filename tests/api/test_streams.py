"""Event streams at scale over real HTTP: one Redis reader per process, caps, heartbeats,
a clean end when Redis goes away, and one stream following many records.

Against a redis-server and an API server of this module's own (API keys, small caps, a
fast heartbeat), so that Redis' client count is the API's alone and Redis can be
stopped and started again.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis

from core.experiment.spec import ExperimentSpec
from core.settings import Settings
from core.store.stores import JobStore
from tests.api.conftest import UNTRAINED
from tests.api.test_events import Event, parse_events, run_job, sse_events
from tests.conftest import KeysServer, RedisServer, keys_env, serve_api, wait_for

PER_OWNER = 3
PER_PROCESS = 5
RETRY_AFTER = 7


@dataclass
class Service:
    redis: RedisServer
    api: KeysServer
    store: JobStore

    def clients(self) -> int:
        """Connections Redis holds, this test's own one left out."""
        client = redis.Redis.from_url(self.redis.url)
        try:
            return len(client.client_list()) - 1
        finally:
            client.close()


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, service_env: dict[str, str], namespace: str
) -> Iterator[Service]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    env, keys = keys_env(
        {**service_env, "REDIS_URL": server.url},
        max_streams_per_owner=PER_OWNER,
        max_streams_per_process=PER_PROCESS,
        stream_retry_after_seconds=RETRY_AFTER,
        stream_heartbeat_seconds=1,
    )
    store = JobStore.from_settings(Settings(namespace=namespace, redis_url=server.url))
    try:
        with serve_api(env) as api:
            yield Service(
                server,
                KeysServer(api.url, api.process, keys, env["GRADWATCH_SHARE_SECRET"]),
                store,
            )
    finally:
        store.close()
        server.stop()


def new_job(store: JobStore, owner: str) -> str:
    spec = ExperimentSpec.model_validate(UNTRAINED)
    return store.create(spec=spec, queue="nowhere", owner=owner).record.id


@contextlib.contextmanager
def open_streams(service: Service, owner: str, count: int) -> Iterator[list[Iterator[str]]]:
    """`count` event streams of `owner`'s new jobs, each open with its first event read:
    the rest of each one's lines."""
    with contextlib.ExitStack() as stack:
        http = stack.enter_context(service.api.client_of(owner))
        streams = []
        for _ in range(count):
            url = f"/v1/experiments/{new_job(service.store, owner)}/events"
            response = stack.enter_context(http.stream("GET", url))
            assert response.status_code == 200
            lines = response.iter_lines()  # kept: dropping it would close the response
            first = list(itertools.takewhile(bool, lines))  # up to the blank line after it
            assert first[0] == "event: state"  # the queued state: it is being served
            streams.append(lines)
        yield streams


def test_streams_share_one_redis_connection(service: Service) -> None:
    with open_streams(service, "alice", 1):
        one = service.clients()
        with open_streams(service, "bob", PER_OWNER - 1), open_streams(service, "alice", 1):
            assert service.clients() == one


def test_streams_past_the_caps_are_429_then_503_with_retry_after(service: Service) -> None:
    with open_streams(service, "alice", PER_OWNER), service.api.client_of("alice2") as alice:
        job_id = new_job(service.store, "alice")
        refused = alice.get(f"/v1/experiments/{job_id}/events")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == str(RETRY_AFTER)
        assert refused.json()["type"].endswith("too-many-streams")

        job_id = new_job(service.store, "bob")
        with (
            open_streams(service, "bob", PER_PROCESS - PER_OWNER),
            service.api.client_of("bob") as bob,
        ):
            full = bob.get(f"/v1/experiments/{job_id}/events")
        assert full.status_code == 503 and full.headers["retry-after"] == str(RETRY_AFTER)

    with open_streams(service, "alice", PER_OWNER):  # closed streams are counted out
        pass


def test_a_silent_stream_sends_heartbeats(service: Service) -> None:
    with open_streams(service, "bob", 1) as (lines,):
        assert next(line for line in lines if line.startswith(":"))


def test_one_stream_follows_many_records_each_event_named(service: Service) -> None:
    jobs = [new_job(service.store, "alice") for _ in range(3)]
    events: list[Event] = []
    drivers = [threading.Thread(target=run_job, args=(service.store, job, 2)) for job in jobs]
    with service.api.client_of("alice") as alice:
        url = "/v1/events"
        with alice.stream("GET", url, params={"ids": ",".join(jobs)}) as response:
            assert response.status_code == 200
            for event in sse_events(response):
                events.append(event)
                if len(events) == len(jobs):  # each queued state seen: run them
                    for driver in drivers:
                        driver.start()
        for driver in drivers:
            driver.join()

        for job in jobs:
            mine = [event for event in events if event.data["id"] == job]
            assert [event.type for event in mine] == [
                "state",
                "state",
                "progress",
                "progress",
                "state",
            ]
            assert mine[-1].data["data"]["status"] == "succeeded"
            assert all(event.id and event.id.startswith(f"{job}/") for event in mine)

        again = alice.get(url, params={"ids": ",".join(jobs)}, headers={"Last-Event-ID": "x"})
        assert again.status_code == 204


def test_many_ids_are_bounded_and_checked_each(service: Service) -> None:
    mine = new_job(service.store, "alice")
    theirs = new_job(service.store, "bob")
    with service.api.client_of("alice") as alice:
        other = alice.get("/v1/events", params={"ids": f"{mine},{theirs}"})
        assert other.status_code == 404 and theirs in other.json()["detail"]
        many = ",".join(new_job(service.store, "alice") for _ in range(51))
        too_many = alice.get("/v1/events", params={"ids": many})
        assert too_many.status_code == 422
        assert [error["field"] for error in too_many.json()["errors"]] == ["ids"]


def test_a_stream_ends_with_an_event_when_redis_goes_away(service: Service) -> None:
    with open_streams(service, "bob", 1) as (lines,):
        service.redis.stop()
        try:
            rest = list(parse_events(lines))  # a clean end: no error mid-stream
        finally:
            service.redis.start()
    assert [event.type for event in rest] == ["interrupted"]
    assert "reconnect" in rest[0].data["detail"]

    def serving() -> bool:
        with contextlib.suppress(AssertionError, httpx.HTTPError), open_streams(service, "bob", 1):
            return True
        return False

    wait_for(serving, timeout=30.0, what="streams served again after Redis came back")
