"""A Redis that holds the connection but never answers: commands fail in bounded time."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from core.store import multiplex as redis_multiplex
from core.store.multiplex import MultiplexedRedis


async def _silent_server() -> tuple[asyncio.Server, int, list[asyncio.StreamWriter]]:
    """Accepts connections and reads commands, and never replies (a paused Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(4096):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, port, held


def test_commands_to_a_redis_that_stopped_answering_time_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_multiplex, "COMMAND_TIMEOUT", 0.3)

    async def scenario() -> tuple[float, int]:
        server, port, held = await _silent_server()
        client = MultiplexedRedis(port=port)
        started = time.monotonic()
        results = await asyncio.gather(
            client.execute("GET", "a"),
            client.execute_many([("GET", "b"), ("GET", "c")], atomic=True),
            return_exceptions=True,
        )
        waited = time.monotonic() - started
        assert all(isinstance(result, redis.TimeoutError) for result in results), results
        # The dead connection was dropped: the next command opens a new one.
        with pytest.raises(redis.TimeoutError):
            await client.execute("PING")
        connections = len(held)
        await client.close()
        server.close()
        return waited, connections

    waited, connections = asyncio.run(scenario())

    assert 0.3 <= waited < 1.5
    assert connections == 2
