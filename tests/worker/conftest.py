"""Worker fixtures: Celery clients, job helpers and prefork workers of their own.

The session's `worker_process` (tests/conftest.py) serves most tests. The
tests of what only the production pool does (time limits, a lost pool process,
the main process staying free of TensorFlow, a worker killed outright) start
prefork workers here, each in a namespace of its own below the session's so
that no other worker takes their jobs; the session cleanup deletes those keys.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from core.experiment.jobs import JobStatus
from core.experiment.spec import Device, ExperimentSpec
from core.queue.app import make_celery
from core.queue.tasks import TRAIN_TASK
from core.settings import Settings
from core.store.records import JobRecord
from core.store.stores import JobStore, plans_from_settings
from tests.conftest import ROOT, WORKER_START_SECONDS, stop_process, wait_for

JOB_SECONDS = 180.0  # a first job in a fresh pool process loads TensorFlow and compiles

# The tutorial's architecture throughout: every worker compiles it once, then reuses it.
QUICK_SPEC: dict[str, Any] = {"seed": 7, "training": {"epochs": 3}}


@dataclass
class Deployment:
    """A namespace's store, settings and Celery client: what an API process would hold."""

    settings: Settings
    store: JobStore
    celery: Celery

    @property
    def queue(self) -> str:
        return self.settings.queue_for(Device.CPU)

    @property
    def parking(self) -> str:
        """A queue no worker serves: a job made there waits until a test sends its message."""
        return f"{self.settings.namespace}.parked"

    def create(self, spec: dict[str, Any]) -> str:
        """A queued job waiting on the dispatcher, as the API makes one: a worker claims
        and trains it; its id."""
        created = self.store.create(spec=ExperimentSpec.model_validate(spec), queue=self.queue)
        return created.record.id

    def park(self, spec: dict[str, Any]) -> str:
        """A queued job that no worker claims (it waits on a queue none serves), for a test
        to change before it sends the job's message itself (`enqueue`); its id."""
        created = self.store.create(spec=ExperimentSpec.model_validate(spec), queue=self.parking)
        return created.record.id

    def enqueue(self, job_id: str, **options: Any) -> None:
        """Send the job's message straight to the workers' queue (as a client of an earlier
        release did), with `options` as for send_task (per-message time limits)."""
        self.celery.send_task(
            TRAIN_TASK, kwargs={"job_id": job_id}, queue=self.queue, task_id=job_id, **options
        )

    def submit(self, spec: dict[str, Any], **options: Any) -> str:
        """A job that runs: made on the dispatcher, or with `options` (send_task's) parked
        and sent with them; its id."""
        if not options:
            return self.create(spec)
        job_id = self.park(spec)
        self.enqueue(job_id, **options)
        return job_id

    def wait_for_status(
        self, job_id: str, statuses: Collection[JobStatus], *, timeout: float = JOB_SECONDS
    ) -> JobRecord:
        """The job's record once its status is one of `statuses`."""
        found: list[JobRecord] = []

        def reached() -> bool:
            record = self.store.get(job_id)
            assert record is not None, f"job {job_id} vanished"
            found[:] = [record]
            return record.status in statuses

        wait_for(reached, timeout=timeout, what=f"job {job_id} to reach {sorted(statuses)}")
        return found[0]

    def wait_until_training(self, job_id: str) -> JobRecord:
        """The record once the job has finished its first epoch."""
        found: list[JobRecord] = []

        def training() -> bool:
            record = self.store.get(job_id)
            assert record is not None
            assert not record.status.finished, f"job ended early: {record.to_public()}"
            found[:] = [record]
            return record.status is JobStatus.RUNNING and record.epoch >= 1

        wait_for(training, timeout=JOB_SECONDS, what=f"job {job_id} to train")
        return found[0]


def make_deployment(settings: Settings, client: redis.Redis) -> Deployment:
    store = JobStore(client, plans_from_settings(settings))
    return Deployment(settings, store, make_celery(settings))


@pytest.fixture(scope="session")
def deployment(settings: Settings, redis_client: redis.Redis) -> Iterator[Deployment]:
    """The session namespace, served by the session's `worker_process`."""
    deployment = make_deployment(settings, redis_client)
    yield deployment
    deployment.celery.close()


@dataclass
class PreforkWorker:
    """A production-shaped worker (prefork, one pool process) on its own namespace."""

    deployment: Deployment
    hostname: str
    process: subprocess.Popen[bytes]

    def kill_group(self) -> None:
        """SIGKILL the main process and its pool process together, as a crash or OOM would."""
        import os
        import signal

        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


_namespaces = itertools.count(1)


@pytest.fixture(scope="session")
def new_namespace(settings: Settings) -> Callable[[], Settings]:
    """Settings for a fresh namespace under the session's (cleaned up with it)."""

    def make() -> Settings:
        namespace = f"{settings.namespace}-w{next(_namespaces)}"
        return settings.model_copy(update={"namespace": namespace})

    return make


