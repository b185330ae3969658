"""A request body size limit that answers with a problem document.

Starlette's own limit answers plain text; this one answers
`application/problem+json` like every other error. A declared Content-Length
over the limit is refused before the body is read; a chunked body is counted
as it arrives and refused once it passes the limit, without reading the rest.
A route that takes files (an uploaded dataset) has a cap of its own, by path.

A body must also keep arriving: a client that sends nothing for `idle_seconds`, or
less than `min_bytes_per_second` on average once `grace_seconds` have passed, is
answered 408 and its connection freed, so that a thousand trickling clients cannot
hold a thousand requests open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Problem, ProblemWhileReading, problem_response

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class BodySizeLimit:
    """ASGI middleware refusing request bodies over `max_bytes` with a 413 problem;
    `caps` maps a path to a cap of its own."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        caps: Mapping[str, int] | None = None,
        idle_seconds: float = 10.0,
        min_bytes_per_second: float = 1024.0,
        grace_seconds: float = 5.0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.caps = dict(caps or {})
        self.idle_seconds = idle_seconds
        self.min_bytes_per_second = min_bytes_per_second
        self.grace_seconds = grace_seconds

    def _too_slow(self, why: str) -> Problem:
        detail = (
            f"the request body arrived too slowly ({why}): send it within "
            f"{self.idle_seconds:g} s of silence and at {self.min_bytes_per_second:,.0f} "
            "bytes a second or more"
        )
        return Problem(408, "Request Timeout", detail, kind="body-too-slow")

    @staticmethod
    def _problem(limit: int) -> Problem:
        size = f"{limit:,} bytes"
        if limit >= 1024 * 1024 and limit % (1024 * 1024) == 0:
            size = f"{limit // (1024 * 1024)} MB ({size})"
        detail = f"the request body is over the limit of {size}"
        return Problem(413, "Content Too Large", detail, kind="body-too-large")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        limit = self.caps.get(_route_path(scope).rstrip("/"), self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await problem_response(self._problem(limit), scope["path"])(scope, receive, send)
            return
        received = 0
        started = time.monotonic()

        async def receive_within_limit() -> Message:
            nonlocal received
            try:
                async with asyncio.timeout(self.idle_seconds):
                    message = await receive()
            except TimeoutError:
                raise ProblemWhileReading(self._too_slow("nothing came")) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                # FastAPI re-raises an HTTPException met while reading the body,
                # so the app's handler turns it into a problem document.
                if received > limit:
                    raise ProblemWhileReading(self._problem(limit))
                elapsed = time.monotonic() - started
                slow = received < self.min_bytes_per_second * elapsed
                if elapsed > self.grace_seconds and slow and message.get("more_body"):
                    raise ProblemWhileReading(
                        self._too_slow(f"{received:,} bytes in {elapsed:.0f} s")
                    )
            return message

        await self.app(scope, receive_within_limit, send)


def _route_path(scope: Scope) -> str:
    """The path the app routes on: behind a proxy's prefix (root_path), without it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
