"""Errors as RFC 9457 `application/problem+json`, each naming the field and the reason.

Routes raise `Problem` (or one of its constructors below); validation errors,
HTTP errors and anything unexpected all leave as problem documents, so a client
never has to parse an HTML page or a bare string. Bad input is a 4xx, never a 500.
Redis unreachable, not answering, or answering that it cannot serve for now
(LOADING, BUSY, READONLY, ...) is a 503 with Retry-After; anything else unexpected
is a generic 500 that names nothing internal and carries the app's CORS headers.

Example response:

    HTTP/1.1 422 Unprocessable Content
    Content-Type: application/problem+json

    {"type": "urn:gradwatch:problem:invalid-spec", "title": "Invalid experiment spec",
     "status": 422, "detail": "training.epochs: Input should be less than or equal to 1000",
     "instance": "/v1/experiments",
     "errors": [{"field": "training.epochs",
                 "reason": "Input should be less than or equal to 1000"}]}
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.experiment.limits import SpecLimitError
from core.store.errors import (
    StoreReplyError,
    StoreTimeout,
    StoreUnreachable,
    is_store_unavailable,
    is_unavailable_reply,
)
from core.store.pages import InvalidCursor, Page

R = TypeVar("R")

PROBLEM_JSON = "application/problem+json"

logger = logging.getLogger(__name__)


class Problem(Exception):  # noqa: N818 - the RFC's name for the thing
    """An error response: status, a short title, a detail for people, optional field errors."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        kind: str | None = None,
        errors: Sequence[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = f"urn:gradwatch:problem:{kind}" if kind else "about:blank"
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extensions = extensions

    def body(self, instance: str) -> dict[str, Any]:
        document: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            document["detail"] = self.detail
        document["instance"] = instance
        if self.errors:
            document["errors"] = self.errors
        document.update(self.extensions)
        return document


def problem_response(problem: Problem, instance: str) -> Response:
    """The problem as an HTTP response."""
    return Response(
        orjson.dumps(problem.body(instance)),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


class ProblemWhileReading(HTTPException):
    """A problem met while the body arrives, raised from the body stream.

    An HTTPException, because FastAPI passes only those through when it reads a
    body (anything else becomes its own 400).
    """

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.status, problem.detail)
        self.problem = problem


class EndOfStream(Exception):  # noqa: N818 - the event it reports
    """A client resumed an event stream past its end: 204 tells EventSource to stop."""


def job_not_found(job_id: str) -> Problem:
    return Problem(
        404, "Experiment not found", f"no experiment with id {job_id!r}", kind="not-found"
    )


def study_not_found(study_id: str) -> Problem:
    return Problem(404, "Study not found", f"no study with id {study_id!r}", kind="not-found")


def already_finished(noun: str, record_id: str, before: str, *, status_field: str) -> Problem:
    """409 for a cancel of an experiment or a study that had already ended (`before`)."""
    status: dict[str, Any] = {status_field: before}
    return Problem(
        409,
        f"{noun.capitalize()} already finished",
        f"{noun} {record_id} already {before}",
        kind="already-finished",
        **status,
    )


def field_problem(
    status: int, title: str, field: str, reason: str, *, kind: str, detail: str | None = None
) -> Problem:
    """A problem about one field and what is wrong with it; the detail says both unless given."""
    return Problem(
        status,
        title,
        detail or f"{field}: {reason}",
        kind=kind,
        errors=[{"field": field, "reason": reason}],
    )


def invalid_field(field: str, reason: str) -> Problem:
    """422 naming one field of the request (a query parameter, a header) and what is wrong."""
    return field_problem(422, "Invalid request", field, reason, kind="invalid-request")


def invalid_cursor() -> Problem:
    """422 for a `cursor` query parameter that is not one a page handed out."""
    return invalid_field("cursor", "not a cursor this API handed out")


async def read_page(listing: Awaitable[Page[R]]) -> Page[R]:
    """The page a store's listing gives; the 422 problem when its cursor was not ours."""
    try:
        return await listing
    except InvalidCursor as error:
        raise invalid_cursor() from error


def job_not_succeeded(job_id: str, status: str, what: str) -> Problem:
    """409 for the result or plots of a job that has not succeeded (yet, or at all)."""
    return Problem(
        409,
        "Experiment has not succeeded",
        f"experiment {job_id} is {status}, and only a succeeded experiment has {what}",
        kind="not-succeeded",
        job_status=status,
    )


# ------------------------------------------------------------- validation errors

_PARAM_LOCATIONS = {"body", "query", "path", "header", "cookie"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")  # a field or header, not a union tag


def _field_path(loc: Sequence[str | int]) -> str:
    """Dotted path of a pydantic location, without union member tags like `list[int]`."""
    parts = list(loc[1:] if loc and loc[0] in _PARAM_LOCATIONS else loc)
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _NAME.fullmatch(part):
            path += f".{part}" if path else part
    return path


def field_error(error: Mapping[str, Any]) -> dict[str, str]:
    """{"field", "reason"} for one pydantic error, using a SpecLimitError's field when given."""
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, SpecLimitError):
        return {"field": cause.field, "reason": cause.message}
    field = _field_path(error.get("loc", ()))
    reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return {"field": field or "body", "reason": reason}


def field_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One entry per field; a union's alternatives are joined into one reason."""
    merged: dict[str, list[str]] = {}
    for error in errors:
        item = field_error(error)
        reasons = merged.setdefault(item["field"], [])
        if item["reason"] not in reasons:
            reasons.append(item["reason"])
    return [{"field": field, "reason": " or ".join(reasons)} for field, reasons in merged.items()]


def validation_problem(error: RequestValidationError) -> Problem:
    """400 for a body that is not JSON at all, 422 naming each bad field otherwise."""
    raw = error.errors()
    if any(item.get("type") == "json_invalid" for item in raw):
        return Problem(400, "Malformed JSON", "the request body is not valid JSON", kind="bad-json")
    errors = field_errors(raw)
    from_body = all(item.get("loc", ("",))[0] == "body" for item in raw)
    detail = "; ".join(f"{item['field']}: {item['reason']}" for item in errors)
    if from_body:
        return Problem(422, "Invalid experiment spec", detail, kind="invalid-spec", errors=errors)
    return Problem(422, "Invalid request", detail, kind="invalid-request", errors=errors)


# ----------------------------------------------------------------------- handlers


async def _on_problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, Problem)
    return problem_response(error, request.url.path)


