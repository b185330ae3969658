"""`--device`: the queue a worker consumes, and its heartbeat there while it runs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import redis

from core.experiment.spec import Device
from core.settings import Settings
from tests.conftest import ROOT, WORKER_START_SECONDS, stop_process, wait_for
from tests.worker.conftest import make_deployment


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


def test_a_gpu_worker_consumes_the_gpu_queue_and_leaves_it_on_shutdown(
    new_namespace: Callable[[], Settings], service_env: dict[str, str], redis_client: redis.Redis
) -> None:
    settings = new_namespace()
    store = make_deployment(settings, redis_client).store
    gpu_queue, cpu_queue = settings.queue_for(Device.GPU), settings.queue_for(Device.CPU)
    hostname = f"{settings.namespace}@device"
    process = start_worker(settings, service_env, "--device", "gpu")
    try:
        wait_for(
            lambda: hostname in store.live_workers(queue=gpu_queue),
            timeout=WORKER_START_SECONDS,
            what="the gpu worker's heartbeat",
        )
        assert store.live_workers(queue=cpu_queue) == []
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
