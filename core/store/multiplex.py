"""One Redis connection shared by every coroutine of a process, pipelining automatically.

redis.asyncio gives each concurrent command its own pooled connection, its own
write and its own read: under load the client costs more CPU than Redis itself.
Here all coroutines share one connection (as StackExchange.Redis and redis-rs'
multiplexed connection do): commands issued in the same event-loop turn leave in
one write, replies are parsed by hiredis as they arrive and handed back in order.

Replies are raw RESP2 values (bytes, int, lists); an error reply raises the
exception redis-py raises for it (`NoScriptError` for NOSCRIPT, `BusyLoadingError`
for LOADING, `ReadOnlyError`, `OutOfMemoryError`, ... else `ResponseError`), its
message kept whole (core.store.errors tells the replies that mean Redis cannot
serve for now from those that mean a command is wrong). Never send a blocking
command (BLPOP, XREAD BLOCK, ...) here: it would stall every command queued
behind it; use an ordinary pooled client for those.

Example:
    >>> redis = MultiplexedRedis.from_url("redis://127.0.0.1:6379/0")
    >>> await redis.execute("HGETALL", "gradwatch:job:01J...")
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
from redis.connection import parse_url
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    ConnectionError,
    ExecAbortError,
    MasterDownError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int | float

CONNECT_TIMEOUT = 5.0
# A Redis that holds the connection but stops answering (paused, or a network that
# drops packets) must not hold requests forever: once commands have waited this long
# with no reply at all, they fail with TimeoutError and the connection is dropped.
COMMAND_TIMEOUT = 5.0


def _pack(args: Sequence[Arg]) -> bytes:
    # hiredis' stub types the argument as a one-element tuple; any length is accepted.
    packed: bytes = hiredis.pack_command(tuple(args))  # type: ignore[arg-type]
    return packed


# The exceptions redis-py raises for these error codes (redis._parsers.base), so a
# caller catches the same types from either client.
_ERRORS: dict[str, Callable[[str], RedisError]] = {
    "NOSCRIPT": NoScriptError,
    "LOADING": BusyLoadingError,
    "READONLY": ReadOnlyError,
    "OOM": OutOfMemoryError,
    "EXECABORT": ExecAbortError,
    "MASTERDOWN": MasterDownError,
    "TRYAGAIN": TryAgainError,
    "WRONGPASS": AuthenticationError,
    "NOAUTH": AuthenticationError,
}


def _error(reply: ResponseError) -> RedisError:
    """The redis-py exception for an error reply, so callers can catch the usual types."""
    message = str(reply)
    if message.startswith("ERR max number of clients reached"):
        return ConnectionError(message)  # as redis-py; the server closes the connection too
    kind = _ERRORS.get(message.partition(" ")[0])
    return reply if kind is None else kind(message)


def _raise_first_error(replies: Sequence[Any]) -> None:
    """Raise the first exception among gathered replies (a MULTI refused comes first)."""
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply


class _Protocol(asyncio.Protocol):
    """Writes batched per loop turn; replies matched to waiters in order.

    A watchdog, armed while replies are awaited, fails the connection when the
    server has answered nothing for COMMAND_TIMEOUT (one timer per wait, not per
    command: the hot path stays as cheap as it was).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._reader = hiredis.Reader(replyError=ResponseError)
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._outgoing: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self._answered_at = 0.0  # the last reply, or when replies began to be awaited
        self._watchdog: asyncio.TimerHandle | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def send(self, packed: Sequence[bytes]) -> list[asyncio.Future[Any]]:
        """Queue commands (already packed); one future per reply."""
        if self.lost is not None or self._transport is None:
            raise ConnectionError(f"Redis connection lost: {self.lost}")
        if not self._outgoing:
            self._loop.call_soon(self._flush)
        self._outgoing.extend(packed)
        futures = [self._loop.create_future() for _ in packed]
        if not self._waiters:
            self._answered_at = self._loop.time()
        self._waiters.extend(futures)
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(COMMAND_TIMEOUT, self._check_answering)
        return futures

    def _check_answering(self) -> None:
        """Fail every waiter, and the connection, when Redis stopped answering."""
        self._watchdog = None
        if not self._waiters:
            return
        silent = self._loop.time() - self._answered_at
        if silent < COMMAND_TIMEOUT:
            self._watchdog = self._loop.call_later(COMMAND_TIMEOUT - silent, self._check_answering)
            return
        self.lost = RedisTimeoutError(f"Redis did not answer for {silent:.1f} s")
        self._fail_waiters(self.lost)
        self.close()

    def _flush(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.writelines(self._outgoing)
        self._outgoing = []

    def data_received(self, data: bytes) -> None:
        self._answered_at = self._loop.time()
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            waiter = self._waiters.popleft()
            if waiter.done():  # its caller was cancelled; the reply still had to be read
                continue
            if isinstance(reply, ResponseError):
                waiter.set_exception(_error(reply))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.lost or exc or ConnectionError("closed by the server")
        self._fail_waiters(ConnectionError(f"Redis connection lost: {self.lost}"))
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _fail_waiters(self, error: Exception) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class MultiplexedRedis:
    """An asyncio Redis client over one auto-pipelined connection, reconnecting on demand."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 6379,
        path: str | None = None,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
    ) -> None:
        self._address = (host, port, path)
        self._setup = self._setup_commands(db, username, password)
        self._tls = tls
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> MultiplexedRedis:
        """For a redis://, rediss:// or unix:// URL (host, port, db, credentials)."""
        options = parse_url(url)
        return cls(
            host=options.get("host", "127.0.0.1"),
            port=int(options.get("port", 6379)),
            path=options.get("path"),
            db=int(options.get("db", 0) or 0),
            username=options.get("username"),
            password=options.get("password"),
            tls=url.startswith("rediss://"),
        )

    @staticmethod
    def _setup_commands(db: int, username: str | None, password: str | None) -> list[bytes]:
        commands = []
        if password is not None:
            auth: tuple[str, ...] = ("AUTH", username, password) if username else ("AUTH", password)
            commands.append(_pack(auth))
        if db:
            commands.append(_pack(("SELECT", db)))
        return commands

    async def _connected(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        async with self._connecting:
            if self._protocol is None or self._protocol.lost is not None:
                self._protocol = await self._connect()
            return self._protocol

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        host, port, path = self._address
        protocol: _Protocol | None = None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if path is not None:
                    _, protocol = await loop.create_unix_connection(lambda: _Protocol(loop), path)
                else:
                    context = ssl.create_default_context() if self._tls else None
                    _, protocol = await loop.create_connection(
                        lambda: _Protocol(loop), host, port, ssl=context
                    )
                if self._setup:
                    replies = await asyncio.gather(
                        *protocol.send(self._setup), return_exceptions=True
                    )
                    _raise_first_error(replies)
        except BaseException as error:
            # A connection whose AUTH or SELECT failed (a wrong password, a BUSY
            # Redis) is of no use: close it, or every retry would leave one open.
            if protocol is not None:
                protocol.close()
            if isinstance(error, OSError | TimeoutError):
                where = path or f"{host}:{port}"
                raise ConnectionError(f"cannot reach Redis at {where}: {error}") from error
            raise
        return protocol

    async def execute(self, *args: Arg) -> Any:
        """One command's reply."""
        protocol = await self._connected()
        (future,) = protocol.send([_pack(args)])
        return await future

    async def execute_many(self, commands: Sequence[Sequence[Arg]], *, atomic: bool) -> list[Any]:
        """Replies of `commands`, sent back to back; in MULTI/EXEC when `atomic`."""
        packed = [_pack(command) for command in commands]
        if atomic:
            packed = [_pack(("MULTI",)), *packed, _pack(("EXEC",))]
        protocol = await self._connected()
        replies = await asyncio.gather(*protocol.send(packed), return_exceptions=True)
        _raise_first_error(replies)
        results = cast(list[Any], replies[-1] if atomic else replies)
        for result in results:  # errors inside EXEC's array are values, not replies
            if isinstance(result, ResponseError):
                raise _error(result)
        return results

    async def close(self) -> None:
        if self._protocol is not None:
            self._protocol.close()
            self._protocol = None
