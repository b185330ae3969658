"""Comparison studies through the service: one worker against two, children side by side
in one graph against one by one.

Starts, side by side, one deployment per `--deployments` entry WORKERSxMEMBERS: an
API (uvicorn) and that many production-shaped workers (prefork, one pool process
each, the command the worker tests use), the API sending a study's children that
share a graph in groups of at most MEMBERS (GRADWATCH_ENSEMBLE_MEMBERS; 1: each
alone), each deployment on a namespace of its own. It warms the workers up (every
study below, until every child trains on an XLA graph its worker compiled for an
earlier study), then times, each run going through every deployment in turn so
that a change in the machine's load falls on all of them alike (idle workers take
no CPU):

  - the `tutorial` preset (3 children, 3 graphs): POST to the study's final state
    (its summary and default plots stored in one step), and POST to the summary
    and all four PNGs in the client's hands;
  - `seeds`, the tutorial with 4 seeds (12 children, 3 graphs of 4 members);
  - `shapes`, 12 children of 12 different graphs (4 depths x 3 activations):
    nothing to share, so it shows how children spread over workers.

The workers share this machine's cores with each other (and with anything
else running), so the speed-up says how well children overlap on one
machine, not how a second machine would scale.

Run (needs Redis at REDIS_URL, default 127.0.0.1:6379; deletes its keys after):

    .venv/bin/python benchmarks/studies.py [--runs 3] [--deployments 1x8 2x8 1x1 2x1]
                                           [--threads N]

`--threads N` gives each worker N TensorFlow threads (TF_NUM_INTRAOP_THREADS and
TF_NUM_INTEROP_THREADS); by default TensorFlow uses every core in each worker.

Targets (issue 5): the tutorial study done in <= 3 s on warm workers; two
workers ~1.8x one on a 12-child study.
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.experiment.spec import Device  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.store.keys import Keys  # noqa: E402

START_SECONDS = 180.0
STUDY_SECONDS = 600.0
TUTORIAL: dict[str, Any] = {"preset": "tutorial"}
SEEDS: dict[str, Any] = {"preset": "tutorial", "seeds": 4}
SHAPES: dict[str, Any] = {
    "base": {"seed": 1},
    "axes": {
        "model.hidden_layers": [[5] * depth for depth in (2, 3, 4, 5)],
        "model.activation": ["sigmoid", "tanh", "relu"],
    },
}
STUDIES = {"tutorial": TUTORIAL, "seeds": SEEDS, "shapes": SHAPES}
PLOTS = ("depth", "curves", "gradient_flow", "boundary")
LOG_DIR = Path(os.environ.get("TMPDIR", "/tmp"))


@dataclass
class Figures:
    """Seconds per timed run of each study, for one deployment."""

    workers: int
    members: int
    sealed: dict[str, list[float]] = field(default_factory=dict)  # study -> final state
    tutorial_complete: list[float] = field(default_factory=list)  # summary and PNGs in hand

    @property
    def name(self) -> str:
        alone = "each child alone" if self.members == 1 else f"groups of {self.members}"
        return f"{self.workers} worker{'s' if self.workers > 1 else ''}, {alone}"


@dataclass
class Deployment:
    """An API and its workers on a namespace of their own."""

    settings: Settings
    client: httpx.Client
    processes: list[subprocess.Popen[bytes]]
    figures: Figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed studies of each kind")
    parser.add_argument(
        "--deployments", nargs="+", default=["1x8", "2x8", "1x1", "2x1"],
        help="WORKERSxMEMBERS: workers, and children trained side by side at most",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads per worker")
    args = parser.parse_args(argv)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    deployments: list[Deployment] = []
    try:
        for entry in args.deployments:
            count, _, members = entry.partition("x")
            namespace = f"gwbenchstudy{os.getpid()}w{count}m{members}"
            settings = Settings(
                namespace=namespace, redis_url=redis_url, ensemble_members=int(members)
            )
            deployments.append(start(settings, int(count), args.threads))
        for deployment in deployments:
            wait_until_ready(deployment)
            warm_up(deployment)
        time_interleaved(deployments, args.runs)
    finally:
        for deployment in deployments:
            deployment.client.close()
            for process in reversed(deployment.processes):
                stop(process)
            delete_namespace(deployment.settings)
    report([d.figures for d in deployments], args.runs, args.threads)
    return 0


def start(settings: Settings, count: int, threads: int) -> Deployment:
    """The API and `count` workers for `settings`' namespace (not yet ready)."""
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "GRADWATCH_NAMESPACE": settings.namespace,
        "GRADWATCH_ENSEMBLE_MEMBERS": str(settings.ensemble_members),
        "PYTHONPATH": str(ROOT),
    }
    if threads:
        env |= {"TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": str(threads)}
    port = free_port()
    tag = f"w{count}m{settings.ensemble_members}"
    processes = [start_worker(env, f"{tag}-{number}") for number in range(count)]
    processes.append(start_api(env, port))
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0)
    return Deployment(settings, client, processes, Figures(count, settings.ensemble_members))


