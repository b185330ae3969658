"""Thousands of open event streams on one API process: Redis connections, /healthz, RSS.

An API process and a redis-server of the script's own (so Redis' client count is
the API's alone); N jobs made queued in the store, then N event streams opened
on them (raw sockets, 50 opening at a time, each counted open once its first
event arrived) while /healthz is timed every 0.1 s. Figures: Redis' connected
clients once all are open, /healthz while they open and once open, the API's
RSS before and after, the time to open them all.

Side by side with the code before the shared reader (`--before`, default the
commit before it: every stream on a Redis connection of its own), run from a copy
of that commit (`git archive`), in the same run.

Run:

    .venv/bin/python benchmarks/streams.py [--streams 2000] [--before 33c7be2~1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.service_processes import (
    ROOT,
    Process,
    checkout,
    free_port,
    own_redis,
    service_env,
    start_api,
    wait_for_api,
)
from core.experiment.spec import ExperimentSpec
from core.settings import Settings
from core.store.stores import JobStore

OPENING_AT_ONCE = 50
SPEC = ExperimentSpec.model_validate({"seed": 1, "device": "gpu", "training": {"epochs": 2}})


@dataclass
class Figures:
    clients_idle: int = 0
    clients_open: int = 0
    rss_idle_mb: float = 0.0
    rss_open_mb: float = 0.0
    open_seconds: float = 0.0
    opened: int = 0
    refused: int = 0
    healthz_opening_ms: list[float] = field(default_factory=list)
    healthz_open_ms: list[float] = field(default_factory=list)


def connected_clients(url: str) -> int:
    """Redis' clients, the one asking left out."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("clients")["connected_clients"]) - 1
    finally:
        client.close()


async def healthz_ms(port: int) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
    await reader.read()
    writer.close()
    return (time.perf_counter() - started) * 1000


async def open_stream(port: int, job_id: str) -> asyncio.StreamWriter | None:
    """An open stream once its first event arrived; None when refused."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /v1/experiments/{job_id}/events HTTP/1.1\r\nHost: bench\r\n\r\n"
    writer.write(request.encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        writer.close()
        return None
    await reader.readuntil(b"\n\n")  # the first event (a chunk's data ends with it)
    return writer


async def measure(port: int, api: Process, redis_url: str, jobs: Sequence[str]) -> Figures:
    figures = Figures(clients_idle=connected_clients(redis_url), rss_idle_mb=api.rss_mb())
    opening = asyncio.Semaphore(OPENING_AT_ONCE)
    done = asyncio.Event()

    async def one(job_id: str) -> asyncio.StreamWriter | None:
        async with opening:
            return await open_stream(port, job_id)

    async def sample() -> None:
        while not done.is_set():
            figures.healthz_opening_ms.append(await healthz_ms(port))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    started = time.perf_counter()
    writers = await asyncio.gather(*(one(job_id) for job_id in jobs))
    figures.open_seconds = time.perf_counter() - started
    done.set()
    await sampler
    figures.opened = sum(writer is not None for writer in writers)
    figures.refused = len(writers) - figures.opened
    await asyncio.sleep(1.0)
    figures.clients_open = connected_clients(redis_url)
    figures.rss_open_mb = api.rss_mb()
    for _ in range(20):
        figures.healthz_open_ms.append(await healthz_ms(port))
        await asyncio.sleep(0.05)
    for writer in writers:
        if writer is not None:
            writer.close()
    return figures


def run(variant: str, root: Path, count: int, logs: Path) -> Figures:
    """`count` streams on an API of checkout `root`, against a fresh redis-server."""
    with own_redis(variant, logs, maxclients=count + 1000) as redis_url:
        settings = Settings(namespace=f"gwbenchstreams{os.getpid()}", redis_url=redis_url)
        store = JobStore.from_settings(settings)
        jobs = [store.create(spec=SPEC, queue="nowhere").record.id for _ in range(count)]
        env = service_env(
            settings,
            GRADWATCH_MAX_STREAMS_PER_OWNER=str(count + 10),
            GRADWATCH_MAX_STREAMS_PER_PROCESS=str(count + 10),
        )
        port = free_port()
        api = start_api(env, port, logs / variant, root=root)
        try:
            wait_for_api(f"http://127.0.0.1:{port}", api)
            return asyncio.run(measure(port, api, redis_url, jobs))
        finally:
            api.stop()
            store.close()


def describe(name: str, figures: Figures) -> str:
    opening = sorted(figures.healthz_opening_ms)
    open_ = sorted(figures.healthz_open_ms)
    return (
        f"{name:<14} {figures.opened:>6} open ({figures.refused} refused) in "
        f"{figures.open_seconds:5.1f} s | Redis clients {figures.clients_idle} idle -> "
        f"{figures.clients_open} open | /healthz while opening p50 "
        f"{statistics.median(opening):.1f} ms max {opening[-1]:.0f} ms, once open p50 "
        f"{statistics.median(open_):.1f} ms max {open_[-1]:.0f} ms | API RSS "
        f"{figures.rss_idle_mb:.0f} -> {figures.rss_open_mb:.0f} MB"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--before", default="33c7be2~1", help="the commit to compare with")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the git checkout holding it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gwbench-streams-") as folder:
        before = checkout(args.repo, args.before, Path(folder) / "before")
        logs = Path(folder) / "logs"
        shared = run("shared reader", ROOT, args.streams, logs)
        baseline = run("per stream", before, args.streams, logs)
    print(f"{args.streams} event streams on one API process ({os.cpu_count()} cores)")
    print(describe("shared reader", shared))
    print(describe(f"before ({args.before})", baseline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
