"""A job in the domain: where it is in its life, its id, and the summary of its run.

The store keeps the job's record (core.store.records); the queue names the task
that trains it (core.queue.tasks).

Example:
    >>> JobStatus.SUCCEEDED.finished
    True
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Where a job is in its life: queued -> running -> one of the three finished states."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once nothing will change the job again."""
        return self in FINISHED


FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_JOB_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


class _MonotonicUlid:
    """ULIDs that strictly increase within this process, even within one millisecond.

    Ids made by different processes in the same millisecond still order arbitrarily.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def __call__(self, now: float | None = None) -> str:
        millis = int((time.time() if now is None else now) * 1000)
        with self._lock:
            value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
            if value <= self._last:  # same millisecond (or a clock step back)
                value = self._last + 1
            self._last = value
        chars = []
        for _ in range(26):
            value, digit = divmod(value, 32)
            chars.append(_CROCKFORD[digit])
        return "".join(reversed(chars))


new_job_id = _MonotonicUlid()
"""A new job id: a ULID (48 bits of milliseconds, 80 random bits); ids sort by creation."""


def is_job_id(value: str) -> bool:
    """True when `value` has the shape of a job id (checked before touching Redis)."""
    return _JOB_ID.match(value) is not None


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True, slots=True)
class Summary:
    """The headline numbers of a finished run."""

    loss: float | None
    accuracy: float | None  # None for a regression
    verdicts: tuple[str, ...] = ()
    diverged: bool = False
    # The first hidden layer's RMS kernel gradient over the output layer's (the number
    # `vanishing` and `exploding` judge); what a study of fixes compares before and after.
    gradient_ratio: float | None = None
    # A regression's: the loss of always predicting the mean target (result.metrics.baseline).
    baseline_loss: float | None = None

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> Summary:
        """Read from a result.json dict (core.experiment.result): final metrics and diagnosis."""
        after = result.get("metrics", {}).get("after", {}) or {}
        diagnosis = result.get("diagnosis") or {}
        flow = (diagnosis.get("evidence") or {}).get("gradient_flow") or {}
        return cls(
            loss=_finite(after.get("loss")),
            accuracy=_finite(after.get("accuracy")),
            verdicts=tuple(str(verdict) for verdict in diagnosis.get("verdicts", [])),
            diverged=bool(result.get("diverged", False)),
            gradient_ratio=_finite(flow.get("first_to_last_rms_ratio")),
            baseline_loss=_finite((result.get("metrics", {}).get("baseline") or {}).get("loss")),
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "loss": _finite(self.loss),
            "accuracy": _finite(self.accuracy),
            "verdicts": list(self.verdicts),
            "diverged": self.diverged,
            "gradient_ratio": _finite(self.gradient_ratio),
            "baseline_loss": _finite(self.baseline_loss),
        }
