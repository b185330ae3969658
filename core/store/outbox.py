"""The outbox: a dispatch a worker claimed waits here until its message is confirmed sent.

A worker's claim on a unit (core.store.dispatch) writes each of its jobs to the
outbox in the same step; the worker confirms each once it has sent the Celery
message to its own queue. A reaper queues anew what stays unconfirmed (the worker
could not reach the queue, or its claiming thread died in between): the new number
voids the first message, had it gone out after all.

    unsent_dispatches(*, older_than=0, limit=100) -> [(job_id, dispatch)]
    redispatch(job_id, *, dispatch, unconfirmed_seconds, reason=None) -> Requeue
    confirm_dispatch(job_id, *, dispatch) -> None
    unconfirm_dispatch(job_id, *, dispatch) -> None   its message was lost after all
"""

from __future__ import annotations

from core.store.jobs import JobPlans
from core.store.plans import Plan, done
from core.store.scripts.workers import REDISPATCH, UNSENT
from core.store.workers import Requeue


class OutboxPlans(JobPlans):
    """The outbox of dispatches, as plans."""

    def unsent_dispatches(
        self, *, older_than: float = 0.0, limit: int = 100
    ) -> Plan[list[tuple[str, int]]]:
        """(job id, dispatch) of the outbox's entries unconfirmed for over `older_than`
        seconds, oldest first: claims whose message was not confirmed sent."""

        def decode(reply: list[bytes]) -> list[tuple[str, int]]:
            entries = [member.decode().partition(" ") for member in reply]
            return [(job_id, int(dispatch)) for job_id, _, dispatch in entries]

        return Plan(decode, script=UNSENT, keys=[self.keys.outbox], args=[f"{older_than:g}", limit])

    def redispatch(
        self,
        job_id: str,
        *,
        dispatch: int,
        unconfirmed_seconds: float,
        reason: str | None = None,
    ) -> Plan[Requeue]:
        """Queue `job_id` anew on its dispatcher when its dispatch `dispatch` is still
        queued and in the outbox, unconfirmed for `unconfirmed_seconds` (0: a worker
        gives back a claim it could not send); `reason` is what the event tells."""
        keys = self.job_script_keys(job_id, self.keys.outbox)
        args = self.job_script_args(
            job_id,
            f"{job_id} {dispatch}",
            f"{unconfirmed_seconds:g}",
            reason or "",
            self.keys.dispatch_base,
        )
        return Plan(
            lambda reply: Requeue.from_reply(job_id, reply), script=REDISPATCH, keys=keys, args=args
        )

    def confirm_dispatch(self, job_id: str, *, dispatch: int) -> Plan[None]:
        """The message of `job_id`'s dispatch `dispatch` was sent: it leaves the outbox."""
        command = ("ZREM", self.keys.outbox, f"{job_id} {dispatch}")
        return Plan(done, commands=[command])

    def unconfirm_dispatch(self, job_id: str, *, dispatch: int) -> Plan[None]:
        """The message of `job_id`'s dispatch `dispatch`, confirmed sent, never reached
        its worker: it is back in the outbox, unconfirmed since ever, so that it is
        queued anew (`redispatch`, by its worker at once or by any reaper)."""
        command = ("ZADD", self.keys.outbox, "NX", 0, f"{job_id} {dispatch}")
        return Plan(done, commands=[command])
