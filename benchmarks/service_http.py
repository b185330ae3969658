"""HTTP throughput and latency of the API: GET record and GET cached PNG, beside a baseline.

One uvicorn process (uvloop, httptools) serves the real app plus one bare route
returning a constant (the baseline: what uvicorn and FastAPI cost alone). Stored
records and PNGs are answered by api.hot_reads beneath FastAPI's routing; a row
with a query string shows the same record through the FastAPI route. A load
generator in another process keeps 64 keep-alive connections busy on loopback
with a minimal asyncio HTTP/1.1 client (fast enough not to be the bottleneck,
unlike a general-purpose client) and times every request.

Run (needs Redis; uses a namespace of its own and deletes it afterwards):

    .venv/bin/python benchmarks/service_http.py [--duration 10] [--connections 64]

Targets (issue 3): GET record >= 2,000 req/s with p99 <= 20 ms on one process.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import multiprocessing
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
import redis
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.experiment.jobs import Summary  # noqa: E402
from core.experiment.spec import ExperimentSpec  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store.keys import Keys  # noqa: E402
from core.store.records import WorkerInfo  # noqa: E402
from core.store.stores import JobStore  # noqa: E402

BASELINE_PATH = "/_bench/constant"
PNG_BYTES = 96 * 1024  # default-size (900x600) plots weigh roughly 40 to 180 KB


def app_with_baseline() -> FastAPI:
    """The real app plus a bare constant route (uvicorn --factory)."""
    from fastapi.responses import Response

    from api.main import create_app

    app = create_app()

    @app.get(BASELINE_PATH, include_in_schema=False)
    async def constant() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


# ------------------------------------------------------------------ load generator


@dataclass(frozen=True)
class Load:
    """What to send: a GET on `connections` keep-alive connections, open or closed loop."""

    port: int
    path: str
    headers: str
    connections: int
    warmup: float
    duration: float
    rate: float | None = None  # None: each connection sends as soon as it has its answer


@dataclass(frozen=True)
class Outcome:
    """What one load measured (latencies of the timed window, in ms)."""

    answered: int  # responses that arrived within the timed window
    errors: int
    seconds: float
    latencies_ms: list[float]  # of the requests due within the timed window
    total: int  # responses, warm-up included

    @property
    def rate(self) -> float:
        return self.answered / self.seconds

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ranked = sorted(self.latencies_ms)
        return ranked[min(len(ranked) - 1, int(q * len(ranked)))]


async def _connection(
    load: Load, index: int, start: float, stop: float, latencies: list[float]
) -> tuple[int, int, int]:
    """Send the request over one keep-alive connection until `stop`.

    Returns (responses, responses within the timed window, errors).

    At a fixed rate, each request has a scheduled time and its latency counts from that
    time, not from when it could be sent (no coordinated omission, as in wrk2).
    """
    request = f"GET {load.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{load.headers}\r\n".encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", load.port)
    interval = load.connections / load.rate if load.rate else 0.0
    due = start - load.warmup + interval * index / load.connections
    errors = responses = answered = 0
    clock = time.perf_counter
    try:
        while True:
            now = clock()
            if not interval:
                due = now
            elif due > now:
                await asyncio.sleep(due - now)
            if due >= stop:
                break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            done = clock()
            responses += 1
            answered += start <= done < stop
            if head[9:12] not in (b"200", b"304"):
                errors += 1
            elif due >= start:  # past the warm-up
                latencies.append((done - due) * 1000)
            due += interval
    finally:
        writer.close()
    return responses, answered, errors


async def _load(load: Load) -> Outcome:
    start = time.perf_counter() + load.warmup
    stop = start + load.duration
    latencies: list[float] = []
    counts = await asyncio.gather(
        *(_connection(load, index, start, stop, latencies) for index in range(load.connections))
    )
    total, answered, errors = (sum(column) for column in zip(*counts, strict=True))
    return Outcome(answered, errors, load.duration, latencies, total)


def _generate(load: Load, out: Connection) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    gc.disable()  # a collection here would show up as the server's latency
    out.send(asyncio.run(_load(load)))


def measure(load: Load, *, repeat: int = 1) -> tuple[Outcome, list[Outcome]]:
    """Run `load` `repeat` times; the run with the median p99, and all of them.

    The median of a few runs keeps one burst of other work on a shared machine from
    deciding the figure, without hiding a slow server behind its one best run.
    """
    runs = [_measure_once(load) for _ in range(repeat)]
    ranked = sorted(runs, key=lambda run: run.percentile(0.99))
    return ranked[len(ranked) // 2], runs


def _measure_once(load: Load) -> Outcome:
    """Run `load` from a separate process (its own core, its own event loop)."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    process = context.Process(target=_generate, args=(load, sending))
    process.start()
    outcome: Outcome = receiving.recv()
    process.join()
    return outcome


