"""The auto-pipelined Redis connection against the real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis
from redis.exceptions import NoScriptError, ResponseError

from core.redis_multiplex import MultiplexedRedis
from core.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def multiplexed(settings: Settings) -> AsyncIterator[MultiplexedRedis]:
    client = MultiplexedRedis.from_url(settings.redis_url)
    yield client
    await client.close()


@pytest.fixture
def key(namespace: str, redis_client: redis.Redis) -> str:
    return f"{namespace}:multiplex-test"


async def test_concurrent_commands_get_their_own_replies(
    multiplexed: MultiplexedRedis, key: str
) -> None:
    await multiplexed.execute_many(
        [("HSET", key, f"f{i}", f"v{i}") for i in range(200)], atomic=False
    )
    replies = await asyncio.gather(*(multiplexed.execute("HGET", key, f"f{i}") for i in range(200)))
    assert replies == [f"v{i}".encode() for i in range(200)]


async def test_an_error_reply_raises_and_the_connection_goes_on(
    multiplexed: MultiplexedRedis, key: str
) -> None:
    await multiplexed.execute("SET", key, "text")
    with pytest.raises(ResponseError):
        await multiplexed.execute("INCR", key)
    with pytest.raises(NoScriptError):
        await multiplexed.execute("EVALSHA", "0" * 40, 0)
    assert await multiplexed.execute("GET", key) == b"text"


async def test_a_transaction_is_atomic_and_reports_errors(
    multiplexed: MultiplexedRedis, key: str
) -> None:
    replies = await multiplexed.execute_many(
        [("DEL", key), ("INCRBY", key, 5), ("GET", key)], atomic=True
    )
    assert replies[1:] == [5, b"5"]
    with pytest.raises(ResponseError):
        await multiplexed.execute_many([("SET", key, "x"), ("INCR", key)], atomic=True)


async def test_a_cancelled_caller_leaves_the_replies_in_step(
    multiplexed: MultiplexedRedis, key: str
) -> None:
    await multiplexed.execute("SET", key, "kept")
    slow = asyncio.ensure_future(multiplexed.execute("DEBUG", "SLEEP", "0.05"))
    await asyncio.sleep(0.01)
    slow.cancel()
    assert await multiplexed.execute("GET", key) == b"kept"


async def test_it_reconnects_after_losing_the_connection(
    multiplexed: MultiplexedRedis, redis_client: redis.Redis, key: str
) -> None:
    await multiplexed.execute("SET", key, "before")
    client_id = await multiplexed.execute("CLIENT", "ID")
    redis_client.execute_command("CLIENT", "KILL", "ID", client_id)

    async def answers() -> bytes:
        while True:
            try:
                reply: bytes = await multiplexed.execute("GET", key)
                return reply
            except redis.ConnectionError:  # the commands in flight when it dropped
                await asyncio.sleep(0.01)

    assert await asyncio.wait_for(answers(), timeout=5) == b"before"
    assert await multiplexed.execute("CLIENT", "ID") != client_id
