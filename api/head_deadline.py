"""A deadline and a size cap for a request's head: `uvicorn --http api.head_deadline:HeadDeadline`.

uvicorn times out an idle connection only between requests: a connection that
opens and sends nothing, or sends its request line and headers a byte at a
time (slowloris), is held for as long as the client likes, and headers have no
size limit with httptools. A thousand such clients hold a thousand connections
and their buffers, and the body limits of `api.limits` never see them, since
the application is called only once the head is complete.

This protocol is uvicorn's httptools one with a clock on each head: from the
moment a connection opens (or the next request on it begins), its request line
and headers must be complete within `Settings.header_timeout_seconds` and
`Settings.header_max_bytes`, else the connection is answered 408 or 431 with a
problem document and closed. uvicorn takes the class by its import string
(`--http`), so the API runs under uvicorn's own command line as before.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.errors import PROBLEM_JSON, Problem
from core.settings import get_settings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


class HeadDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol; a head late or too large is a 408 or 431, then closed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.head_timeout = settings.header_timeout_seconds
        self.head_max_bytes = settings.header_max_bytes
        # Armed while a head is awaited (from the connection's start or a request's
        # first byte until its headers are complete); None while a request runs or the
        # connection waits between requests under uvicorn's own keep-alive timeout.
        self._deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    def _await_head(self) -> None:
        if self._deadline is None:
            self._head_bytes = 0
            self._deadline = self.loop.call_later(self.head_timeout, self._too_late)

    def _head_done(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._await_head()

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._deadline is None:
            return
        # Still inside a head after this chunk: it counts whole against the cap.
        self._head_bytes += len(data)
        if self._head_bytes > self.head_max_bytes:
            limit = self.head_max_bytes
            detail = f"the request line and headers are over the limit of {limit:,} bytes"
            title = "Request Header Fields Too Large"
            self._refuse(Problem(431, title, detail, kind="head-too-large"))

    def _too_late(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head behind a response under way: judged once that is out,
            # never answered into the middle of it.
            self._deadline = self.loop.call_later(self.head_timeout, self._too_late)
            return
        detail = f"the request line and headers did not arrive within {self.head_timeout:g} s"
        self._refuse(Problem(408, "Request Timeout", detail, kind="head-too-slow"))

    def _refuse(self, problem: Problem) -> None:
        """Answer `problem` and close (only close, into a response under way)."""
        self._head_done()
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        # The request target as far as it arrived ("" before its first byte).
        target = getattr(self, "url", b"").decode("latin-1")
        body = orjson.dumps(problem.body(target))
        defaults = self.server_state.default_headers
        head = b"".join(
            [
                b"HTTP/1.1 %d %s\r\n" % (problem.status, _REASONS[problem.status]),
                *(name + b": " + value + b"\r\n" for name, value in defaults),
                b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
            ]
        )
        self.transport.write(head + body)
        self.transport.close()
