"""The page a pool process writes and its worker's main process reads (worker.pool_state)."""

from __future__ import annotations

import functools
import os
import signal
from typing import Any

import pytest

from core.store.stores import JobStore
from tests.conftest import wait_for
from worker import pool_state
from worker.heartbeat import Heartbeat
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


def test_a_pool_process_killed_mid_write_does_not_poison_the_page() -> None:
    pool_state.publish(PoolState(ready=True, warm=[("0123456789abcdef", 1, True)]))

    child = os.fork()
    if child == 0:  # killed between the two halves of a write, as publish makes it
        sequence = pool_state._HEADER.unpack_from(pool_state._page, 0)[0]
        pool_state._HEADER.pack_into(pool_state._page, 0, sequence + 1, 0)
        pool_state._page[pool_state._HEADER.size : pool_state._HEADER.size + 9] = b'{"ready":'
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(child, 0)
    assert pool_state.read() == PoolState()  # half a write is not read

    replacement = PoolState(ready=True, warm=[("fedcba9876543210", 2, False)])
    pool_state.publish(replacement)
    assert pool_state.read() == replacement
    pool_state.publish(PoolState())
    assert pool_state.read() == PoolState()


def test_warm_networks_past_the_page_are_left_out_oldest_first() -> None:
    warm = [(f"{index:016x}", 1, True) for index in range(1000)]
    pool_state.publish(PoolState(ready=True, warm=warm))

    read = pool_state.read()
    assert read.ready
    assert 10 < len(read.warm) < len(warm)
    assert read.warm == warm[: len(read.warm)]


def test_a_starting_worker_joins_the_live_set_once_its_pool_is_ready(store: JobStore) -> None:
    queue, hostname = "pool-readiness", "starting@test"
    pool_state.publish(PoolState(ready=False))
    heartbeat = Heartbeat(store, hostname, [queue], seconds=0.1, wait_for_pool=60.0)
    try:
        heartbeat.beat()
        assert hostname not in store.live_workers(queue=queue)

        pool_state.publish(PoolState(ready=True))
        heartbeat.beat()
        assert hostname in store.live_workers(queue=queue)

        pool_state.publish(PoolState(ready=False))  # a pool process replaced later
        heartbeat.beat()
        assert hostname in store.live_workers(queue=queue)  # live it stays
    finally:
        store.forget_worker(queue=queue, hostname=hostname)


def test_a_worker_whose_pool_never_says_ready_joins_after_the_wait(store: JobStore) -> None:
    queue, hostname = "pool-readiness", "stuck@test"
    pool_state.publish(PoolState(ready=False))
    heartbeat = Heartbeat(store, hostname, [queue], seconds=0.1, wait_for_pool=0.2)
    try:
        heartbeat.beat()
        assert hostname not in store.live_workers(queue=queue)
        wait_for(lambda: heartbeat.beat() or hostname in store.live_workers(queue=queue),
                 timeout=5, what="the wait to pass")  # fmt: skip
    finally:
        store.forget_worker(queue=queue, hostname=hostname)


def test_the_warm_start_traces_the_first_jobs_graph_and_the_tutorial_studys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core.engine import graph_cache
    from core.engine.ensemble import EnsembleTrainer
    from core.engine.run import RunOutput, run_ensemble, run_experiment
    from core.engine.trainer import CompiledTrainer, EpochGraph
    from core.experiment.spec import ExperimentSpec
    from core.experiment.studies import StudyRequest, expand_study
    from core.experiment.study_presets import study_preset
    from worker.training import _trace_and_draw

    # The graph code runs in Python only while a graph is traced, or op by op.
    ran_in_python: list[str] = []
    for owner, name in (
        (EpochGraph, "_train_epoch"),
        *((trainer, name) for trainer in (CompiledTrainer, EnsembleTrainer)
          for name in ("_evaluate_sums", "_predict")),
    ):  # fmt: skip
        method = getattr(owner, name)

        @functools.wraps(method)
        def recorded(self: Any, *args: Any, _method: Any = method, _name: str = name) -> Any:
            ran_in_python.append(_name)
            return _method(self, *args)

        monkeypatch.setattr(owner, name, recorded)
    graph_cache.clear()
    try:
        _trace_and_draw()
        ran_in_python.clear()
        # `{}`, alone
        result = run_experiment(ExperimentSpec.model_validate({"training": {"epochs": 1}})).result
        assert result["timing"] == result["timing"] | {"graph": "plain", "graph_reused": True}
        # the `tutorial` study's children, side by side as the API groups them
        study = study_preset("tutorial").study
        base = {**study["base"], "training": {**study["base"]["training"], "epochs": 1}}
        children = expand_study(StudyRequest.model_validate({**study, "base": base})).children
        for output in run_ensemble(children, [[] for _ in children]):
            assert isinstance(output, RunOutput)
            timing = output.result["timing"]
            assert timing == timing | {"graph": "plain", "graph_reused": True, "members": 3}
        assert ran_in_python == [], "the first jobs traced or ran op by op what the warm-up had not"
    finally:
        graph_cache.clear()
