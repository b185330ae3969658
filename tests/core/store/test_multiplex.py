"""The auto-pipelined Redis connection against the real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import hiredis
import pytest
import redis
from redis._parsers.base import BaseParser
from redis.exceptions import NoScriptError, ResponseError

from core.settings import Settings
from core.store.errors import is_unavailable_reply
from core.store.multiplex import MultiplexedRedis

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


# ------------------------------------------------ replies meaning "not now"

UNAVAILABLE = [
    "LOADING Redis is loading the dataset in memory",
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
    "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist",
    "READONLY You can't write against a read only replica.",
    "OOM command not allowed when used memory > 'maxmemory'.",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "TRYAGAIN Multiple keys request during rehashing of slot",
]
WRONG = [
    "ERR unknown command 'NOPE'",
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "BUSYGROUP Consumer Group name already exists",
    "BUSYKEY Target key name already exists.",
    "NOSCRIPT No matching script. Please use EVAL.",
]


class RefusingRedis:
    """A fake Redis answering every command with one error reply; counts open connections."""

    def __init__(self, reply: str) -> None:
        self.reply = f"-{reply}\r\n".encode()
        self.open = 0
        self.opened = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.opened += 1
        commands = hiredis.Reader()
        try:
            while data := await reader.read(4096):
                commands.feed(data)
                while commands.gets() is not False:
                    writer.write(self.reply)
        finally:
            self.open -= 1
            writer.close()


@pytest.mark.parametrize("reply", UNAVAILABLE)
async def test_replies_meaning_not_now_raise_what_redis_py_raises(reply: str) -> None:
    async with RefusingRedis(reply) as port:
        client = MultiplexedRedis(port=port)
        with pytest.raises(redis.RedisError) as single:
            await client.execute("GET", "a")
        with pytest.raises(redis.RedisError) as atomic:
            await client.execute_many([("SET", "a", "1"), ("GET", "a")], atomic=True)
        await client.close()

    from_redis_py = BaseParser.parse_error(reply)
    for caught in (single.value, atomic.value):
        assert is_unavailable_reply(caught)
        assert type(caught) is type(from_redis_py)  # e.g. LOADING: BusyLoadingError
        assert str(caught) == reply  # the code kept in the message
    assert is_unavailable_reply(from_redis_py)


@pytest.mark.parametrize("reply", WRONG)
async def test_other_error_replies_are_not_unavailability(reply: str) -> None:
    async with RefusingRedis(reply) as port:
        client = MultiplexedRedis(port=port)
        with pytest.raises(ResponseError) as caught:
            await client.execute("GET", "a")
        await client.close()

    assert not is_unavailable_reply(caught.value)
    assert not is_unavailable_reply(BaseParser.parse_error(reply))
    assert type(caught.value) is type(BaseParser.parse_error(reply))


async def test_a_refused_select_closes_its_connection_and_the_next_call_tries_again() -> None:
    refusing = RefusingRedis(UNAVAILABLE[1])  # BUSY: SELECT is refused too
    async with refusing as port:
        client = MultiplexedRedis(port=port, db=3)
        for _ in range(3):
            with pytest.raises(ResponseError) as caught:
                await client.execute("GET", "a")
            assert is_unavailable_reply(caught.value)

        async def all_closed() -> None:
            while refusing.open:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(all_closed(), timeout=5)
        await client.close()

    assert refusing.opened == 3  # one try per call, none left open
