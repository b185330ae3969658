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
import fcntl
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import IO, Any

from core.cli.children import (
    Child,
    ServeError,
    start_api,
    start_redis,
    start_worker,
    stop_all,
    supervise,
    wait_for_redis,
    wait_until_ready,
)
from core.experiment.spec import Device
from core.settings import Settings, get_settings


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