async def _on_validation(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip()
    body_errors = any(item.get("loc", ("",))[0] == "body" for item in error.errors())
    if body_errors and media_type and not media_type.endswith(("/json", "+json")):
        # e.g. `curl -d '{...}'` without -H: its form content type hid the JSON.
        problem = Problem(
            415,
            "Unsupported Media Type",
            f"send the spec as JSON with Content-Type: application/json, not {media_type}",
            kind="unsupported-media-type",
        )
        return problem_response(problem, request.url.path)
    return problem_response(validation_problem(error), request.url.path)


async def _on_problem_while_reading(request: Request, error: Exception) -> Response:
    assert isinstance(error, ProblemWhileReading)
    return problem_response(error.problem, request.url.path)


async def _on_http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    title = HTTPStatus(error.status_code).phrase
    detail = error.detail if isinstance(error.detail, str) and error.detail != title else None
    problem = Problem(error.status_code, title, detail, headers=error.headers)
    return problem_response(problem, request.url.path)


async def _on_end_of_stream(request: Request, error: Exception) -> Response:
    return Response(status_code=204)


def store_unavailable() -> Problem:
    """503 with Retry-After: Redis is down, restarting, not answering, or answering
    that it cannot serve commands for now (LOADING, BUSY, READONLY, ...)."""
    return Problem(
        503,
        "Store unavailable",
        "the job store (Redis) is not serving requests right now; try again shortly",
        kind="store-unavailable",
        headers={"Retry-After": "5"},
    )


async def _on_redis_down(request: Request, error: Exception) -> Response:
    logger.warning(
        "Redis unavailable on %s %s: %s: %s",
        request.method,
        request.url.path,
        type(error).__name__,
        error,
    )
    return problem_response(store_unavailable(), request.url.path)


async def _on_redis_reply(request: Request, error: Exception) -> Response:
    if is_unavailable_reply(error):
        return await _on_redis_down(request, error)
    return await _on_unexpected(request, error)


async def _on_unexpected(request: Request, error: Exception) -> Response:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    problem = Problem(500, "Internal Server Error", "the error was logged", kind="internal")
    return problem_response(problem, request.url.path)


class UnexpectedErrors:
    """ASGI middleware answering an error no handler took with the generic 500 problem.

    Starlette runs the `Exception` handler outside every middleware, so its 500 would
    leave without the CORS headers and a browser would report a CORS failure instead
    of the problem document. api.main installs this just inside CORSMiddleware: the
    500 then carries the headers any other response of the app would. An error after
    the response has started is raised on: the server can only drop the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as error:
            if started:
                raise
            request = Request(scope)
            if is_store_unavailable(error):
                response = await _on_redis_down(request, error)
            else:
                response = await _on_unexpected(request, error)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Make every error response of `app` a problem document."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(EndOfStream, _on_end_of_stream)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(ProblemWhileReading, _on_problem_while_reading)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(StoreUnreachable, _on_redis_down)
    app.add_exception_handler(StoreTimeout, _on_redis_down)
    # LOADING, BUSY, READONLY, ... are error replies: a 503 like an outage, any other a 500.
    app.add_exception_handler(StoreReplyError, _on_redis_reply)
    app.add_exception_handler(Exception, _on_unexpected)
