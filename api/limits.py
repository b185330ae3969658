"""A request body size limit that answers with a problem document.

Starlette's own limit answers plain text; this one answers
`application/problem+json` like every other error. A declared Content-Length
over the limit is refused before the body is read; a chunked body is counted
as it arrives and refused once it passes the limit, without reading the rest.
A route that takes files (an uploaded dataset) has a cap of its own, by path.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Problem, ProblemWhileReading, problem_response

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class BodySizeLimit:
    """ASGI middleware refusing request bodies over `max_bytes` with a 413 problem;
    `caps` maps a path to a cap of its own."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, caps: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.caps = dict(caps or {})

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
        limit = self.caps.get(scope["path"].rstrip("/"), self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await problem_response(self._problem(limit), scope["path"])(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises an HTTPException met while reading the body,
                    # so the app's handler turns it into a problem document.
                    raise ProblemWhileReading(self._problem(limit))
            return message

        await self.app(scope, receive_within_limit, send)
