"""Live workers and lost ones: heartbeats, the messages each worker holds, and a
reaper's atomic claim on the jobs of a worker that was lost.

    record_heartbeat(*, queue, hostname) -> None
    forget_worker(*, queue, hostname) -> None
    live_workers(*, queue, within_seconds=None) -> list[str]
        Workers that beat within `within_seconds` (default: the deployment's
        worker_silent_seconds, past which a reaper counts a worker as lost).
    record_worker_jobs(*, hostname, jobs: [(job_id, dispatch)]) -> None
        Each heartbeat: the messages the worker holds, started or not.
    running_jobs(*, limit=1000) -> list[JobRecord]
    requeue_lost(job_id, *, queue, hostname, delivery, silent_seconds, max_deliveries)
        -> Requeue       A reaper's atomic claim on a job whose worker is lost.
    lost_workers(*, queue, silent_seconds) -> [(hostname, [(job_id, dispatch)])]
    requeue_held(job_id, *, queue, hostname, dispatch, silent_seconds) -> Requeue
        The claim on a queued job whose message a lost worker held, never started.
    forget_report(*, queue, hostname, silent_seconds) -> None
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.experiment.jobs import JobStatus
from core.store.jobs import JobPlans
from core.store.plans import Arg, Plan, done
from core.store.records import JobRecord, job_records
from core.store.scripts import LuaScript
from core.store.scripts.workers import (
    FORGET_REPORT,
    HEARTBEAT,
    LIVE_WORKERS,
    LOST_WORKERS,
    RECORD_WORKER_JOBS,
    REQUEUE_HELD,
    REQUEUE_LOST,
)

# Heartbeats and reports older than this are dropped.
HEARTBEAT_KEEP = 24 * 3600


@dataclass(frozen=True, slots=True)
class Requeue:
    """What a reaper's claim on a job did: `action` is requeued, failed, cancelled or skip.

    For "requeued" (the job waits on its queue's dispatcher again): the new `dispatch`
    number, the `task` its message will carry (name and kwargs, as the record keeps it;
    None for a record from before it kept one), its `queue`, and the `reason`.
    """

    job_id: str
    action: str
    dispatch: int = 0
    task: dict[str, Any] | None = None
    queue: str = ""
    reason: str = ""

    @classmethod
    def from_reply(cls, job_id: str, reply: list[Any]) -> Requeue:
        """From a requeueing script's reply (core.store.scripts.workers.REQUEUE)."""
        action = reply[0].decode()
        if action == "requeued":
            _, dispatch, task, queue, reason = reply
            return cls(
                job_id,
                action,
                dispatch=int(dispatch),
                task=json.loads(task) if task else None,
                queue=queue.decode(),
                reason=reason.decode(),
            )
        reason = reply[1].decode() if len(reply) > 1 else ""
        return cls(job_id, action, reason=reason)


class WorkerPlans(JobPlans):
    """Heartbeats and the claims on lost workers' jobs, as plans."""

    def record_heartbeat(self, *, queue: str, hostname: str) -> Plan[None]:
        """Note that `hostname` is alive and consuming `queue`."""
        keys = [self.keys.worker_heartbeats(queue)]
        return Plan(done, script=HEARTBEAT, keys=keys, args=[hostname, HEARTBEAT_KEEP])

    def forget_worker(self, *, queue: str, hostname: str) -> Plan[None]:
        """Remove `hostname` from `queue`'s live workers (on a clean shutdown)."""
        command = ("ZREM", self.keys.worker_heartbeats(queue), hostname)
        return Plan(done, commands=[command])

    def live_workers(self, *, queue: str, within_seconds: float | None = None) -> Plan[list[str]]:
        """Hostnames that beat on `queue` within the last `within_seconds` (default: the
        silence after which a reaper counts a worker as lost, so /readyz and the reapers
        agree on which workers are alive)."""
        seconds = self.live_worker_seconds if within_seconds is None else within_seconds
        return Plan(
            lambda reply: sorted(name.decode() for name in reply),
            script=LIVE_WORKERS,
            keys=[self.keys.worker_heartbeats(queue)],
            args=[f"{seconds:g}"],
        )

    def record_worker_jobs(self, *, hostname: str, jobs: Sequence[tuple[str, int]]) -> Plan[None]:
        """Note the (job id, dispatch) of the messages worker `hostname` holds now (each
        heartbeat), started or not: the reaper's evidence."""
        keys = [self.keys.worker_jobs(hostname)]
        held = " ".join(f"{job_id}:{dispatch}" for job_id, dispatch in jobs)
        args: list[str | int] = [held, HEARTBEAT_KEEP]
        return Plan(done, script=RECORD_WORKER_JOBS, keys=keys, args=args)

    def lost_workers(
        self, *, queue: str, silent_seconds: float
    ) -> Plan[list[tuple[str, list[tuple[str, int]]]]]:
        """(hostname, [(job id, dispatch)]) of the workers of `queue` silent for
        `silent_seconds` whose last report named the messages they held."""
        prefix, suffix = self.keys.worker_jobs_around()

        def decode(reply: list[bytes]) -> list[tuple[str, list[tuple[str, int]]]]:
            lost = []
            for host, report in zip(reply[::2], reply[1::2], strict=True):
                entries = [word.partition(":") for word in report.decode().split()[1:]]
                held = [(job_id, int(dispatch or 0)) for job_id, _, dispatch in entries]
                lost.append((host.decode(), held))
            return lost

        args = [f"{silent_seconds:g}", prefix, suffix]
        keys = [self.keys.worker_heartbeats(queue)]
        return Plan(decode, script=LOST_WORKERS, keys=keys, args=args)

    def requeue_held(
        self, job_id: str, *, queue: str, hostname: str, dispatch: int, silent_seconds: float
    ) -> Plan[Requeue]:
        """Dispatch anew a queued job whose message (of `dispatch`) worker `hostname` held
        when it went silent for `silent_seconds`: it died before marking the job running.

        Atomic, as requeue_lost; "skip" when the job moved on or the worker is back.
        """
        args = self.job_script_args(
            job_id, hostname, dispatch, f"{silent_seconds:g}", self.keys.dispatch_base
        )
        return self._claim(REQUEUE_HELD, job_id, queue, hostname, args)

    def forget_report(self, *, queue: str, hostname: str, silent_seconds: float) -> Plan[None]:
        """Drop the last report of `hostname` if it is still silent: its jobs were seen to."""
        keys = [self.keys.worker_heartbeats(queue), self.keys.worker_jobs(hostname)]
        args = [hostname, f"{silent_seconds:g}"]
        return Plan(done, script=FORGET_REPORT, keys=keys, args=args)

    def running_jobs(self, *, limit: int = 1000) -> Plan[list[JobRecord]]:
        """Up to `limit` running jobs, oldest id first: what a reaper looks over."""
        index = self.keys.jobs_with_status(JobStatus.RUNNING)

        def records(reply: list[Any]) -> list[JobRecord] | Plan[list[JobRecord]]:
            ids = [member.decode() for member in reply[0]]
            if not ids:
                return []
            return Plan(job_records, commands=self._read_records(ids))

        return Plan(records, commands=[("ZRANGE", index, 0, limit - 1)])

    def requeue_lost(
        self,
        job_id: str,
        *,
        queue: str,
        hostname: str,
        delivery: int,
        silent_seconds: float,
        max_deliveries: int,
    ) -> Plan[Requeue]:
        """Re-queue (or fail, past `max_deliveries`) delivery `delivery` of a running job
        whose worker `hostname` is lost: silent for `silent_seconds`, or beating without it.

        Atomic, so of several reapers one acts; the others (and a job that is fine) get
        action "skip". A "requeued" job waits on its queue's dispatcher again, first
        of its owner's (core.store.dispatch).
        """
        args = self.job_script_args(
            job_id,
            hostname,
            delivery,
            f"{silent_seconds:g}",
            max_deliveries,
            self.keys.dispatch_base,
        )
        return self._claim(REQUEUE_LOST, job_id, queue, hostname, args)

    def _claim(
        self, script: LuaScript, job_id: str, queue: str, hostname: str, args: list[Arg]
    ) -> Plan[Requeue]:
        """A claim on `job_id` whose worker `hostname` (of `queue`) may be lost."""
        keys = self.job_script_keys(
            job_id, self.keys.worker_heartbeats(queue), self.keys.worker_jobs(hostname)
        )
        return Plan(
            lambda reply: Requeue.from_reply(job_id, reply), script=script, keys=keys, args=args
        )
