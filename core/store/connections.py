"""Every connection the store opens, each with the same timeouts.

A Redis that holds the connection but stops answering (paused, or a network
dropping packets) must not hold a worker's heartbeat or job, nor an API
request, forever: connecting gives up after SOCKET_CONNECT_TIMEOUT, and a
command with no answer after SOCKET_TIMEOUT (blocking reads, XREAD BLOCK, wait
a few seconds at most, well within it). The multiplexed connection of the API
has its own, shorter, watchdog (core.store.multiplex.COMMAND_TIMEOUT): it never
sends a blocking command.
"""

from __future__ import annotations

import redis
import redis.asyncio

from core.store.multiplex import MultiplexedRedis

# The memory ceiling of a Redis this project starts (docker-compose.yml, `gradwatch
# serve`), and what it does there: refuse writes (OOM, answered 503) rather than evict.
# No eviction policy could keep job records, queued work and rate-limit keys while
# dropping caches, so the store bounds its caches itself (core.store.plots).
MAXMEMORY = "1gb"
MAXMEMORY_POLICY = "noeviction"
SOCKET_CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 30.0


def blocking_client(url: str) -> redis.Redis:
    """A redis-py client on `url` (the worker's, tests' and tools')."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=SOCKET_CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT
    )


def asyncio_client(url: str) -> redis.asyncio.Redis:
    """A redis.asyncio client on `url`: the API's, for blocking reads only."""
    return redis.asyncio.Redis.from_url(
        url, socket_connect_timeout=SOCKET_CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT
    )


def reader_client(url: str) -> redis.asyncio.Redis:
    """A redis.asyncio client on one connection of `url`: the API's event reader's
    (core.store.event_hub), which blocks on it."""
    return redis.asyncio.Redis.from_url(
        url,
        single_connection_client=True,
        socket_connect_timeout=SOCKET_CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
    )


def multiplexed_client(url: str) -> MultiplexedRedis:
    """The API's one auto-pipelined connection on `url`."""
    return MultiplexedRedis.from_url(url)


def ping(url: str, *, timeout: float) -> None:
    """Return once Redis at `url` answers PING; raise StoreError (core.store.errors) when
    it cannot be reached, or does not answer, within `timeout` seconds."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
    finally:
        client.close()