@pytest.fixture(scope="session")
def start_prefork_worker(
    service_env: dict[str, str], redis_client: redis.Redis
) -> Iterator[Callable[..., PreforkWorker]]:
    """Start `celery -A worker.celery_app worker --device cpu` (prefork) for a namespace
    (`app`: another app module, such as tests.worker.fault_app)."""
    started: list[PreforkWorker] = []

    def start(
        settings: Settings,
        *,
        hostname: str = "",
        app: str = "worker.celery_app",
        **environment: str,
    ) -> PreforkWorker:
        deployment = make_deployment(settings, redis_client)
        hostname = hostname or f"{settings.namespace}@prefork"
        env = {**service_env, "GRADWATCH_NAMESPACE": settings.namespace, **environment}
        command = [
            sys.executable, "-m", "celery", "-A", app, "worker",
            "--device", "cpu", "--concurrency", "1", "-n", hostname,
            "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
        ]  # fmt: skip
        # Its own process group, so a test can kill the worker with its pool process.
        process = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
        worker = PreforkWorker(deployment, hostname, process)
        started.append(worker)

        def beating() -> bool:
            if process.poll() is not None:
                pytest.fail(f"the prefork worker exited with {process.returncode}")
            return hostname in deployment.store.live_workers(queue=deployment.queue)

        wait_for(beating, timeout=WORKER_START_SECONDS, what="the prefork worker's heartbeat")
        return worker

    yield start
    for worker in started:
        stop_process(worker.process, grace=30.0)
        worker.deployment.celery.close()


@pytest.fixture(scope="session")
def prefork_worker(
    start_prefork_worker: Callable[..., PreforkWorker], new_namespace: Callable[[], Settings]
) -> PreforkWorker:
    """One prefork worker for the session's prefork tests, allowing 2 deliveries per job."""
    settings = new_namespace().model_copy(update={"max_deliveries": 2})
    return start_prefork_worker(settings, GRADWATCH_MAX_DELIVERIES="2")


def pool_processes(worker: PreforkWorker) -> list[int]:
    """Pids of the worker's pool processes (children of its main process)."""
    import psutil

    return [child.pid for child in psutil.Process(worker.process.pid).children()]


def loads_tensorflow(pid: int) -> bool:
    """True when process `pid` has TensorFlow's native library mapped."""
    with open(f"/proc/{pid}/maps") as maps:
        return any("libtensorflow" in line for line in maps)


# ------------------------------------------------------------- fast-reaping pair

# Reaping in seconds rather than the production minute.
FAST_REAPING = {
    "GRADWATCH_HEARTBEAT_SECONDS": "0.5",
    "GRADWATCH_WORKER_SILENT_SECONDS": "3",
    "GRADWATCH_REAP_INTERVAL_SECONDS": "0.5",
    "GRADWATCH_MAX_DELIVERIES": "2",
}
# Silence, one reap round, the re-sent message and mark_running, with room for a
# loaded 2-core machine: the bound a recovered job must start again within.
RECOVERY_SECONDS = 30.0


@dataclass
class Workers:
    """Prefork workers of one namespace, started and replaced on demand.

    Each runs tests.worker.fault_app with a faults folder of its own (`faults`), empty
    unless a test puts a fault there.
    """

    settings: Settings
    start_worker: Callable[..., PreforkWorker]
    folder: Path
    live: dict[str, PreforkWorker] = field(default_factory=dict)
    started: int = 0

    @property
    def deployment(self) -> Deployment:
        return next(iter(self.live.values())).deployment

    def faults(self, worker: PreforkWorker) -> Path:
        """The folder where a test puts `worker`'s faults (see tests.worker.fault_app)."""
        return self.folder / worker.hostname

    def add(self) -> PreforkWorker:
        self.started += 1
        hostname = f"{self.settings.namespace}-{self.started}@loss"
        faults = self.folder / hostname
        faults.mkdir(parents=True)
        worker = self.start_worker(
            self.settings,
            hostname=hostname,
            app="tests.worker.fault_app",
            GRADWATCH_TEST_FAULTS=str(faults),
            **FAST_REAPING,
        )
        self.live[hostname] = worker
        return worker

    def ensure(self, count: int) -> None:
        """Start workers until `count` are live, with no fault left in their folders."""
        for worker in self.live.values():
            for fault in self.faults(worker).iterdir():
                fault.unlink()
        while len(self.live) < count:
            self.add()

    def running(self, job_id: str, delivery: int) -> tuple[PreforkWorker, JobRecord]:
        """The worker running delivery `delivery` of the job, once it runs."""
        record = wait_for_record(
            self.deployment,
            job_id,
            lambda r: r.status is JobStatus.RUNNING and r.deliveries == delivery,
            what=f"delivery {delivery} of job {job_id} to run",
        )
        assert record.worker is not None
        return self.live[record.worker["hostname"]], record

    def kill(self, worker: PreforkWorker) -> None:
        worker.kill_group()
        del self.live[worker.hostname]


def wait_for_record(
    deployment: Deployment,
    job_id: str,
    condition: Callable[[JobRecord], bool],
    *,
    what: str,
    timeout: float = JOB_SECONDS,
) -> JobRecord:
    """The job's record once `condition` holds for it."""
    found: list[JobRecord] = []

    def holds() -> bool:
        record = deployment.store.get(job_id)
        assert record is not None, f"job {job_id} vanished"
        found[:] = [record]
        return condition(record)

    wait_for(holds, timeout=timeout, what=what)
    return found[0]


@pytest.fixture(scope="session")
def reaping_workers(
    start_prefork_worker: Callable[..., PreforkWorker],
    new_namespace: Callable[[], Settings],
    tmp_path_factory: pytest.TempPathFactory,
) -> Workers:
    """Fast-reaping prefork workers on a namespace of their own, shared by the modules
    that lose workers, messages or the store."""
    settings = new_namespace().model_copy(
        update={"max_deliveries": 2, "worker_silent_seconds": 3.0, "heartbeat_seconds": 0.5}
    )
    return Workers(settings, start_prefork_worker, tmp_path_factory.mktemp("faults"))


@pytest.fixture
def workers(reaping_workers: Workers) -> Workers:
    """The fast-reaping workers, two of them live and free of faults."""
    reaping_workers.ensure(2)
    return reaping_workers
