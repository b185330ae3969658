"""A Redis that holds the connection but never answers: commands fail in bounded time,
on every connection the store opens."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from core.experiment.jobs import new_job_id
from core.settings import Settings
from core.store import connections
from core.store import multiplex as redis_multiplex
from core.store.errors import StoreTimeout
from core.store.multiplex import MultiplexedRedis
from core.store.stores import AsyncJobStore, AsyncStudyStore, JobStore, StudyStore


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


@contextlib.contextmanager
def _listening_never_answering() -> Iterator[str]:
    """The URL of a socket that takes connections (the kernel does, from its backlog) and
    never reads nor answers: a Redis paused, or behind a network that drops replies."""
    with socket.create_server(("127.0.0.1", 0)) as silent:
        yield f"redis://127.0.0.1:{silent.getsockname()[1]}/0"


def _outcome_within(seconds: float, call: Callable[[], object]) -> BaseException | object:
    """What `call` returned or raised; fails the test if it had not ended after `seconds`."""
    outcome: list[BaseException | object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still waiting after {seconds} s on a Redis that never answers"
    return outcome[0]


@pytest.mark.parametrize("store_class", [JobStore, StudyStore])
def test_a_blocking_store_from_settings_gives_up_on_a_redis_that_never_answers(
    store_class: type[JobStore], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "SOCKET_TIMEOUT", 0.3)
    with _listening_never_answering() as url:
        store = store_class.from_settings(settings.model_copy(update={"redis_url": url}))
        try:
            outcome = _outcome_within(5.0, store.ping)
        finally:
            store.close()
    assert isinstance(outcome, StoreTimeout), outcome


@pytest.mark.parametrize("store_class", [AsyncJobStore, AsyncStudyStore])
def test_an_async_store_from_settings_gives_up_on_a_redis_that_never_answers(
    store_class: type[AsyncJobStore], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "SOCKET_TIMEOUT", 0.3)
    monkeypatch.setattr(redis_multiplex, "COMMAND_TIMEOUT", 0.3)

    async def scenario(url: str) -> list[BaseException | object]:
        store = store_class.from_settings(settings.model_copy(update={"redis_url": url}))
        try:
            async with asyncio.timeout(5.0):
                return await asyncio.gather(
                    store.ping(),  # the multiplexed connection
                    store.read_events(new_job_id(), block_ms=100),  # a pooled one
                    return_exceptions=True,
                )
        finally:
            await store.close()

    with _listening_never_answering() as url:
        outcomes = asyncio.run(scenario(url))
    assert all(isinstance(outcome, StoreTimeout) for outcome in outcomes), outcomes