# ------------------------------------------------------------------ fixtures


def seed_job(settings: Settings) -> str:
    """A succeeded job with a stored PNG, written straight into the store; its id."""
    store = JobStore.from_settings(settings)
    spec = ExperimentSpec.model_validate({"seed": 1})
    job_id = store.create(spec=spec, queue="bench").record.id
    worker = WorkerInfo(hostname="bench", device="cpu", device_name="CPU", tensorflow="-")
    store.mark_running(job_id, worker=worker, max_deliveries=1)
    store.set_progress(job_id, epoch=100, epochs=100)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(PNG_BYTES - 8)
    store.mark_succeeded(
        job_id,
        summary=Summary(loss=0.69, accuracy=0.588, verdicts=("vanishing",)),
        result_json='{"version":1}',
        plots={"weights": png},
    )
    store.close()
    return job_id


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "benchmarks.service_http:app_with_baseline",
        "--host=127.0.0.1", f"--port={port}", "--loop=uvloop", "--http=httptools",
        "--no-access-log", "--log-level=warning",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before timing")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rate", type=float, default=2000.0, help="fixed-rate run, req/s")
    args = parser.parse_args(argv)

    namespace = f"gwbench{os.getpid()}{secrets.token_hex(2)}"
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = Settings(namespace=namespace, redis_url=redis_url)
    env = {**os.environ, "GRADWATCH_NAMESPACE": namespace, "REDIS_URL": redis_url}
    job_id = seed_job(settings)
    port = free_port()
    server = start_server(port, env)
    png_path = f"/v1/experiments/{job_id}/plots/weights.png"
    etag = httpx.get(f"http://127.0.0.1:{port}{png_path}").headers["etag"]
    targets = [
        ("baseline: constant route", BASELINE_PATH, ""),
        ("GET record", f"/v1/experiments/{job_id}", ""),
        # A query string skips api.hot_reads: the same record through FastAPI's routing.
        ("GET record, FastAPI route", f"/v1/experiments/{job_id}?via=route", ""),
        (f"GET cached PNG ({PNG_BYTES // 1024} KiB)", png_path, ""),
        ("GET PNG, If-None-Match (304)", png_path, f"If-None-Match: {etag}\r\n"),
    ]
    print(
        f"one uvicorn process (uvloop, httptools), {args.connections} keep-alive connections on "
        f"loopback, load generator in another process; {args.duration:g} s per run after "
        f"{args.warmup:g} s warm-up, median of {args.repeat} runs; {os.cpu_count()} CPUs, "
        "load average "
        f"{os.getloadavg()[0]:.1f} at start"
    )
    print(
        f"{'':34} {'as fast as it answers':>33}   {f'at {args.rate:g} req/s offered':>24}\n"
        f"{'target':34} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms':>9}"
        f"   {'req/s':>6} {'p50 ms':>7} {'p99 ms':>7}"
    )
    try:
        for label, path, headers in targets:
            load = Load(port, path, headers, args.connections, args.warmup, args.duration)
            cpu_before = cpu_seconds(server.pid)
            closed, closed_runs = measure(load, repeat=args.repeat)
            served = sum(run.total for run in closed_runs)
            cpu_ms = (cpu_seconds(server.pid) - cpu_before) * 1000 / max(served, 1)
            fixed, fixed_runs = measure(
                dataclasses.replace(load, rate=args.rate), repeat=args.repeat
            )
            errors = sum(run.errors for run in closed_runs + fixed_runs)
            print(
                f"{label:34} {closed.rate:7.0f} {closed.percentile(0.5):7.2f} "
                f"{closed.percentile(0.99):7.2f} {cpu_ms:9.3f}   {fixed.rate:6.0f} "
                f"{fixed.percentile(0.5):7.2f} {fixed.percentile(0.99):7.2f}"
                + (f"  ({errors} errors)" if errors else "")
            )
        print("CPU ms: the server's CPU time per request while answering as fast as it can")
    finally:
        server.terminate()
        server.wait(timeout=10)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=Keys(namespace).pattern(), count=1000))
        if keys:
            client.delete(*keys)


if __name__ == "__main__":
    main()
