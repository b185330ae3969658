"""The store as its callers hold it: every family of plans, run over a connection.

Two front ends share one implementation. `JobStore` (redis-py, blocking) serves
the worker, tests and tools; `AsyncJobStore` (asyncio, one auto-pipelined
connection) serves the API. Both expose every operation, job and study, with
the same signatures (async ones are awaited), each made by one of a single pair
of wrappers from the plan that does it (core.store.plans; the families' modules
list their operations). `StudyStore` adds a study cancelled or deleted with its
children. Every connection is opened with the same timeouts
(core.store.connections).

Example:
    >>> store = JobStore.from_settings(get_settings())
    >>> record = store.mark_running(job_id, worker=WorkerInfo.from_device_info(host, info),
    ...                             max_deliveries=3)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

import redis
import redis.asyncio
import redis.exceptions

from core.settings import Settings
from core.store.admission import AdmissionPlans
from core.store.connections import asyncio_client, blocking_client, multiplexed_client
from core.store.datasets import DatasetPlans
from core.store.dispatch import DispatchPlans
from core.store.keys import Keys
from core.store.metrics import MetricsPlans
from core.store.multiplex import MultiplexedRedis
from core.store.outbox import OutboxPlans
from core.store.plans import Arg, Plan
from core.store.scripts import LuaScript
from core.store.scripts.datasets import DATASET_SCRIPTS
from core.store.scripts.dispatch import DISPATCH_SCRIPTS
from core.store.scripts.jobs import JOB_SCRIPTS
from core.store.scripts.studies import STUDY_SCRIPTS
from core.store.scripts.workers import WORKER_SCRIPTS
from core.store.studies import StudyCancel, StudyPlans
from core.store.workers import WorkerPlans

T = TypeVar("T")
P = ParamSpec("P")

SCRIPTS: tuple[LuaScript, ...] = (
    *JOB_SCRIPTS,
    *WORKER_SCRIPTS,
    *STUDY_SCRIPTS,
    *DISPATCH_SCRIPTS,
    *DATASET_SCRIPTS,
)


class StorePlans(
    WorkerPlans,
    OutboxPlans,
    DispatchPlans,
    MetricsPlans,
    AdmissionPlans,
    StudyPlans,
    DatasetPlans,
):
    """Every operation of the store, job, study and dataset, as plans."""


def plans_from_settings(settings: Settings) -> StorePlans:
    """The plans for `settings`' namespace, TTLs and live-worker window (a study lives
    as long as a job)."""
    return StorePlans(
        Keys(settings.namespace),
        job_ttl_seconds=settings.job_ttl_seconds,
        idempotency_ttl_seconds=settings.idempotency_ttl_seconds,
        live_worker_seconds=settings.worker_silent_seconds,
        render_cache_bytes=settings.render_cache_megabytes * 1024 * 1024,
    )


def _sync(
    build: Callable[Concatenate[StorePlans, P], Plan[T]],
) -> Callable[Concatenate[JobStore, P], T]:
    """The blocking operation that runs the plan `build` makes."""

    def operation(self: JobStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._run(build(self.plans, *args, **kwargs))

    operation.__name__ = build.__name__
    operation.__doc__ = build.__doc__
    return operation


def _async(
    build: Callable[Concatenate[StorePlans, P], Plan[T]],
) -> Callable[Concatenate[AsyncJobStore, P], Coroutine[Any, Any, T]]:
    """The asyncio operation that runs the plan `build` makes."""

    async def operation(self: AsyncJobStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._run(build(self.plans, *args, **kwargs))

    operation.__name__ = build.__name__
    operation.__doc__ = build.__doc__
    return operation


def _sha1(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


class JobStore:
    """Every operation of the store, job and study, over a blocking redis-py client
    (worker, tests, tools)."""

    def __init__(self, client: redis.Redis, plans: StorePlans) -> None:
        self.client = client
        self.plans = plans
        self._scripts = {script.name: client.register_script(script.source) for script in SCRIPTS}

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """A store on `settings.redis_url` for `settings.namespace`."""
        return cls(blocking_client(settings.redis_url), plans_from_settings(settings))

    def close(self) -> None:
        self.client.close()

    def _run(self, plan: Plan[T]) -> T:
        while True:
            outcome = plan.decode(self._send(plan))
            if not isinstance(outcome, Plan):
                return outcome
            plan = outcome

    def _send(self, plan: Plan[Any]) -> Any:
        if plan.script is not None:
            return self._scripts[plan.script.name](keys=plan.keys, args=plan.args)
        if len(plan.commands) == 1 and not plan.atomic:
            return [self.client.execute_command(*plan.commands[0])]
        pipeline = self.client.pipeline(transaction=plan.atomic)
        for command in plan.commands:
            pipeline.execute_command(*command)
        return pipeline.execute()

    create = _sync(StorePlans.create)
    get = _sync(StorePlans.get)
    get_owned = _sync(StorePlans.get_owned)
    owner_of = _sync(StorePlans.owner_of)
    admit = _sync(StorePlans.admit)
    take_render = _sync(StorePlans.take_render)
    mark_running = _sync(StorePlans.mark_running)
    set_worker = _sync(StorePlans.set_worker)
    note_interrupted = _sync(StorePlans.note_interrupted)
    set_progress = _sync(StorePlans.set_progress)
    is_cancel_requested = _sync(StorePlans.is_cancel_requested)
    mark_succeeded = _sync(StorePlans.mark_succeeded)
    mark_failed = _sync(StorePlans.mark_failed)
    mark_cancelled = _sync(StorePlans.mark_cancelled)
    request_cancel = _sync(StorePlans.request_cancel)
    delete = _sync(StorePlans.delete)
    list_jobs = _sync(StorePlans.list_jobs)
    prune_expired = _sync(StorePlans.prune_expired)
    get_result = _sync(StorePlans.get_result)
    get_arrays = _sync(StorePlans.get_arrays)
    get_plot = _sync(StorePlans.get_plot)
    put_plot = _sync(StorePlans.put_plot)
    read_events = _sync(StorePlans.read_events)
    record_heartbeat = _sync(StorePlans.record_heartbeat)
    forget_worker = _sync(StorePlans.forget_worker)
    live_workers = _sync(StorePlans.live_workers)
    record_worker_jobs = _sync(StorePlans.record_worker_jobs)
    running_jobs = _sync(StorePlans.running_jobs)
    requeue_lost = _sync(StorePlans.requeue_lost)
    lost_workers = _sync(StorePlans.lost_workers)
    requeue_held = _sync(StorePlans.requeue_held)
    forget_report = _sync(StorePlans.forget_report)
    unsent_dispatches = _sync(StorePlans.unsent_dispatches)
    redispatch = _sync(StorePlans.redispatch)
    confirm_dispatch = _sync(StorePlans.confirm_dispatch)
    unconfirm_dispatch = _sync(StorePlans.unconfirm_dispatch)
    claim = _sync(StorePlans.claim)
    wait_for_work = _sync(StorePlans.wait_for_work)
    forget_idle = _sync(StorePlans.forget_idle)
    waiting = _sync(StorePlans.waiting)
    any_waiting = _sync(StorePlans.any_waiting)
    metrics = _sync(StorePlans.metrics)
    ping = _sync(StorePlans.ping)
    create_study = _sync(StorePlans.create_study)
    get_study = _sync(StorePlans.get_study)
    list_studies = _sync(StorePlans.list_studies)
    cancel_study = _sync(StorePlans.cancel_study)
    delete_study = _sync(StorePlans.delete_study)
    get_study_plot = _sync(StorePlans.get_study_plot)
    put_study_plot = _sync(StorePlans.put_study_plot)
    get_study_series = _sync(StorePlans.get_study_series)
    put_study_series = _sync(StorePlans.put_study_series)
    read_study_events = _sync(StorePlans.read_study_events)
    claim_study_drawing = _sync(StorePlans.claim_study_drawing)
    study_owner = _sync(StorePlans.study_owner)
    seal_study = _sync(StorePlans.seal_study)
    link_remedy_study = _sync(StorePlans.link_remedy_study)
    put_dataset = _sync(StorePlans.put_dataset)
    get_dataset = _sync(StorePlans.get_dataset)
    list_datasets = _sync(StorePlans.list_datasets)
    dataset_data = _sync(StorePlans.dataset_data)
    use_dataset = _sync(StorePlans.use_dataset)
    delete_dataset = _sync(StorePlans.delete_dataset)


class AsyncJobStore:
    """Every operation of the store, job and study, for asyncio (the API).

    Commands share one auto-pipelined connection (`MultiplexedRedis`); only blocking
    reads (an event stream waiting for its next entry) take a pooled redis.asyncio
    connection of their own.
    """

    def __init__(
        self, client: redis.asyncio.Redis, plans: StorePlans, multiplexed: MultiplexedRedis
    ) -> None:
        self.client = client
        self.multiplexed = multiplexed
        self.plans = plans
        self._sha = {script.name: _sha1(script.source) for script in SCRIPTS}

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        """A store on `settings.redis_url` for `settings.namespace`."""
        return cls(
            asyncio_client(settings.redis_url),
            plans_from_settings(settings),
            multiplexed_client(settings.redis_url),
        )

    @classmethod
    def sharing(cls, store: AsyncJobStore) -> Self:
        """A store on `store`'s connections and plans (closing either closes both)."""
        return cls(store.client, store.plans, store.multiplexed)

    async def close(self) -> None:
        await self.multiplexed.close()
        await self.client.aclose()

    async def _run(self, plan: Plan[T]) -> T:
        while True:
            outcome = plan.decode(await self._send(plan))
            if not isinstance(outcome, Plan):
                return outcome
            plan = outcome

    async def _send(self, plan: Plan[Any]) -> Any:
        if plan.script is not None:
            return await self._eval(plan.script, plan.keys, plan.args)
        if plan.blocking:
            return [await self.client.execute_command(*plan.commands[0])]
        if len(plan.commands) == 1 and not plan.atomic:
            return [await self.multiplexed.execute(*plan.commands[0])]
        return await self.multiplexed.execute_many(plan.commands, atomic=plan.atomic)

    async def _eval(self, script: LuaScript, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        try:
            return await self.multiplexed.execute(
                "EVALSHA", self._sha[script.name], len(keys), *keys, *args
            )
        except redis.exceptions.NoScriptError:  # a restarted or flushed Redis
            await self.multiplexed.execute("SCRIPT", "LOAD", script.source)
            return await self.multiplexed.execute(
                "EVALSHA", self._sha[script.name], len(keys), *keys, *args
            )

    create = _async(StorePlans.create)
    get = _async(StorePlans.get)
    get_owned = _async(StorePlans.get_owned)
    owner_of = _async(StorePlans.owner_of)
    admit = _async(StorePlans.admit)
    take_render = _async(StorePlans.take_render)
    mark_running = _async(StorePlans.mark_running)
    set_worker = _async(StorePlans.set_worker)
    note_interrupted = _async(StorePlans.note_interrupted)
    set_progress = _async(StorePlans.set_progress)
    is_cancel_requested = _async(StorePlans.is_cancel_requested)
    mark_succeeded = _async(StorePlans.mark_succeeded)
    mark_failed = _async(StorePlans.mark_failed)
    mark_cancelled = _async(StorePlans.mark_cancelled)
    request_cancel = _async(StorePlans.request_cancel)
    delete = _async(StorePlans.delete)
    list_jobs = _async(StorePlans.list_jobs)
    prune_expired = _async(StorePlans.prune_expired)
    get_result = _async(StorePlans.get_result)
    get_arrays = _async(StorePlans.get_arrays)
    get_plot = _async(StorePlans.get_plot)
    put_plot = _async(StorePlans.put_plot)
    read_events = _async(StorePlans.read_events)
    record_heartbeat = _async(StorePlans.record_heartbeat)
    forget_worker = _async(StorePlans.forget_worker)
    live_workers = _async(StorePlans.live_workers)
    record_worker_jobs = _async(StorePlans.record_worker_jobs)
    running_jobs = _async(StorePlans.running_jobs)
    requeue_lost = _async(StorePlans.requeue_lost)
    lost_workers = _async(StorePlans.lost_workers)
    requeue_held = _async(StorePlans.requeue_held)
    forget_report = _async(StorePlans.forget_report)
    unsent_dispatches = _async(StorePlans.unsent_dispatches)
    redispatch = _async(StorePlans.redispatch)
    confirm_dispatch = _async(StorePlans.confirm_dispatch)
    unconfirm_dispatch = _async(StorePlans.unconfirm_dispatch)
    claim = _async(StorePlans.claim)
    wait_for_work = _async(StorePlans.wait_for_work)
    forget_idle = _async(StorePlans.forget_idle)
    waiting = _async(StorePlans.waiting)
    metrics = _async(StorePlans.metrics)
    ping = _async(StorePlans.ping)
    create_study = _async(StorePlans.create_study)
    get_study = _async(StorePlans.get_study)
    list_studies = _async(StorePlans.list_studies)
    cancel_study = _async(StorePlans.cancel_study)
    delete_study = _async(StorePlans.delete_study)
    get_study_plot = _async(StorePlans.get_study_plot)
    put_study_plot = _async(StorePlans.put_study_plot)
    get_study_series = _async(StorePlans.get_study_series)
    put_study_series = _async(StorePlans.put_study_series)
    read_study_events = _async(StorePlans.read_study_events)
    claim_study_drawing = _async(StorePlans.claim_study_drawing)
    study_owner = _async(StorePlans.study_owner)
    seal_study = _async(StorePlans.seal_study)
    link_remedy_study = _async(StorePlans.link_remedy_study)
    put_dataset = _async(StorePlans.put_dataset)
    get_dataset = _async(StorePlans.get_dataset)
    list_datasets = _async(StorePlans.list_datasets)
    dataset_data = _async(StorePlans.dataset_data)
    use_dataset = _async(StorePlans.use_dataset)
    delete_dataset = _async(StorePlans.delete_dataset)


class StudyStore(JobStore):
    """The blocking store as a study's tools hold it: a study cancelled or deleted with
    its children, one operation after the other."""

    def cancel(self, study_id: str) -> StudyCancel | None:
        """Cancel the study: flag it, then cancel every child still queued or running."""
        outcome = self.cancel_study(study_id)
        if outcome is not None and not outcome.before.finished:
            for child_id in outcome.children:
                self.request_cancel(child_id)
        return outcome

    def delete_with_children(self, study_id: str) -> bool:
        """Delete the study and every child (a running child stops within about a second)."""
        children = self.delete_study(study_id)
        for child_id in children or ():
            self.delete(child_id)
        return children is not None


class AsyncStudyStore(AsyncJobStore):
    """The asyncio store as the API's study routes hold it (`sharing` a job store's
    connections); every operation is the job store's."""
