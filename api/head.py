"""HEAD wherever GET: the GET's status and headers, without its body.

FastAPI routes answer only the methods they list, so a HEAD (a cache checking
an ETag, a link checker, `curl -I`) would be a 405 everywhere. This middleware
runs a HEAD as the GET of the same URL, forwards the response's start as it is
(Content-Length, ETag and all) and ends the body there. A streaming GET (an
event stream) is stopped as soon as its headers are out, so a HEAD never
holds a stream open.
"""

from __future__ import annotations

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware answering HEAD with the headers of the GET of the same URL."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        with anyio.CancelScope() as cancel:

            async def headers_only(message: Message) -> None:
                if message["type"] == "http.response.start":
                    await send(message)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    cancel.cancel()  # the body is not wanted: stop making it

            await self.app({**scope, "method": "GET"}, receive, headers_only)
