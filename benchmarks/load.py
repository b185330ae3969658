"""Many jobs at once, and many jobs in a row: nothing lost, nothing run twice, memory flat.

`burst`: the API and `--workers` production-shaped CPU workers on a namespace of
their own; `--jobs` tiny jobs (1 epoch, 64 samples) posted at once over HTTP, while a
reader GETs job records (`--read-rate` a second, as pollers would). Then it
checks that every job succeeded, was delivered once and logged as succeeded
once across the workers' logs, that no record is missing, and that the queue
drained (no message left waiting or unacknowledged); and reports the GET
record latencies meanwhile.

`soak`: one worker, `--jobs` jobs in a row; the worker's resident memory (main
process and pool process) is sampled as they finish, and the growth after the
warm-up (the first `--warm-up` jobs) is reported against the 10% target.

Run (needs Redis at REDIS_URL, default 127.0.0.1:6379; deletes its keys after):

    .venv/bin/python benchmarks/load.py burst [--jobs 1000] [--workers 2]
    .venv/bin/python benchmarks/load.py soak [--jobs 200] [--warm-up 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.service_processes import (
    Process,
    delete_namespace,
    free_port,
    service_env,
    start_api,
    start_worker,
    wait_for_api,
    wait_for_worker,
    wait_until,
)
from core.experiment.jobs import JobStatus
from core.experiment.spec import Device
from core.settings import Settings
from core.store.keys import Keys
from core.store.records import JobRecord
from core.store.stores import JobStore, plans_from_settings

DRAIN_SECONDS = 3600.0
POSTS_AT_ONCE = 64


def tiny_spec(seed: int) -> dict[str, Any]:
    return {"seed": seed, "dataset": {"n_samples": 64}, "training": {"epochs": 1}}


@dataclass
class Service:
    """The API, the workers and a store client on the script's namespace."""

    settings: Settings
    logs: Path
    url: str = ""
    processes: list[Process] = field(default_factory=list)
    workers: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        client = redis.Redis.from_url(self.settings.redis_url)
        self.store = JobStore(client, plans_from_settings(self.settings))
        self.env = service_env(self.settings)

    def start(self, workers: int) -> None:
        port = free_port()
        api = start_api(self.env, port, self.logs)
        self.processes.append(api)
        self.url = f"http://127.0.0.1:{port}"
        for number in range(1, workers + 1):
            hostname = f"{self.settings.namespace}-{number}@load"
            worker = start_worker(self.env, hostname, self.logs)
            self.processes.append(worker)
            self.workers.append(worker)
            wait_for_worker(self.store, self.settings, worker, hostname)
        wait_for_api(self.url, api)

    def finished(self) -> int:
        counts = self.store.metrics(queues=[]).jobs_by_status
        return sum(count for status, count in counts.items() if status.finished)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.store.close()


# ----------------------------------------------------------------------- burst


async def post_all(url: str, count: int) -> tuple[list[str], float]:
    """POST `count` jobs, POSTS_AT_ONCE in flight; their ids and the seconds it took."""
    limits = httpx.Limits(max_connections=POSTS_AT_ONCE)
    gate = asyncio.Semaphore(POSTS_AT_ONCE)
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as client:

        async def post(seed: int) -> str:
            async with gate:
                response = await client.post("/v1/experiments", json=tiny_spec(seed))
            response.raise_for_status()
            job_id: str = response.json()["id"]
            return job_id

        ids = await asyncio.gather(*(post(seed) for seed in range(count)))
    return list(ids), time.monotonic() - started


class Reader(threading.Thread):
    """GETs random job records, `rate` a second, until stopped; latencies in seconds."""

    def __init__(self, url: str, ids: Sequence[str], rate: float) -> None:
        super().__init__(name="reader", daemon=True)
        self.url = url
        self.ids = ids
        self.interval = 1.0 / rate
        self.latencies: list[float] = []
        self.errors = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30.0) as client:
            while not self.stopped.is_set():
                job_id = random.choice(self.ids)
                started = time.perf_counter()
                response = client.get(f"/v1/experiments/{job_id}")
                elapsed = time.perf_counter() - started
                self.latencies.append(elapsed)
                self.errors += response.status_code != 200
                self.stopped.wait(max(0.0, self.interval - elapsed))


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def succeeded_log_lines(workers: Sequence[Process]) -> Counter[str]:
    """How often each job id was logged as succeeded, across the workers' logs."""
    pattern = re.compile(r"job ([0-9A-Z]{26}) succeeded:")
    counts: Counter[str] = Counter()
    for worker in workers:
        counts.update(pattern.findall(worker.log.read_text(errors="replace")))
    return counts


def drained(service: Service) -> tuple[int, int]:
    """Messages still waiting in the cpu queue, and delivered but unacknowledged."""
    queue = service.settings.queue_for(Device.CPU)
    waiting = service.store.metrics(queues=[queue]).queue_depths[queue]
    unacked = Keys(service.settings.namespace).celery_prefix + "unacked"  # kombu's hash
    return waiting, int(service.store.client.execute_command("HLEN", unacked))


