"""The tutorial experiment end to end through the service, beside the engine in-process.

Starts the API (uvicorn) and one production-shaped worker (prefork, one pool
process) on a namespace of their own, sends a warm-up job of the tutorial's
architecture, then times `--runs` jobs from POST /v1/experiments to the job
succeeded with its default PNGs stored (the moment the event stream delivers
the final state; the plots are stored in the same atomic step). Then, with
the service stopped, times the same spec in this process: `run_experiment`
alone (warm) and with the default plots rendered, which is what a job does.

Run (needs Redis at REDIS_URL, default 127.0.0.1:6379; deletes its keys after):

    .venv/bin/python benchmarks/service_e2e.py [--runs 5] [--epochs 100]

Targets (issue 3, 6a): within 0.5 s of the in-process time, <= 1.0 s in all.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.experiment.spec import Device, ExperimentSpec  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store.keys import Keys  # noqa: E402

WORKER_LOG = Path(os.environ.get("TMPDIR", "/tmp")) / "gradwatch-bench-worker.log"
START_SECONDS = 120.0
JOB_SECONDS = 300.0


@dataclass
class Timings:
    """Seconds per run."""

    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def best(self) -> float:
        return min(self.runs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed jobs (default 5)")
    parser.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    args = parser.parse_args(argv)
    body: dict[str, Any] = {"seed": 1, "training": {"epochs": args.epochs}}
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = Settings(namespace=f"gwbench{os.getpid()}", redis_url=redis_url)
    try:
        service, first_fetch = time_service(settings, body, args.runs)
        engine, engine_and_plots = time_in_process(body, args.runs)
    finally:
        delete_namespace(settings)
    report(args, service, engine, engine_and_plots, first_fetch)
    return 0


# ------------------------------------------------------------------ the service


def time_service(settings: Settings, body: dict[str, Any], runs: int) -> tuple[Timings, float]:
    """POST-to-succeeded seconds per run on a warm worker, and the first plot fetch's."""
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "GRADWATCH_NAMESPACE": settings.namespace,
        "PYTHONPATH": str(ROOT),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    processes = [start_worker(env), start_api(env, port)]
    try:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            wait_until_ready(client, settings.queue_for(Device.CPU), processes)
            warm_up(client, body)
            timings, fetches = [], []
            for _ in range(runs):
                seconds, job_id = run_job(client, body)
                timings.append(seconds)
                fetches.append(first_plot_fetch(client, job_id))
    finally:
        for process in reversed(processes):
            stop(process)
    return Timings(timings), statistics.median(fetches)


def warm_up(client: httpx.Client, body: dict[str, Any], most: int = 20) -> None:
    """Run jobs until one trains on a graph the worker compiled for an earlier one.

    A warm worker is one that has seen the architecture: its first job loads
    TensorFlow and compiles the XLA graph that its later jobs reuse.
    """
    print("warm-up jobs (load TensorFlow, compile the graphs)...", flush=True)
    for _ in range(most):
        _, job_id = run_job(client, body)
        timing = client.get(f"/v1/experiments/{job_id}/result").json()["timing"]
        if timing["graph"] == "xla" and timing["graph_reused"]:
            return
    raise SystemExit(f"the worker did not reuse its XLA graph within {most} warm-up jobs")


def run_job(client: httpx.Client, body: dict[str, Any]) -> tuple[float, str]:
    """(seconds from POST to the final state, job id); fails unless it succeeded with plots."""
    started = time.perf_counter()
    posted = client.post("/v1/experiments", json=body)
    posted.raise_for_status()
    job_id = posted.json()["id"]
    with client.stream("GET", f"/v1/experiments/{job_id}/events", timeout=JOB_SECONDS) as stream:
        for _ in stream.iter_lines():
            pass  # the stream ends right after the final state event
    seconds = time.perf_counter() - started
    record = client.get(f"/v1/experiments/{job_id}").json()
    if record["status"] != "succeeded" or not record["plots"]:
        raise SystemExit(f"job {job_id} ended {record['status']}: {record['error']}")
    created, started, finished = (
        datetime.fromisoformat(record[name]).timestamp()
        for name in ("created_at", "started_at", "finished_at")
    )
    print(
        f"  job {job_id}: {seconds:.3f} s = queued {started - created:.3f} s"
        f" + in the worker {finished - started:.3f} s"
        f" + to the client {seconds - (finished - created):.3f} s",
        flush=True,
    )
    return seconds, job_id


