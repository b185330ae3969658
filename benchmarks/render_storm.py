"""A render storm: many finished jobs, each asked for many odd sizes. What does Redis keep?

A redis-server and an API process of the script's own; J finished jobs (a
synthetic result each, as the tests make them); then every job asked for S plot
sizes nobody asked before (4 requests at a time). Figures: Redis' used memory
before and after, the PNG bytes kept at other sizes than the default, requests
answered 200 and 429, the time taken.

Side by side with the code before the render budget (`--before`, default the
commit before it: up to 64 PNGs per job, no global bound), run from a copy of that
commit (`git archive`) in the same run. The budget here is `--budget-mb` (the
deployment's default is 256 MB), small enough for the storm to pass it.

Run:

    .venv/bin/python benchmarks/render_storm.py [--jobs 10] [--sizes 20] [--budget-mb 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.service_processes import (
    ROOT,
    checkout,
    free_port,
    own_redis,
    service_env,
    start_api,
    wait_for_api,
)
from core.experiment.jobs import Summary
from core.experiment.result import dumps_result
from core.experiment.spec import ExperimentSpec
from core.settings import Settings
from core.store.records import WorkerInfo
from core.store.stores import JobStore
from tests.core.result_samples import make_result

AT_ONCE = 4
WORKER = WorkerInfo(hostname="bench@storm", device="cpu", device_name="CPU", tensorflow="0")
SPEC = ExperimentSpec.model_validate({"seed": 1, "device": "gpu", "training": {"epochs": 10}})


@dataclass
class Figures:
    used_before_mb: float
    used_after_mb: float
    kept_mb: float
    answered: dict[int, int]
    seconds: float


def used_mb(client: redis.Redis) -> float:
    return int(client.info("memory")["used_memory"]) / 2**20


def kept_mb(client: redis.Redis, namespace: str) -> float:
    """Bytes of PNGs at other sizes than the default in the jobs' plots hashes."""
    total = 0
    for key in client.scan_iter(match=f"{namespace}:job:*:plots", count=1000):
        for field in client.hkeys(key):
            if b"@" in field and not field.endswith(b"#etag"):
                total += int(client.hstrlen(key, field))
    return total / 2**20


async def storm(port: int, jobs: Sequence[str], sizes: int) -> dict[int, int]:
    answered: dict[int, int] = {}
    gate = asyncio.Semaphore(AT_ONCE)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:

        async def one(job_id: str, step: int) -> None:
            params = {"width": 320 + step, "height": 240, "dpi": 60}
            async with gate:
                response = await client.get(
                    f"/v1/experiments/{job_id}/plots/weights.png", params=params
                )
            answered[response.status_code] = answered.get(response.status_code, 0) + 1

        await asyncio.gather(*(one(job, step) for job in jobs for step in range(sizes)))
    return answered


def run(variant: str, root: Path, args: argparse.Namespace, logs: Path) -> Figures:
    with own_redis(variant, logs) as redis_url:
        settings = Settings(namespace=f"gwbenchstorm{os.getpid()}", redis_url=redis_url)
        store = JobStore.from_settings(settings)
        result = dumps_result(make_result())
        jobs = []
        for _ in range(args.jobs):
            job_id = store.create(spec=SPEC, queue="nowhere").record.id
            store.mark_running(job_id, worker=WORKER, max_deliveries=3)
            summary = Summary(loss=0.5, accuracy=0.75)
            store.mark_succeeded(job_id, summary=summary, result_json=result, plots={})
            jobs.append(job_id)
        env = service_env(
            settings,
            GRADWATCH_RENDER_CACHE_MEGABYTES=str(args.budget_mb),
            GRADWATCH_RENDERS_PER_MINUTE="100000",
        )
        port = free_port()
        api = start_api(env, port, logs / variant, root=root)
        client = redis.Redis.from_url(redis_url)
        try:
            wait_for_api(f"http://127.0.0.1:{port}", api)
            before = used_mb(client)
            started = time.perf_counter()
            answered = asyncio.run(storm(port, jobs, args.sizes))
            seconds = time.perf_counter() - started
            return Figures(
                before, used_mb(client), kept_mb(client, settings.namespace), answered, seconds
            )
        finally:
            client.close()
            api.stop()
            store.close()


def describe(name: str, figures: Figures) -> str:
    answered = ", ".join(
        f"{count} x {status}" for status, count in sorted(figures.answered.items())
    )
    return (
        f"{name:<22} Redis used {figures.used_before_mb:6.1f} -> {figures.used_after_mb:6.1f} MB"
        f" | PNGs kept at other sizes {figures.kept_mb:6.2f} MB | {answered} in "
        f"{figures.seconds:.0f} s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--sizes", type=int, default=20)
    parser.add_argument("--budget-mb", type=int, default=2)
    parser.add_argument("--before", default="6741d3f", help="the commit to compare with")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the git checkout holding it")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gwbench-storm-") as folder:
        before = checkout(args.repo, args.before, Path(folder) / "before")
        logs = Path(folder) / "logs"
        budgeted = run("render budget", ROOT, args, logs)
        baseline = run("before", before, args, logs)
    print(
        f"{args.jobs} finished jobs x {args.sizes} odd sizes each, {AT_ONCE} requests at a "
        f"time ({os.cpu_count()} cores); render budget {args.budget_mb} MB"
    )
    print(describe("render budget", budgeted))
    print(describe(f"before ({args.before})", baseline))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
