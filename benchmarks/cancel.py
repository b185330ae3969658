"""How long a cancel takes to stop the slowest spec inside the limits, on a real worker.

The spec: circles, 4,000 samples, four hidden layers of 512, one epoch at batch
size 1, every step captured with the largest probe (each step forward-passes
4,000 samples through the net: billions of operations). Its one epoch would take
over half an hour; the engine runs it in calls of bounded cost and looks for a
cancel between them (core.engine.chunks). Each trial POSTs it to a production-
shaped worker (prefork, one pool process; warm after the first trial), waits
until it has trained `--after` seconds, POSTs the cancel and times until the
record says `cancelled`.

Run (needs Redis at REDIS_URL, default 127.0.0.1:6379; deletes its keys after):

    .venv/bin/python benchmarks/cancel.py [--trials 5] [--after 3]

Target: about a second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.service_processes import (
    delete_namespace,
    free_port,
    service_env,
    start_api,
    start_worker,
    wait_for_api,
    wait_until,
)
from core.experiment.spec import Device
from core.settings import Settings
from core.store.stores import JobStore
from tests.conftest import WORST_SPEC


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--after", type=float, default=3.0, help="seconds trained before cancel")
    args = parser.parse_args(argv)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = Settings(namespace=f"gwbenchcancel{os.getpid()}", redis_url=redis_url)
    logs = Path(tempfile.mkdtemp(prefix="gradwatch-cancel-"))
    env = service_env(settings)
    port = free_port()
    worker = start_worker(env, "cancel@bench", logs)
    api = start_api(env, port, logs)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0)
    store = JobStore.from_settings(settings)
    latencies = []
    try:
        wait_for_api(f"http://127.0.0.1:{port}", api)
        queue = settings.queue_for(Device.CPU)
        wait_until(
            lambda: bool(client.get("/readyz").json().get("live_workers", {}).get(queue)),
            timeout=180,
            what="the worker",
        )
        for trial in range(1, args.trials + 1):
            latencies.append(one_trial(client, store, args.after))
            print(f"trial {trial}: cancelled {latencies[-1]:.3f} s after the cancel", flush=True)
    finally:
        client.close()
        api.stop()
        worker.stop()
        store.close()
        delete_namespace(settings)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    median, most = statistics.median(latencies), max(latencies)
    print(f"\ncancel of the slowest spec, {args.trials} trials: median {median:.3f} s, "
          f"max {most:.3f} s (target: about 1 s); load {load}; logs {logs}")  # fmt: skip
    return 0


def one_trial(client: httpx.Client, store: JobStore, after: float) -> float:
    """Seconds from the cancel's POST until the job's record says cancelled."""
    job_id = client.post("/v1/experiments", json=WORST_SPEC).json()["id"]

    def training() -> bool:
        record = store.get(job_id)
        return record is not None and record.status.value == "running"

    wait_until(training, timeout=180, what="the job to run")
    time.sleep(after)  # a trial's length, not a wait for a condition: it trains meanwhile
    started = time.perf_counter()
    response = client.post(f"/v1/experiments/{job_id}/cancel")
    response.raise_for_status()

    def cancelled() -> bool:
        record = store.get(job_id)
        return record is not None and record.status.finished

    wait_until(cancelled, timeout=120, what="the cancel to land")
    seconds = time.perf_counter() - started
    record = store.get(job_id)
    assert record is not None
    if record.status.value != "cancelled":
        raise SystemExit(f"job {job_id} ended {record.status.value}, not cancelled")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
