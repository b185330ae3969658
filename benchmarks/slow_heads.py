"""Slowloris against one API process: connections held, /healthz, RSS.

An API process and a redis-server of the script's own; N raw connections each
send a request line and then one header byte every `--drip` seconds, never the
blank line that ends the head, for `--seconds`; /healthz is timed every 0.1 s
meanwhile. Figures: connections the server still holds at the end (not closed
by it), connections it answered 408 and closed, /healthz p50 and max, the API's
RSS before and at the end.

Side by side, in the same run and from the same code: the API under uvicorn's
plain httptools protocol (what ran before: a head may take forever) and under
the head deadline `gradwatch serve` runs (`api.head_deadline`, at its default of
10 s unless `--timeout`).

Run:

    .venv/bin/python benchmarks/slow_heads.py [--connections 1000] [--seconds 20]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.service_processes import (
    HEAD_DEADLINE,
    Process,
    free_port,
    own_redis,
    service_env,
    start_api,
    wait_for_api,
)
from core.settings import Settings

VARIANTS = {"bare httptools (before)": "httptools", "head deadline": HEAD_DEADLINE}


@dataclass
class Figures:
    held: int = 0
    refused_408: int = 0
    closed_otherwise: int = 0
    rss_idle_mb: float = 0.0
    rss_end_mb: float = 0.0
    healthz_ms: list[float] = field(default_factory=list)


async def slowloris(port: int, seconds: float, drip: float) -> str:
    """One connection dripping its head: 'held', '408' or 'closed' at the end."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: api\r\nX-Drip: ")
        ends = time.monotonic() + seconds
        while time.monotonic() < ends:
            try:
                answer = await asyncio.wait_for(reader.read(64), timeout=drip)
            except TimeoutError:
                writer.write(b"a")
                continue
            return "408" if answer.startswith(b"HTTP/1.1 408") else "closed"
        return "held"
    except ConnectionError:
        return "closed"
    finally:
        writer.close()


async def time_healthz(port: int, until: asyncio.Event, figures: Figures) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n"
    while not until.is_set():
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await reader.read()
        writer.close()
        figures.healthz_ms.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.1)


async def measure(port: int, api: Process, args: argparse.Namespace) -> Figures:
    figures = Figures(rss_idle_mb=api.rss_mb())
    done = asyncio.Event()
    timer = asyncio.create_task(time_healthz(port, done, figures))
    outcomes = await asyncio.gather(
        *(slowloris(port, args.seconds, args.drip) for _ in range(args.connections))
    )
    figures.rss_end_mb = api.rss_mb()
    done.set()
    await timer
    figures.held = outcomes.count("held")
    figures.refused_408 = outcomes.count("408")
    figures.closed_otherwise = outcomes.count("closed")
    return figures


def run_variant(http: str, logs: Path, args: argparse.Namespace) -> Figures:
    name = http.rpartition(":")[2].lower()
    with own_redis(name, logs) as redis_url:
        settings = Settings(redis_url=redis_url, namespace=f"gwbench-heads-{os.getpid()}")
        env = service_env(settings, GRADWATCH_HEADER_TIMEOUT_SECONDS=str(args.timeout))
        port = free_port()
        api = start_api(env, port, logs / name, http=http)
        try:
            wait_for_api(f"http://127.0.0.1:{port}", api)
            return asyncio.run(measure(port, api, args))
        finally:
            api.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long each one drips")
    parser.add_argument("--drip", type=float, default=2.0, help="seconds between header bytes")
    parser.add_argument("--timeout", type=float, default=10.0, help="the head deadline, seconds")
    args = parser.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="gradwatch-heads-"))
    print(
        f"{args.connections} connections dripping a header byte every {args.drip:g} s "
        f"for {args.seconds:g} s; head deadline {args.timeout:g} s (logs: {logs})"
    )
    print(
        f"{'variant':<26}{'held':>6}{'408':>6}{'closed':>8}"
        f"{'healthz p50':>13}{'max':>9}{'RSS idle':>10}{'RSS end':>9}"
    )
    for label, http in VARIANTS.items():
        figures = run_variant(http, logs, args)
        print(
            f"{label:<26}{figures.held:>6}{figures.refused_408:>6}{figures.closed_otherwise:>8}"
            f"{statistics.median(figures.healthz_ms):>10.1f} ms{max(figures.healthz_ms):>6.0f} ms"
            f"{figures.rss_idle_mb:>7.0f} MB{figures.rss_end_mb:>6.0f} MB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
