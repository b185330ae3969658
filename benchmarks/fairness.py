"""Two owners, one flooding with a study: how long does the other one's small job wait?

Two production-shaped CPU workers (prefork, one pool process each) share a
namespace. Each run, owner alice queues a study of 64 children (16 shapes x 4
activations: 64 graphs, nothing trained side by side), then owner bob queues one
5-epoch job; the figure is bob's job from its creation to `succeeded` (the store's
own times), and how many of alice's children started before it. Then the rest of
the study is cancelled and the workers drain.

Two ways, alternating run by run so that the machine's load falls on both alike:

  - dispatcher: the jobs made as the API makes them, on the dispatcher, which
    serves the owner with the fewest jobs running first (core.store.dispatch);
  - FIFO: the way jobs were sent before, one Celery message each in the order they
    were made, straight to the workers' device queue, which the workers still take,
    first in first out.

Run (needs Redis at REDIS_URL, default 127.0.0.1:6379; deletes its keys after):

    .venv/bin/python benchmarks/fairness.py [--runs 3] [--children 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.service_processes import (
    Process,
    delete_namespace,
    service_env,
    start_worker,
    wait_for_worker,
    wait_until,
)
from core.experiment.jobs import FINISHED, JobStatus
from core.experiment.spec import Device, ExperimentSpec
from core.experiment.studies import StudyRequest, expand_study
from core.queue.app import make_celery, send_dispatch
from core.settings import Settings
from core.store.records import JobRecord
from core.store.stores import StudyStore, plans_from_settings

WORKERS = 2
JOB_SECONDS = 600.0
BOBS: dict[str, Any] = {"seed": 1, "training": {"epochs": 5}}
ACTIVATIONS = ["sigmoid", "tanh", "relu", "elu"]


def flood(children: int) -> dict[str, Any]:
    """A study of `children` different networks (depth x width x activation)."""
    shapes = [[width] * depth for depth in (2, 3, 4, 5) for width in (4, 5, 6, 7)]
    shapes = shapes[: max(1, children // len(ACTIVATIONS))]
    return {
        "base": {"seed": 1},
        "axes": {"model.hidden_layers": shapes, "model.activation": ACTIVATIONS},
    }


@dataclass
class Figures:
    """Bob's seconds to succeeded, and alice's children started before it, per run."""

    latency: list[float] = field(default_factory=list)
    overtaken: list[int] = field(default_factory=list)


class Bench:
    """The namespace, its store, a Celery client and two live workers."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings = settings
        self.queue = settings.queue_for(Device.CPU)
        client = redis.Redis.from_url(settings.redis_url)
        self.store = StudyStore(client, plans_from_settings(settings))
        self.celery = make_celery(settings, main="gradwatch-bench")
        env = service_env(settings)
        self.workers: list[Process] = []
        for index in range(WORKERS):
            hostname = f"{settings.namespace}-{index}@fairness"
            worker = start_worker(env, hostname, logs)
            self.workers.append(worker)
            wait_for_worker(self.store, settings, worker, hostname)

    def run(self, children: int, *, fifo: bool) -> tuple[float, int]:
        """One run: alice's flood, then bob's job; bob's seconds and how many of alice's
        children started before his."""
        plan = expand_study(StudyRequest.model_validate(flood(children)))
        # FIFO: made where no worker claims them, then sent in order to the device queue.
        queue = f"{self.queue}.fifo" if fifo else self.queue
        study = self.store.create_study(
            plan=plan, queues=[queue] * len(plan.children), plots=[], owner="alice", members=1
        )
        spec = ExperimentSpec.model_validate(BOBS)
        bob = self.store.create(spec=spec, queue=queue, owner="bob").record.id
        if fifo:
            for job_id in [*study.child_ids, bob]:
                self.send(job_id)
        record = self.wait(bob)
        assert record.status is JobStatus.SUCCEEDED, record.error
        assert record.started_at is not None and record.finished_at is not None
        self.store.cancel(study.id)
        children_records = [self.wait(child) for child in study.child_ids]
        before = sum(
            1 for child in children_records if (child.started_at or 1e20) < record.started_at
        )
        return record.finished_at - record.created_at, before

    def send(self, job_id: str) -> None:
        """Send the job's first message straight to the device queue, as the API once did."""
        task = self.store.client.hget(self.store.plans.keys.job(job_id).record, "task")
        send_dispatch(
            self.celery,
            job_id=job_id,
            queue=self.queue,
            dispatch=0,
            task=json.loads(task) if task else None,  # type: ignore[arg-type]
        )

    def wait(self, job_id: str) -> JobRecord:
        found: list[JobRecord] = []

        def ended() -> bool:
            record = self.store.get(job_id)
            assert record is not None, f"job {job_id} vanished"
            found[:] = [record]
            return record.status in FINISHED

        wait_until(ended, timeout=JOB_SECONDS, what=f"job {job_id}")
        return found[0]

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.celery.close()
        self.store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each way")
    parser.add_argument("--children", type=int, default=64, help="children of alice's study")
    args = parser.parse_args(argv)
    settings = Settings(
        namespace=f"gwbenchfair{os.getpid()}",
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    logs = Path(tempfile.mkdtemp(prefix="gw-fairness-"))
    bench = Bench(settings, logs)
    ways = {"dispatcher": Figures(), "FIFO": Figures()}
    try:
        bench.run(8, fifo=False)  # warm-up: the engine's first traces and plots
        for run in range(args.runs):
            for way, figures in ways.items():
                seconds, before = bench.run(args.children, fifo=way == "FIFO")
                figures.latency.append(seconds)
                figures.overtaken.append(before)
                print(f"run {run + 1}, {way}: bob's job {seconds:.2f} s, after {before} of alice's")
    finally:
        bench.close()
        delete_namespace(settings)
    print(f"\n{WORKERS} workers; alice's study of {args.children}, then bob's 5-epoch job "
          f"(median of {args.runs} runs):")  # fmt: skip
    print("| | bob's job, creation to succeeded | alice's children started before it |")
    print("|---|---:|---:|")
    for way, figures in ways.items():
        print(
            f"| {way} | {statistics.median(figures.latency):.2f} s "
            f"| {statistics.median(figures.overtaken):g} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
