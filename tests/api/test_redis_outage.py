"""Redis lost and back: the API answers 503 meanwhile, and nothing accepted is lost.

Against a redis-server this module starts itself, persisting an append-only file
(fsync on every write) in a temporary folder, with its own API server and one
prefork worker (fast reaping: a job dropped in the outage runs again within
seconds). The test stops Redis the way an operator or a crash would, restarts it
from the same folder, and checks that the API and the worker carry on by
themselves and every job accepted before the outage succeeds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from core.store.multiplex import COMMAND_TIMEOUT
from tests.conftest import (
    MEDIUM_SPEC,
    ROOT,
    WORKER_START_SECONDS,
    RedisServer,
    free_port,
    stop_process,
    wait_for,
)

JOB_SECONDS = 180.0
FAST_REAPING = {
    "GRADWATCH_HEARTBEAT_SECONDS": "0.5",
    "GRADWATCH_WORKER_SILENT_SECONDS": "3",
    "GRADWATCH_REAP_INTERVAL_SECONDS": "0.5",
}
# A request while Redis is down must be answered within this (no hang, no retry loop).
DOWN_ANSWER_SECONDS = 2.0


@dataclass
class Service:
    redis: RedisServer
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    http: httpx.Client


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, namespace: str) -> Iterator[Service]:
    """Redis (append-only), the API and a prefork worker, all on a namespace of their own."""
    durable = ("--appendonly", "yes", "--appendfsync", "always")
    server = RedisServer(tmp_path_factory.mktemp("redis"), options=durable)
    server.start()
    env = {
        **os.environ,
        **FAST_REAPING,
        "REDIS_URL": server.url,
        "GRADWATCH_NAMESPACE": f"{namespace}-outage",
    }
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--device", "cpu",
         "--concurrency", "1", "-n", "outage@test", "--loglevel", "WARNING",
         "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0)
    try:
        wait_for(lambda: ready(http), timeout=WORKER_START_SECONDS, what="the API and the worker")
        yield Service(server, api, worker, http)
    finally:
        http.close()
        stop_process(api)
        stop_process(worker, grace=30.0)
        if server.process is not None and server.process.poll() is None:
            server.signal(signal.SIGCONT)
            server.shut_down()


def ready(http: httpx.Client) -> bool:
    try:
        response = http.get("/readyz")
    except httpx.TransportError:
        return False
    return response.status_code == 200 and any(response.json()["workers"].values())


def submit(http: httpx.Client, spec: dict[str, Any]) -> str:
    response = http.post("/v1/experiments", json=spec)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["id"]
    return job_id


def job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/experiments/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def timed(request: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = request()
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0


def test_a_paused_redis_is_answered_503_within_the_command_timeout(service: Service) -> None:
    job_id = submit(service.http, {"seed": 3, "device": "gpu", "training": {"epochs": 2}})
    service.redis.signal(signal.SIGSTOP)  # holds connections, answers nothing
    try:
        response, seconds = timed(lambda: service.http.get(f"/v1/experiments/{job_id}"))
    finally:
        service.redis.signal(signal.SIGCONT)

    assert_unavailable(response)
    assert seconds < COMMAND_TIMEOUT + 3
    wait_for(
        lambda: service.http.get(f"/v1/experiments/{job_id}").status_code == 200,
        timeout=10,
        what="the API to answer again",
    )


def test_a_redis_restart_loses_no_accepted_job_and_needs_no_other_restart(
    service: Service,
) -> None:
    http = service.http
    long_job = submit(http, {**MEDIUM_SPEC, "seed": 1})
    quick_jobs = [submit(http, {"seed": seed, "training": {"epochs": 3}}) for seed in (2, 3, 4)]
    wait_for(
        lambda: job(http, long_job)["progress"]["epoch"] >= 1,
        timeout=JOB_SECONDS,
        what="the long job to train",
    )

    service.redis.shut_down()
    read, read_seconds = timed(lambda: http.get(f"/v1/experiments/{long_job}"))
    post, post_seconds = timed(lambda: http.post("/v1/experiments", json={}))
    listing, _ = timed(lambda: http.get("/v1/experiments"))
    readiness, _ = timed(lambda: http.get("/readyz"))
    alive = http.get("/healthz")
    time.sleep(2)  # the outage lasts: the worker's connections break, its run is dropped
    service.redis.start()

    for response in (read, post, listing):
        assert_unavailable(response)
    assert max(read_seconds, post_seconds) < DOWN_ANSWER_SECONDS
    assert readiness.status_code == 503 and alive.status_code == 200
    wait_for(
        lambda: http.get(f"/v1/experiments/{long_job}").status_code == 200,
        timeout=10,
        what="the API to answer again",
    )
    for job_id in [long_job, *quick_jobs]:
        wait_for(
            lambda job_id=job_id: job(http, job_id)["status"] in ("succeeded", "failed"),
            timeout=JOB_SECONDS,
            what=f"job {job_id} to finish after the outage",
        )
        record = job(http, job_id)
        assert record["status"] == "succeeded", record["error"]
    assert service.api.poll() is None and service.worker.poll() is None
