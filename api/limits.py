"""A request body size limit that answers with a problem document.

Starlette's own limit answers plain text; this one answers
`application/problem+json` like every other error. A declared Content-Length
over the limit is refused before the body is read; a chunked body is counted
as it arrives and refused once it passes the limit.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Problem, ProblemWhileReading, problem_response

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class BodySizeLimit:
    """ASGI middleware refusing request bodies over `max_bytes` with a 413 problem."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _problem(self) -> Problem:
        detail = f"the request body is over the limit of {self.max_bytes:,} bytes"
        return Problem(413, "Content Too Large", detail, kind="body-too-large")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await problem_response(self._problem(), scope["path"])(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body,
                    # so the app's handler turns it into a problem document.
                    raise ProblemWhileReading(self._problem())
            return message

        await self.app(scope, receive_within_limit, send)