def time_interleaved(deployments: Sequence[Deployment], runs: int) -> None:
    """Each run times every deployment in turn, so a change in the machine's load
    (other processes) falls on all of them alike; idle workers take no CPU."""
    for run in range(runs):
        print(f"run {run + 1} of {runs}", flush=True)
        for deployment in deployments:
            figures = deployment.figures
            print(f" {figures.name}:", flush=True)
            for name, body in STUDIES.items():
                tutorial = name == "tutorial"
                sealed, complete = run_study(deployment.client, body, fetch_plots=tutorial)
                figures.sealed.setdefault(name, []).append(sealed)
                if tutorial:
                    figures.tutorial_complete.append(complete)


def warm_up(deployment: Deployment, most: int = 20) -> None:
    """Run both studies until, twice running, every child reused a compiled XLA graph.

    A warm worker has seen each architecture, alone and in a group: its first
    child of one loads TensorFlow (once) and compiles the graph later ones reuse.
    """
    client = deployment.client
    print(f"{deployment.figures.name}: warm-up studies (TensorFlow, XLA graphs)...", flush=True)
    in_a_row = 0
    for _ in range(most):
        timings = []
        for body in STUDIES.values():
            record = wait_until_finished(client, post(client, body))
            children = [c["id"] for config in record["configs"] for c in config["children"]]
            timings += [
                client.get(f"/v1/experiments/{child}/result").json()["timing"] for child in children
            ]
        warm = all(timing["graph"] == "xla" and timing["graph_reused"] for timing in timings)
        in_a_row = in_a_row + 1 if warm else 0
        if in_a_row == 2:
            return
    raise SystemExit(f"the workers did not all reuse XLA graphs within {most} warm-up rounds")


