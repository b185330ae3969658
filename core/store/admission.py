"""An owner's limits: how many submissions a minute, how many jobs queued or running.

    admit(owner, *, jobs=1, per_minute, max_active, window=60) -> Refusal | None
        Counts a submission of `owner` adding `jobs` jobs, or says which limit refuses it.

Creating jobs checks `max_active` again in the same step as it creates them
(TooManyActiveJobs), so two submissions at once cannot both pass it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.experiment.jobs import JobStatus, new_job_id
from core.store.keys import owned
from core.store.plans import Plan, Plans
from core.store.scripts.jobs import ADMIT

# What Retry-After says to an owner at its limit of active jobs: about one short job.
ACTIVE_LIMIT_RETRY_AFTER = 10.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why `admit` refused a submission: the limit (a Settings field name) and the wait."""

    limit: str  # "max_active_jobs" or "submissions_per_minute"
    retry_after: float  # seconds; a hint for max_active_jobs, exact for the rate
    active: int | None = None  # the owner's queued and running jobs, for max_active_jobs


class TooManyActiveJobs(Exception):  # noqa: N818 - reads as the event it reports
    """The owner already has as many jobs queued or running as it may."""

    def __init__(self, active: int) -> None:
        super().__init__(f"{active} jobs already queued or running")
        self.active = active


class AdmissionPlans(Plans):
    """The admission of an owner's submissions, as plans."""

    def admit(
        self,
        owner: str,
        *,
        jobs: int = 1,
        per_minute: int,
        max_active: int,
        window: float = 60.0,
    ) -> Plan[Refusal | None]:
        """Count a submission of `owner` that adds `jobs` jobs; a Refusal when a limit says no.

        Refused when the owner's queued and running jobs plus `jobs` would pass
        `max_active`, or when it already made `per_minute` submissions in the last
        `window` seconds (a sliding window; a refused one is not counted).
        """
        keys = [
            self.keys.submissions(owner),
            owned(self.keys.jobs_with_status(JobStatus.QUEUED), owner),
            owned(self.keys.jobs_with_status(JobStatus.RUNNING), owner),
        ]
        args: list[str | int | float] = [new_job_id(), per_minute, window, max_active, jobs]

        def decode(reply: list[Any]) -> Refusal | None:
            if reply[0] == b"active":
                return Refusal("max_active_jobs", ACTIVE_LIMIT_RETRY_AFTER, int(reply[1]))
            if reply[0] == b"rate":
                return Refusal("submissions_per_minute", max(float(reply[1]), 0.001))
            return None

        return Plan(decode, script=ADMIT, keys=keys, args=args)

    def take_render(self, owner: str, *, per_minute: int) -> Plan[float | None]:
        """Count one render drawn for `owner`: None while within `per_minute` renders a
        minute (a window from its first), else the seconds until its window ends."""
        key = self.keys.renders_drawn(owner)

        def decode(reply: list[Any]) -> float | None:
            drawn, ttl = int(reply[0]), int(reply[2])
            return None if drawn <= per_minute else float(max(ttl, 1))

        commands = [("INCR", key), ("EXPIRE", key, 60, "NX"), ("TTL", key)]
        return Plan(decode, commands=commands, atomic=True)
