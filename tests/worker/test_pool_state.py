"""The page a pool process writes and its worker's main process reads (worker.pool_state)."""

from __future__ import annotations

import os

from worker import pool_state
from worker.pool_state import PoolState


def test_what_a_forked_process_publishes_its_parent_reads() -> None:
    pool_state.publish(PoolState())
    assert pool_state.read() == PoolState()
    state = PoolState(
        ready=True, warm=[("0123456789abcdef", 1, True), ("fedcba9876543210", 4, False)]
    )

    child = os.fork()
    if child == 0:  # the pool process: publish and leave, touching nothing else
        pool_state.publish(state)
        os._exit(0)
    os.waitpid(child, 0)

    assert pool_state.read() == state


def test_warm_networks_past_the_page_are_left_out_oldest_first() -> None:
    warm = [(f"{index:016x}", 1, True) for index in range(1000)]
    pool_state.publish(PoolState(ready=True, warm=warm))

    read = pool_state.read()
    assert read.ready
    assert 10 < len(read.warm) < len(warm)
    assert read.warm == warm[: len(read.warm)]
