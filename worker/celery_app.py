"""The Celery app the workers run: `celery -A worker.celery_app worker --device cpu`.

Importing this module stays cheap and free of TensorFlow: Celery forks its pool
processes from the process that imports it, and TensorFlow is not fork-safe.
The pool process imports the engine on its first job and keeps it, with its
compiled graphs, for every later job (no max-tasks-per-child).

The broker, serializer and late-ack settings are the ones the API enqueues
with (`core.queue.celery_config`); this module adds what only a worker needs:
its own queue, and the threads beside the pool that beat, claim work from the
dispatcher (worker.claims) and reap lost workers' jobs.
"""

from __future__ import annotations

from celery import Celery

from core.queue.app import make_celery
from core.settings import get_settings
from worker.claims import connect_claims
from worker.device import add_device_option
from worker.heartbeat import connect_heartbeat, worker_is_live
from worker.reaper import connect_reaper


def create_app() -> Celery:
    """The worker's Celery app for the settings in the environment."""
    app = make_celery(get_settings(), main="gradwatch")
    app.conf.update(
        include=["worker.tasks", "worker.studies"],
        # One pool process per worker: TensorFlow already spreads one job over
        # every core, and each process would hold its own copy of the graphs.
        worker_concurrency=1,
        worker_disable_rate_limits=True,
        # Each worker also consumes a queue of its own, where the messages of the units
        # it claims from the dispatcher arrive (worker.claims).
        worker_direct=True,
    )
    add_device_option(app)
    connect_heartbeat()
    connect_claims(live=worker_is_live)
    connect_reaper()
    return app


app = create_app()
