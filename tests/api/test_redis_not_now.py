"""Redis up but answering "not now": LOADING, BUSY, MISCONF, READONLY, MASTERDOWN, OOM.

Each is an error reply, not a lost connection, and each passes without anyone
changing the request; the API answers them 503 with Retry-After, as it does an
outage, and never 500. Against a redis-server this module starts itself (found
as test_redis_outage finds one), with its own API server: each test puts that
Redis into one state the way it happens in production (a restart replaying its
data, a long script, a failed snapshot, a failover, full memory), checks with a
plain redis-py client that Redis now refuses, asks the API, and lets Redis recover.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.store.errors import is_store_unavailable
from tests.api.conftest import UNTRAINED
from tests.conftest import (
    ROOT,
    SERVER_START_SECONDS,
    RedisServer,
    free_port,
    stop_process,
    wait_for,
)

# Loading sleeps this long per key (redis-server's own test knob), so a restart replays
# its snapshot for minutes unless the test lets it finish: long enough to ask the API.
LOAD_DELAY_US = 5000
FILLER_KEYS = 10_000


@dataclass
class OwnRedis(RedisServer):
    """The module's redis-server, snapshotting to dump.rdb in its folder, with clients
    that report each refusal at once."""

    clients: list[redis.Redis] = field(default_factory=list)

    def client(self) -> redis.Redis:
        """A client that reports each refusal at once (no retries of its own)."""
        client = redis.Redis(
            port=self.port, socket_timeout=10, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        self.clients.append(client)
        return client

    def shut_down(self, *, nosave: bool = True) -> None:
        super().shut_down(nosave=nosave)
        for client in self.clients:
            client.close()
        self.clients.clear()


@pytest.fixture(scope="module")
def own_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnRedis]:
    server = OwnRedis(
        tmp_path_factory.mktemp("redis-not-now"), options=("--dbfilename", "dump.rdb")
    )
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.shut_down()


@pytest.fixture(scope="module")
def api(own_redis: OwnRedis, namespace: str) -> Iterator[httpx.Client]:
    """The API on `own_redis`, in open mode."""
    env = {
        **os.environ,
        "REDIS_URL": f"redis://127.0.0.1:{own_redis.port}/0",
        "GRADWATCH_NAMESPACE": f"{namespace}-not-now",
    }
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port),
         "--no-access-log", "--log-level", "error"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)

    def healthy() -> bool:
        try:
            return http.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout=SERVER_START_SECONDS, what="the API server")
        yield http
    finally:
        http.close()
        stop_process(process)


@pytest.fixture(scope="module")
def job_id(api: httpx.Client) -> str:
    """A job stored before Redis turns unavailable (queued on a queue nobody consumes)."""
    response = api.post("/v1/experiments", json=UNTRAINED)
    assert response.status_code == 202, response.text
    job: str = response.json()["id"]
    return job


# ------------------------------------------------------------------- the states


def refused(probe: Callable[[], Any], code: str) -> bool:
    """True once `probe` fails with the error reply `code`, which counts as unavailable."""
    try:
        probe()
    except redis.RedisError as error:
        assert is_store_unavailable(error), repr(error)  # what redis-py raises counts too
        return code in f"{getattr(error, 'status_code', '')} {error}"
    return False


@contextlib.contextmanager
def loading(server: OwnRedis) -> Iterator[None]:
    """A restart replaying its snapshot: LOADING to every command until it is done."""
    client = server.client()
    pipeline = client.pipeline(transaction=False)
    for index in range(FILLER_KEYS):
        pipeline.set(f"filler:{index}", b"x" * 1024)
    pipeline.execute()
    client.save()
    server.shut_down()
    # Small reads between events, so the loading server answers within milliseconds.
    server.start(
        "--key-load-delay", str(LOAD_DELAY_US), "--rdbcompression", "no",
        "--loading-process-events-interval-bytes", "1024",
    )  # fmt: skip
    client = server.client()
    wait_for(lambda: refused(client.ping, "LOADING"), timeout=10, what="LOADING")
    yield
    client.config_set("key-load-delay", 0)  # CONFIG is served while loading
    wait_for(lambda: not refused(client.ping, "LOADING"), timeout=60, what="the load to end")
    (server.folder / "dump.rdb").unlink()  # where the snapshot of another state would go


@contextlib.contextmanager
def busy(server: OwnRedis) -> Iterator[None]:
    """A script past the busy threshold: BUSY to every command but SCRIPT KILL."""
    client = server.client()
    client.config_set("lua-time-limit", 50)  # busy-reply-threshold since Redis 7
    looping = server.client()
    errors: list[Exception] = []

    def loop() -> None:
        try:
            looping.eval("while true do end", 0)
        except redis.ResponseError as error:  # killed
            errors.append(error)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    wait_for(lambda: refused(client.ping, "BUSY"), timeout=10, what="BUSY")
    yield
    client.script_kill()
    thread.join(timeout=10)
    assert errors and not thread.is_alive()


@contextlib.contextmanager
def misconf(server: OwnRedis) -> Iterator[None]:
    """A snapshot that failed (here: a folder where the file goes): MISCONF to writes."""
    client = server.client()
    target = server.folder / "dump.rdb"
    target.mkdir()
    client.config_set("save", "3600 1")
    client.bgsave()
    wait_for(lambda: refused(lambda: client.set("probe", 1), "MISCONF"), timeout=10, what="MISCONF")
    yield
    client.config_set("save", "")
    target.rmdir()


@contextlib.contextmanager
def replica(server: OwnRedis, *, stale_reads: bool) -> Iterator[None]:
    """A replica of a master it cannot reach, as after a failover: READONLY to writes,
    and MASTERDOWN to reads too when it may not serve stale data."""
    client = server.client()
    client.replicaof("127.0.0.1", free_port())  # nothing listens there
    client.config_set("replica-serve-stale-data", "yes" if stale_reads else "no")
    if stale_reads:
        probe, code = (lambda: client.set("probe", 1)), "READONLY"
    else:
        probe, code = (lambda: client.get("probe")), "MASTERDOWN"
    wait_for(lambda: refused(probe, code), timeout=10, what=code)
    yield
    client.config_set("replica-serve-stale-data", "yes")
    client.replicaof("NO", "ONE")


@contextlib.contextmanager
def out_of_memory(server: OwnRedis) -> Iterator[None]:
    """Used memory past maxmemory with no eviction: OOM to writes that add data."""
    client = server.client()
    client.config_set("maxmemory", 1)
    wait_for(lambda: refused(lambda: client.set("probe", 1), "OOM"), timeout=10, what="OOM")
    yield
    client.config_set("maxmemory", 0)


STATES: dict[str, tuple[Callable[[OwnRedis], contextlib.AbstractContextManager[None]], bool]] = {
    # name: (how to get there, whether reads are refused too)
    "LOADING": (loading, True),
    "BUSY": (busy, True),
    "MASTERDOWN": (lambda server: replica(server, stale_reads=False), True),
    "READONLY": (lambda server: replica(server, stale_reads=True), False),
    "MISCONF": (misconf, False),
    "OOM": (out_of_memory, False),
}


# ----------------------------------------------------------------------- tests


def requests(job_id: str) -> dict[str, Callable[[httpx.Client], httpx.Response]]:
    return {
        "post": lambda http: http.post("/v1/experiments", json=UNTRAINED),
        "record (hot read)": lambda http: http.get(f"/v1/experiments/{job_id}"),
        "record (route)": lambda http: http.get(f"/v1/experiments/{job_id}?via=route"),
        "listing": lambda http: http.get("/v1/experiments"),
        "result": lambda http: http.get(f"/v1/experiments/{job_id}/result"),
        "metrics": lambda http: http.get("/metrics"),
        "readyz": lambda http: http.get("/readyz"),
    }


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    if response.request.url.path != "/readyz":  # a probe's own document
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"] == "urn:gradwatch:problem:store-unavailable"


@pytest.mark.parametrize("state", list(STATES))
def test_redis_answering_not_now_is_a_503_never_a_500(
    state: str, own_redis: OwnRedis, api: httpx.Client, job_id: str
) -> None:
    enter, reads_refused = STATES[state]
    asked = requests(job_id)

    with enter(own_redis):
        answers = {name: request(api) for name, request in asked.items()}

    for name, response in answers.items():
        assert response.status_code != 500, f"{name}: {response.text}"
        if response.status_code == 503:
            assert_unavailable(response)
    assert_unavailable(answers["post"])
    if reads_refused:
        for name in ("record (hot read)", "record (route)", "listing", "readyz"):
            assert_unavailable(answers[name])
    else:  # the data is there to read
        assert answers["record (hot read)"].status_code == 200
        assert answers["record (route)"].status_code == 200
    # And by itself, once Redis serves again.
    wait_for(
        lambda: api.get(f"/v1/experiments/{job_id}?via=route").status_code == 200,
        timeout=10,
        what="the API to answer again",
    )
    assert api.post("/v1/experiments", json=UNTRAINED).status_code == 202
