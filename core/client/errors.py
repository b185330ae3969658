"""What a call to the service can raise: one exception per kind of answer a script acts on.

Every error response of the service is an RFC 9457 problem document; the
exception carries it whole (`problem`), with its field errors (`errors`), so a
caller can show the service's own words beside the field they are about.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict


class FieldError(TypedDict):
    field: str
    reason: str


class ClientError(Exception):
    """Anything that kept a call from getting its answer."""


class ServiceUnreachableError(ClientError):
    """No HTTP answer at all: refused, timed out, or the connection dropped."""


class ProblemError(ClientError):
    """The service answered with an error status and (usually) a problem document."""

    def __init__(self, status: int, problem: Mapping[str, Any]) -> None:
        self.status = status
        self.problem = dict(problem)
        super().__init__(self.describe())

    @property
    def title(self) -> str:
        return str(self.problem.get("title") or f"HTTP {self.status}")

    @property
    def detail(self) -> str | None:
        detail = self.problem.get("detail")
        return None if detail is None else str(detail)

    @property
    def errors(self) -> list[FieldError]:
        """The field errors: which field, and why (empty when the problem names none)."""
        return [
            {"field": str(item.get("field", "")), "reason": str(item.get("reason", ""))}
            for item in self.problem.get("errors") or ()
            if isinstance(item, Mapping)
        ]

    def describe(self) -> str:
        lines = [f"{self.status} {self.title}" + (f": {self.detail}" if self.detail else "")]
        lines += [f"  {item['field']}: {item['reason']}" for item in self.errors]
        return "\n".join(lines)


class BadRequestError(ProblemError):
    """400, 413, 415, 422: the request itself is wrong; sending it again will not help."""


class UnauthorizedError(ProblemError):
    """401 or 403: no key, an unknown key, or a bad share link."""


class NotFoundError(ProblemError):
    """404: no such experiment or study, or none this key may see."""


class ConflictError(ProblemError):
    """409: not in a state for that (a result before it succeeded, a cancel after it ended)."""


class UnavailableError(ProblemError):
    """429 or 5xx still answered after the retries: try again later."""


_BY_STATUS: dict[int, type[ProblemError]] = {
    400: BadRequestError,
    413: BadRequestError,
    415: BadRequestError,
    422: BadRequestError,
    401: UnauthorizedError,
    403: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    429: UnavailableError,
}


def problem_error(status: int, problem: Mapping[str, Any]) -> ProblemError:
    """The exception for an error answer with `status`."""
    kind = _BY_STATUS.get(status, UnavailableError if status >= 500 else ProblemError)
    return kind(status, problem)