def burst(service: Service, jobs: int, workers: int, read_rate: float) -> int:
    service.start(workers)
    ids, posting = asyncio.run(post_all(service.url, jobs))
    reader = Reader(service.url, ids, read_rate)
    reader.start()
    started = time.monotonic()
    wait_until(lambda: service.finished() >= jobs, timeout=DRAIN_SECONDS, what="the queue")
    drain = time.monotonic() - started
    reader.stopped.set()
    reader.join()
    wait_until(lambda: drained(service) == (0, 0), timeout=30, what="the last acks")
    records = [service.store.get(job_id) for job_id in ids]
    report_burst(service, ids, records, posting, drain, reader)
    present = [record for record in records if record is not None]
    logged = succeeded_log_lines(service.workers)
    ok = (
        len(present) == jobs
        and all(r.status is JobStatus.SUCCEEDED and r.deliveries == 1 for r in present)
        and all(logged[job_id] == 1 for job_id in ids)
        and percentile(reader.latencies, 0.99) < 0.1
    )
    return 0 if ok else 1


def report_burst(
    service: Service,
    ids: Sequence[str],
    records: Sequence[JobRecord | None],
    posting: float,
    drain: float,
    reader: Reader,
) -> None:
    present = [record for record in records if record is not None]
    statuses = Counter(record.status.value for record in present)
    deliveries = Counter(record.deliveries for record in present)
    by_worker = Counter(str((record.worker or {}).get("hostname")) for record in present)
    logged = succeeded_log_lines(service.workers)
    once = sum(logged[job_id] == 1 for job_id in ids)
    latencies = reader.latencies
    print(f"posted {len(ids)} jobs in {posting:.1f} s; drained in {drain:.1f} s "
          f"({len(ids) / drain:.1f} jobs/s)")  # fmt: skip
    print(f"statuses: {dict(statuses)}; deliveries: {dict(deliveries)}; "
          f"records missing: {len(ids) - len(present)}")  # fmt: skip
    print(f"per worker: {dict(by_worker)}; logged as succeeded exactly once: {once}/{len(ids)}")
    print(f"queue after: {drained(service)} (waiting, unacknowledged)")
    print(
        f"GET record during the drain, {len(latencies)} reads ({reader.errors} not 200): "
        f"p50 {1000 * statistics.median(latencies):.1f} ms, "
        f"p99 {1000 * percentile(latencies, 0.99):.1f} ms, max {1000 * max(latencies):.1f} ms"
    )
    print(
        f"{len(ids):,} jobs at once across {len(service.workers)} workers: "
        f"{statuses.get('succeeded', 0):,} succeeded, {once:,} trained exactly once, "
        f"{len(ids) - len(present)} records lost, queue drained in {drain:.0f} s, "
        f"GET record p99 {1000 * percentile(latencies, 0.99):.1f} ms"
    )


# ------------------------------------------------------------------------ soak


def rss_bytes(worker: Process) -> tuple[int, int]:
    """Resident memory of the worker's main process and of its pool process(es)."""
    main = psutil.Process(worker.process.pid)
    pool = sum(child.memory_info().rss for child in main.children())
    return main.memory_info().rss, pool


def soak(service: Service, jobs: int, warm_up: int) -> int:
    service.start(1)
    (worker,) = service.workers
    samples: list[tuple[int, int, int]] = []  # (jobs finished, main rss, pool rss)
    with httpx.Client(base_url=service.url, timeout=30.0) as client:
        for seed in range(jobs):
            client.post("/v1/experiments", json=tiny_spec(seed)).raise_for_status()
    last = -1
    while (done := service.finished()) < jobs:
        if done != last:
            samples.append((done, *rss_bytes(worker)))
            last = done
        time.sleep(0.05)
    samples.append((done, *rss_bytes(worker)))
    return report_soak(samples, jobs, warm_up)


def report_soak(samples: Sequence[tuple[int, int, int]], jobs: int, warm_up: int) -> int:
    after = [(done, main + pool) for done, main, pool in samples if done >= warm_up]
    baseline = after[0][1]
    final = statistics.median(total for done, total in after if done >= jobs - 20)
    peak = max(total for _, total in after)
    growth = (final - baseline) / baseline
    mib = 1024 * 1024
    for done, main, pool in samples[:: max(1, len(samples) // 10)]:
        print(f"  after {done:4d} jobs: main {main / mib:6.1f} MiB, pool {pool / mib:7.1f} MiB")
    print(
        f"soak of {jobs} jobs on one worker: RSS {baseline / mib:.0f} MiB after {warm_up} "
        f"warm-up jobs, {final / mib:.0f} MiB at the end ({100 * growth:+.1f}%), "
        f"peak {peak / mib:.0f} MiB ({100 * (peak - baseline) / baseline:+.1f}%)"
    )
    return 0 if abs(growth) <= 0.10 else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    burst_parser = modes.add_parser("burst", help="many jobs at once across workers")
    burst_parser.add_argument("--jobs", type=int, default=1000)
    burst_parser.add_argument("--workers", type=int, default=2)
    burst_parser.add_argument("--read-rate", type=float, default=50.0, help="GETs per second")
    soak_parser = modes.add_parser("soak", help="many jobs in a row on one worker")
    soak_parser.add_argument("--jobs", type=int, default=200)
    soak_parser.add_argument("--warm-up", type=int, default=20)
    args = parser.parse_args(argv)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = Settings(namespace=f"gwload{os.getpid()}", redis_url=redis_url)
    logs = Path(tempfile.mkdtemp(prefix="gradwatch-load-"))
    service = Service(settings, logs)
    try:
        if args.mode == "burst":
            return burst(service, args.jobs, args.workers, args.read_rate)
        return soak(service, args.jobs, args.warm_up)
    finally:
        service.stop()
        delete_namespace(settings)
        print(f"logs: {logs}")


if __name__ == "__main__":
    raise SystemExit(main())
