"""The worker's `--device cpu|gpu` option: which queue it consumes and how it trains.

`celery -A worker.celery_app worker --device gpu` consumes the deployment's gpu
queue (`Settings.queue_for`, namespaced) unless `-Q` names queues itself. The
choice is handed to the pool processes in the environment, where the engine is
loaded: a gpu worker turns on GPU memory growth, a cpu worker hides any GPU so
a cpu job never lands on one.
"""

from __future__ import annotations

import os
from typing import Any

import click
from celery import Celery
from celery.signals import celeryd_init
from celery.utils import worker_direct

from core.experiment.spec import Device
from core.settings import get_settings

DEVICE_ENV = "GRADWATCH_WORKER_DEVICE"


def add_device_option(app: Celery) -> None:
    """Add `--device` to `app`'s worker command."""
    app.user_options["worker"].add(
        click.Option(
            ["--device"],
            type=click.Choice([device.value for device in Device]),
            default=Device.CPU.value,
            show_default=True,
            help="The device this worker trains on; it consumes that device's queue.",
        )
    )


def work_queues(app: Celery, hostname: str) -> list[str]:
    """The queues worker `hostname` takes work from (its device's, or those `-Q` named):
    every queue it consumes but its own, Celery's worker-direct queue, where only the
    messages of the units it claimed arrive (worker.claims)."""
    own = worker_direct(hostname).name
    return sorted(queue for queue in app.amqp.queues.consume_from if queue != own)


def worker_device() -> Device:
    """The device this worker process was started for (cpu unless told otherwise)."""
    return Device(os.environ.get(DEVICE_ENV, Device.CPU.value))


@celeryd_init.connect
def _select_device(
    sender: str, instance: Any, conf: Any, options: dict[str, Any], **_: Any
) -> None:
    """Before the pool forks: pick the queue and tell the pool processes the device."""
    device = Device(options.get("device") or Device.CPU.value)
    os.environ[DEVICE_ENV] = device.value
    if device is Device.CPU:
        # An empty list hides every GPU from TensorFlow (and CUDA).
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    if not options.get("queues"):
        instance.app.amqp.queues.select([get_settings().queue_for(device)])