def first_plot_fetch(client: httpx.Client, job_id: str) -> float:
    """Seconds to GET the job's gradients PNG the first time (stored by the worker)."""
    started = time.perf_counter()
    response = client.get(f"/v1/experiments/{job_id}/plots/gradients.png")
    response.raise_for_status()
    return time.perf_counter() - started


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--device", "cpu", "--concurrency", "1", "--loglevel", "INFO",
        "--without-mingle", "--without-gossip", "-n", f"bench{os.getpid()}@%h",
    ]  # fmt: skip
    # Its log (one line per job splits training, PNGs and storing) goes to a file.
    with WORKER_LOG.open("w") as log:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def start_api(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1",
        "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env)


def wait_until_ready(
    client: httpx.Client, queue: str, processes: Sequence[subprocess.Popen[bytes]]
) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise SystemExit("the worker or the API exited while starting")
        try:
            workers = client.get("/readyz").json().get("workers", {})
            if workers.get(queue):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the service did not get ready")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def delete_namespace(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(match=Keys(settings.namespace).pattern(), count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


# ------------------------------------------------------------------ in-process


def time_in_process(body: dict[str, Any], runs: int) -> tuple[Timings, Timings]:
    """The engine alone, and the engine plus the default plots, warm, in this process."""
    from core.engine import graph_cache
    from core.engine.run import run_experiment
    from core.plotting.catalog import available_plots, render_plot

    spec = ExperimentSpec.model_validate(body)

    def engine() -> Any:
        return run_experiment(spec)

    def engine_and_plots() -> None:
        result = run_experiment(spec).result
        for name in available_plots(result):
            render_plot(name, result)

    graph_cache.set_xla_mode("always")  # as in a worker
    engine_and_plots()  # warm-up: TensorFlow, the XLA graphs, matplotlib
    return time_runs(engine, runs), time_runs(engine_and_plots, runs)


def time_runs(function: Callable[[], Any], runs: int) -> Timings:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return Timings(seconds)


# ------------------------------------------------------------------ report


def report(
    args: argparse.Namespace,
    service: Timings,
    engine: Timings,
    engine_and_plots: Timings,
    first_fetch: float,
) -> None:
    rows = [
        ("in-process: run_experiment", engine),
        ("in-process: run_experiment + default PNGs", engine_and_plots),
        ("service: POST -> succeeded, PNGs stored", service),
    ]
    print()
    print(
        f"tutorial (2-5-5-5-5-1 sigmoid, {args.epochs} epochs), warm, "
        f"{args.runs} runs: median (best)"
    )
    for label, timings in rows:
        print(f"  {label:<44} {timings.median:7.3f} s  ({timings.best:.3f})")
    difference = service.median - engine.median
    overhead = service.median - engine_and_plots.median
    print(f"  {'difference, service - in-process engine':<44} {difference:+7.3f} s")
    print(f"  {'of which not training nor drawing':<44} {overhead:+7.3f} s")
    print(f"  {'first GET of a stored PNG':<44} {first_fetch * 1000:7.1f} ms")
    verdict = "met" if difference <= 0.5 and service.median <= 1.0 else "NOT met"
    print(f"target (within 0.5 s of in-process, <= 1.0 s in all): {verdict}")
    print(f"the worker's split of each job (training, PNGs, storing): {WORKER_LOG}")


if __name__ == "__main__":
    sys.exit(main())