def post(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/v1/studies", json=body)
    if response.status_code != 202:
        raise SystemExit(f"POST /v1/studies answered {response.status_code}: {response.text}")
    study_id: str = response.json()["id"]
    return study_id


def wait_until_finished(client: httpx.Client, study_id: str) -> dict[str, Any]:
    """Follow the study's event stream to its final state; the record, checked succeeded."""
    url = f"/v1/studies/{study_id}/events"
    with client.stream("GET", url, timeout=STUDY_SECONDS) as stream:
        for _ in stream.iter_lines():
            pass  # the stream ends right after the final state event
    record: dict[str, Any] = client.get(f"/v1/studies/{study_id}").json()
    if record["status"] != "succeeded":
        raise SystemExit(f"study {study_id} ended {record['status']}: {record['progress']}")
    return record


def run_study(
    client: httpx.Client, body: dict[str, Any], *, fetch_plots: bool
) -> tuple[float, float]:
    """(seconds to the final state, seconds until the summary and plots are fetched)."""
    started = time.perf_counter()
    study_id = post(client, body)
    record = wait_until_finished(client, study_id)
    sealed = time.perf_counter() - started
    client.get(f"/v1/studies/{study_id}/summary").raise_for_status()
    if fetch_plots:
        for name in PLOTS:
            client.get(f"/v1/studies/{study_id}/plots/{name}.png").raise_for_status()
    complete = time.perf_counter() - started
    children = record["progress"]["children"]
    print(
        f"  study of {children:2d}: final state {sealed:6.3f} s"
        + (f", summary and {len(PLOTS)} PNGs fetched {complete:6.3f} s" if fetch_plots else ""),
        flush=True,
    )
    return sealed, complete


def start_worker(env: dict[str, str], number: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "--device", "cpu", "--concurrency", "1", "--loglevel", "INFO",
        "--without-mingle", "--without-gossip", "-n", f"bench{os.getpid()}-{number}@%h",
    ]  # fmt: skip
    log = LOG_DIR / f"gradwatch-bench-study-worker-{number}.log"
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def start_api(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "api.main:app", "--http", "api.head_deadline:HeadDeadline",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env)


def wait_until_ready(deployment: Deployment) -> None:
    queue = deployment.settings.queue_for(Device.CPU)
    workers = deployment.figures.workers
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in deployment.processes):
            raise SystemExit("a worker or the API exited while starting")
        try:
            ready = deployment.client.get("/readyz").json()
            if ready.get("live_workers", {}).get(queue, 0) >= workers:
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


# ------------------------------------------------------------------------ report


def report(results: Sequence[Figures], runs: int, threads: int) -> None:
    print()
    each = f"{threads} TensorFlow thread(s) each" if threads else "TensorFlow's default threads"
    print(f"comparison studies, warm workers ({each}), {runs} runs each: median (best); "
          f"load average {' '.join(f'{load:.2f}' for load in os.getloadavg())}")  # fmt: skip
    rows = [
        ("tutorial (3 children): final state", "tutorial"),
        ("seeds (12 children, 3 graphs): final state", "seeds"),
        ("shapes (12 children, 12 graphs): final state", "shapes"),
    ]
    width = max(len(figures.name) for figures in results) + 2
    print(f"  {'':<46}" + "".join(f"{figures.name:>{width}}" for figures in results))
    for label, name in rows:
        cells = [figures.sealed[name] for figures in results]
        print(
            f"  {label:<46}"
            + "".join(f"{f'{statistics.median(c):.3f} s ({min(c):.3f})':>{width}}" for c in cells)
        )
    complete = [figures.tutorial_complete for figures in results]
    print(
        f"  {'tutorial: summary + 4 PNGs fetched':<46}"
        + "".join(f"{f'{statistics.median(c):.3f} s ({min(c):.3f})':>{width}}" for c in complete)
    )
    median = {(f.workers, f.members): {n: statistics.median(v) for n, v in f.sealed.items()}
              for f in results}  # fmt: skip
    for members in sorted({f.members for f in results}, reverse=True):
        if (1, members) in median and (2, members) in median:
            one, two = median[1, members], median[2, members]
            for name in ("seeds", "shapes"):
                print(f"  2 workers over 1 on {name}, groups of {members}: "
                      f"{one[name] / two[name]:.2f}x (target ~1.8x)")  # fmt: skip
    for workers in sorted({f.workers for f in results}):
        grouped = [m for (w, m) in median if w == workers and m > 1]
        if grouped and (workers, 1) in median:
            gain = median[workers, 1]["seeds"] / median[workers, grouped[0]]["seeds"]
            print(f"  {workers} worker(s), seeds: groups of {grouped[0]} over each child alone: "
                  f"{gain:.2f}x")  # fmt: skip
    best = min(statistics.median(figures.tutorial_complete) for figures in results)
    verdict = "met" if best <= 3.0 else "NOT met"
    print(f"  tutorial study <= 3 s (summary and plots in hand): {verdict}")
    print(f"  worker logs: {LOG_DIR}/gradwatch-bench-study-worker-*.log")


if __name__ == "__main__":
    sys.exit(main())
