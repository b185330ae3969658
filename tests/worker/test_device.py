"""`--device`: the queue a worker takes work from, and its heartbeat there while it runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import redis

from core.experiment.jobs import JobStatus
from core.experiment.spec import Device, ExperimentSpec
from core.settings import Settings
from tests.conftest import ROOT, WORKER_START_SECONDS, stop_process, wait_for
from tests.worker.conftest import QUICK_SPEC, make_deployment


def start_worker(
    settings: Settings, service_env: dict[str, str], *options: str
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "-n", f"{settings.namespace}@device", "--loglevel", "WARNING",
        "--without-mingle", "--without-gossip", *options,
    ]  # fmt: skip
    env = {**service_env, "GRADWATCH_NAMESPACE": settings.namespace}
    return subprocess.Popen(command, cwd=ROOT, env=env)


def test_a_gpu_worker_trains_the_gpu_queues_jobs_and_leaves_it_on_shutdown(
    new_namespace: Callable[[], Settings], service_env: dict[str, str], redis_client: redis.Redis
) -> None:
    settings = new_namespace()
    store = make_deployment(settings, redis_client).store
    gpu_queue, cpu_queue = settings.queue_for(Device.GPU), settings.queue_for(Device.CPU)
    hostname = f"{settings.namespace}@device"
    cpu_job = store.create(spec=ExperimentSpec.model_validate(QUICK_SPEC), queue=cpu_queue)
    process = start_worker(settings, service_env, "--device", "gpu")
    try:
        wait_for(
            lambda: hostname in store.live_workers(queue=gpu_queue),
            timeout=WORKER_START_SECONDS,
            what="the gpu worker's heartbeat",
        )
        assert store.live_workers(queue=cpu_queue) == []
        # It claims from the gpu queue's dispatcher (training on this machine's CPU).
        spec = ExperimentSpec.model_validate({**QUICK_SPEC, "device": "gpu"})
        job_id = store.create(spec=spec, queue=gpu_queue).record.id
        wait_for(
            lambda: getattr(store.get(job_id), "status", None) is JobStatus.SUCCEEDED,
            timeout=WORKER_START_SECONDS,
            what="the gpu job",
        )
        record = store.get(job_id)
        assert record is not None and record.worker is not None
        assert record.worker["hostname"] == hostname  # its device: what the engine found
        assert store.waiting(queue=cpu_queue) == [cpu_job.record.id]  # not its queue
    finally:
        stop_process(process, grace=30.0)

    assert process.returncode == 0
    assert store.live_workers(queue=gpu_queue) == []  # a clean stop leaves at once


def test_explicit_queues_win_over_the_device(
    new_namespace: Callable[[], Settings], service_env: dict[str, str], redis_client: redis.Redis
) -> None:
    settings = new_namespace()
    store = make_deployment(settings, redis_client).store
    queue = f"{settings.namespace}.special"
    process = start_worker(settings, service_env, "--device", "cpu", "-Q", queue)
    try:
        wait_for(
            lambda: bool(store.live_workers(queue=queue)),
            timeout=WORKER_START_SECONDS,
            what="the worker's heartbeat on its -Q queue",
        )
        assert store.live_workers(queue=settings.queue_for(Device.CPU)) == []
    finally:
        stop_process(process, grace=30.0)
