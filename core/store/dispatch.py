"""The dispatcher: the one place that decides which worker trains which job, and when.

Jobs do not wait in Celery's queue, where the first message in is the first out
whoever sent it: they wait here, in units (a job, or a group of a study's children
trained side by side), in one list per owner on their queue's dispatcher, from the
step that creates them (or re-queues them) on. A worker with a free pool slot claims
the next unit (`claim`, one script) and sends its message to its own Celery queue,
so that Celery still carries every job (late acks, redelivery of a killed pool's
message, the fencing of deliveries) while the choice is made as late as it can be:

- fair between owners: the owner with the fewest jobs running (or claimed) goes
  first, then the one whose turn came longest ago, so one owner's study of 64 cannot
  hold another owner's job back for more than about one job's time per worker; an
  owner at `max_running` jobs waits (0: no cap);
- warm: within the owner's first `look_ahead` units the worker takes one whose graph
  it holds compiled (core.engine.graph_cache.warm_graphs), else the first one, unless
  another worker that is idle holds that one warm and it has waited less than
  `warm_wait` seconds: then it is left to that worker, which is woken. A unit nobody
  holds warm, or that waited longer, goes to any worker: nothing starves.

A claimed job is in the outbox until the worker confirms its message sent (a reaper
queues again what stays unconfirmed) and in the worker's report of what it holds (a
reaper queues again the jobs of a worker that died before starting them). An idle
worker waits for a wake token (`wait_for_work`): one per unit queued, or one of its
own when a unit is left to it.

    claim(*, queue, hostname, warm, look_ahead, warm_wait, max_running) -> Claim | None
    wait_for_work(*, queues, hostname, seconds) -> bool
    forget_idle(*, queues, hostname) -> None
    waiting(*, queue) -> list[str]              the jobs waiting, oldest first
    any_waiting(*, queue) -> bool               whether a job waits
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from core.experiment.jobs import JobStatus
from core.queue.tasks import training_task
from core.store.plans import Arg, Plan, Plans, done
from core.store.scripts.dispatch import CLAIM
from core.store.workers import HEARTBEAT_KEEP

# Units of an owner a worker looks over for one whose graph it holds warm.
LOOK_AHEAD = 8
# How long a unit waits for an idle worker that holds its graph warm, rather than
# compiling it elsewhere: a few times what it takes to wake that worker.
WARM_WAIT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Claim:
    """A unit a worker claimed: the task its message carries and its (job id, dispatch)."""

    task: dict[str, Any]
    jobs: list[tuple[str, int]]

    @property
    def message_id(self) -> str:
        """The message's task id: its first job's (a Celery task's id is its job's)."""
        return self.jobs[0][0]

    @property
    def dispatch(self) -> int:
        """The dispatch its message belongs to (a unit's jobs share it)."""
        return self.jobs[0][1]

    @classmethod
    def from_reply(cls, reply: list[bytes]) -> Claim | None:
        if not reply:
            return None
        entries = [word.decode().partition(":") for word in reply[1:]]
        jobs = [(job_id, int(dispatch)) for job_id, _, dispatch in entries]
        task = orjson.loads(reply[0]) if reply[0] else training_task(jobs[0][0])
        return cls(task, jobs)


def warm_graph(signature: str, members: int) -> str:
    """What the dispatcher calls a graph held warm: its signature
    (core.experiment.grouping.graph_signature) and how many runs it trains side by side."""
    return f"{signature}/{members}"


class DispatchPlans(Plans):
    """The dispatcher's operations, as plans."""

    def claim(
        self,
        *,
        queue: str,
        hostname: str,
        warm: Sequence[str] = (),
        look_ahead: int = LOOK_AHEAD,
        warm_wait: float = WARM_WAIT_SECONDS,
        max_running: int = 0,
    ) -> Plan[Claim | None]:
        """The next unit of `queue` for worker `hostname`, which holds the graphs `warm`
        (`warm_graph` names), or None: then the worker counts as idle on `queue` with
        those graphs until its next claim. `max_running` caps an owner's jobs running or
        claimed (0: no cap)."""
        before, after = self.keys.worker_wake_around()
        keys = [
            self.keys.worker_heartbeats(queue),
            self.keys.worker_jobs(hostname),
            self.keys.outbox,
            self.keys.jobs_with_status(JobStatus.RUNNING),
            self.keys.claimed,
        ]
        args: list[Arg] = [
            self.keys.dispatch_base,
            queue,
            hostname,
            self.keys.job("").record,
            f"{self.live_worker_seconds:g}",
            look_ahead,
            f"{warm_wait:g}",
            max_running,
            HEARTBEAT_KEEP,
            before,
            after,
            *warm,
        ]
        return Plan(Claim.from_reply, script=CLAIM, keys=keys, args=args)

    def wait_for_work(self, *, queues: Sequence[str], hostname: str, seconds: float) -> Plan[bool]:
        """Wait up to `seconds` for a token that wakes worker `hostname`: its own, or one of
        `queues`' (a unit was queued); True when one came."""
        keys = [self.keys.worker_wake(hostname)]
        keys += [self.keys.dispatcher(queue).wake for queue in queues]
        command = ("BLPOP", *keys, f"{seconds:g}")
        return Plan(lambda reply: reply[0] is not None, commands=[command], blocking=True)

    def forget_idle(self, *, queues: Sequence[str], hostname: str) -> Plan[None]:
        """Worker `hostname` stops: no unit waits for it any more."""
        commands: list[tuple[str, ...]] = [
            ("HDEL", self.keys.dispatcher(queue).idle, hostname) for queue in queues
        ]
        commands.append(("DEL", self.keys.worker_wake(hostname)))
        return Plan(done, commands=commands)

    def waiting(self, *, queue: str) -> Plan[list[str]]:
        """The ids of `queue`'s jobs waiting for a worker, oldest first."""
        command = ("ZRANGE", self.keys.dispatcher(queue).waiting, 0, -1)
        return Plan(lambda reply: [member.decode() for member in reply[0]], commands=[command])

    def any_waiting(self, *, queue: str) -> Plan[bool]:
        """Whether a job of `queue` waits for a worker (one cheap read, however many wait)."""
        command = ("ZRANGE", self.keys.dispatcher(queue).waiting, 0, 0)
        return Plan(lambda reply: bool(reply[0]), commands=[command])
