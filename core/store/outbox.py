"""The outbox: every dispatch of a job waits here until its message is confirmed sent.

A new job's first dispatch and every re-queue are written to the outbox in the
same step that makes them; the sender confirms each once its Celery message went
out. A reaper dispatches anew what stays unconfirmed (the API could not reach the
queue, or a process died in between): the new number voids the first message,
had it gone out after all.

    unsent_dispatches(*, older_than=0, limit=100) -> [(job_id, dispatch)]
    redispatch(job_id, *, dispatch, unconfirmed_seconds, reason=None) -> Requeue
    confirm_dispatch(job_id, *, dispatch) -> None
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
        seconds, oldest first: first sends and re-queues whose message was not confirmed."""

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
        """Dispatch `job_id` anew when its dispatch `dispatch` is still queued and in the
        outbox, unconfirmed for `unconfirmed_seconds`; `reason` is what the event tells."""
        keys = self.job_script_keys(job_id, self.keys.outbox)
        args = self.job_script_args(
            job_id, f"{job_id} {dispatch}", f"{unconfirmed_seconds:g}", reason or ""
        )
        return Plan(
            lambda reply: Requeue.from_reply(job_id, reply), script=REDISPATCH, keys=keys, args=args
        )

    def confirm_dispatch(self, job_id: str, *, dispatch: int) -> Plan[None]:
        """The message of `job_id`'s dispatch `dispatch` was sent: it leaves the outbox."""
        command = ("ZREM", self.keys.outbox, f"{job_id} {dispatch}")
        return Plan(done, commands=[command])
