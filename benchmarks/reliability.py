"""SIGKILL of a whole worker mid-job, repeated: does every job complete, and how fast?

Two production-shaped CPU workers (prefork, one pool process, each reaping) share
a namespace of their own. Each trial submits a job, waits until it has trained an
epoch, then SIGKILLs the process group of the worker running it (main process and
pool process together, as the OOM killer or a lost machine would), times how long
until the job runs again on the other worker and until it succeeds, checks it was
delivered exactly twice and ran on the survivor, and starts a replacement worker.

Settings are production's (heartbeat 5 s, lost after 30 s of silence, reaping
every 10 s) unless `--fast` (0.5 s, 3 s, 0.5 s), which the tests use.

Run (needs Redis at REDIS_URL, default 127.0.0.1:6379; deletes its keys after):

    .venv/bin/python benchmarks/reliability.py [--trials 10] [--fast]

Prints, e.g.: SIGKILL of a worker mid-job, 10 trials: 10 completed, median recovery 38.2 s
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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
from core.settings import Settings
from core.store.records import JobRecord
from core.store.stores import JobStore, plans_from_settings

FAST = {"heartbeat_seconds": 0.5, "worker_silent_seconds": 3.0, "reap_interval_seconds": 0.5}
JOB_SECONDS = 600.0
# About 4 s of training on a warm worker (XLA): a wider net than the tutorial's on
# 20,000 points, so that a kill after the first epoch lands mid-run.
SPEC = {
    "seed": 7,
    "dataset": {"n_samples": 20_000},
    "model": {"hidden_layers": [32] * 5},
    "training": {"epochs": 200, "batch_size": 100},
}


@dataclass
class Trial:
    """One kill: seconds until the job ran again and until it ended, and how it ended."""

    recovered: float
    finished: float
    record: JobRecord
    survivor: str

    @property
    def completed(self) -> bool:
        """Succeeded on the surviving worker, delivered exactly twice."""
        worker = self.record.worker or {}
        return (
            self.record.status is JobStatus.SUCCEEDED
            and self.record.deliveries == 2
            and worker.get("hostname") == self.survivor
        )


class Bench:
    """The namespace, its store, a Celery client and the live workers."""

    def __init__(self, settings: Settings, env: dict[str, str], logs: Path) -> None:
        self.settings = settings
        self.env = env
        self.logs = logs
        client = redis.Redis.from_url(settings.redis_url)
        self.store = JobStore(client, plans_from_settings(settings))
        self.workers: dict[str, Process] = {}
        self.started = 0

    def add_worker(self) -> None:
        self.started += 1
        hostname = f"{self.settings.namespace}-{self.started}@reliability"
        worker = start_worker(self.env, hostname, self.logs)
        self.workers[hostname] = worker
        wait_for_worker(self.store, self.settings, worker, hostname)

    def submit(self) -> str:
        spec = ExperimentSpec.model_validate(SPEC)
        queue = self.settings.queue_for(Device.CPU)
        # Made as the API makes it: a worker claims it from the dispatcher.
        return self.store.create(spec=spec, queue=queue).record.id

    def wait(self, job_id: str, condition: str) -> JobRecord:
        tests = {
            "training": lambda r: r.status is JobStatus.RUNNING and r.epoch >= 1,
            "again": lambda r: r.deliveries >= 2 and r.status is not JobStatus.QUEUED,
            "finished": lambda r: r.status in FINISHED,
        }
        found: list[JobRecord] = []

        def holds() -> bool:
            record = self.store.get(job_id)
            assert record is not None, f"job {job_id} vanished"
            found[:] = [record]
            return bool(tests[condition](record))

        wait_until(holds, timeout=JOB_SECONDS, what=f"job {job_id}: {condition}")
        return found[0]

    def trial(self) -> Trial:
        while len(self.workers) < 2:
            self.add_worker()
        job_id = self.submit()
        running = self.wait(job_id, "training")
        doomed = str((running.worker or {})["hostname"])
        self.workers.pop(doomed).kill()
        killed = time.monotonic()
        self.wait(job_id, "again")
        recovered = time.monotonic() - killed
        record = self.wait(job_id, "finished")
        (survivor,) = self.workers
        return Trial(recovered, time.monotonic() - killed, record, survivor)

    def close(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.store.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="kills (default 10)")
    parser.add_argument("--fast", action="store_true", help="reap in seconds, as the tests do")
    args = parser.parse_args(argv)
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    overrides = FAST if args.fast else {}
    settings = Settings(namespace=f"gwreliability{os.getpid()}", redis_url=redis_url)
    settings = settings.model_copy(update=overrides)
    env = service_env(
        settings, **{f"GRADWATCH_{k.upper()}": f"{v:g}" for k, v in overrides.items()}
    )
    logs = Path(tempfile.mkdtemp(prefix="gradwatch-reliability-"))
    bench = Bench(settings, env, logs)
    trials: list[Trial] = []
    try:
        for number in range(1, args.trials + 1):
            trials.append(bench.trial())
            print(describe(number, trials[-1]), flush=True)
    finally:
        bench.close()
        delete_namespace(settings)
    print(summary(trials, settings))
    print(f"worker logs: {logs}")
    return 0 if all(trial.completed for trial in trials) else 1


def describe(number: int, trial: Trial) -> str:
    record = trial.record
    return (
        f"trial {number}: {record.status.value}, {record.deliveries} deliveries, "
        f"running again after {trial.recovered:.1f} s, finished after {trial.finished:.1f} s"
    )


def summary(trials: Sequence[Trial], settings: Settings) -> str:
    completed = sum(trial.completed for trial in trials)
    recovery = statistics.median(trial.recovered for trial in trials)
    finished = statistics.median(trial.finished for trial in trials)
    return (
        f"SIGKILL of a worker mid-job, {len(trials)} trials: {completed} completed, "
        f"median recovery {recovery:.1f} s (max {max(t.recovered for t in trials):.1f} s), "
        f"median to success {finished:.1f} s; heartbeat {settings.heartbeat_seconds:g} s, "
        f"lost after {settings.worker_silent_seconds:g} s, reaping every "
        f"{settings.reap_interval_seconds:g} s"
    )


if __name__ == "__main__":
    raise SystemExit(main())
