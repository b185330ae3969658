"""Which kind of graph trains a run: `training.graph` pins it, the result says which
ran, each kind repeats bit for bit, the two agree to float32 rounding, and a tiered
process trains a network on the plain graph until it recurs, then compiles XLA for
its next runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pytest
import tensorflow as tf

from core.engine import graph_cache
from core.engine.graph_calls import graph_function, tracing_all, unrolls_probe
from core.engine.run import RunOutput, run_ensemble, run_experiment
from core.experiment.grouping import graph_signature
from core.experiment.hooks import TrainingCancelled, TrainingHook
from core.experiment.spec import ExperimentSpec
from tests.core.test_ensemble import assert_results_close

COMPARED = ("series", "history", "metrics", "tutorial", "histograms", "boundary", "initial")


def spec_of(graph: str = "auto", **sections: Any) -> ExperimentSpec:
    payload: dict[str, Any] = {
        "seed": 5,
        "dataset": {"n_samples": 300, "validation_split": 0.2},
        "training": {"epochs": 6, "graph": graph},
        "capture": {"histogram_snapshots": 3},
    }
    return ExperimentSpec.model_validate(payload | sections)


def graphs_of(outcomes: list[RunOutput | TrainingCancelled]) -> list[str]:
    return [o.result["timing"]["graph"] for o in outcomes if isinstance(o, RunOutput)]


@pytest.fixture
def tiered() -> Iterator[None]:
    """A process in the tiered mode, as a worker's pool process, with an empty cache."""
    mode = graph_cache.xla_mode()
    graph_cache.clear()
    graph_cache.set_xla_mode("tiered")
    try:
        yield
    finally:
        graph_cache.wait_for_compiles(timeout=120)
        graph_cache.set_xla_mode(mode)
        graph_cache.set_compile_after(graph_cache.COMPILE_AFTER_RUNS)


@pytest.mark.parametrize("graph", ["plain", "xla"])
def test_a_pinned_kind_trains_and_is_recorded(graph: str) -> None:
    result = run_experiment(spec_of(graph)).result
    assert result["timing"]["graph"] == graph
    assert result["spec"]["training"]["graph"] == graph


@pytest.mark.parametrize("graph", ["plain", "xla"])
def test_the_same_spec_on_the_same_kind_repeats_bit_for_bit(graph: str) -> None:
    first = run_experiment(spec_of(graph)).result  # evaluates and predicts op by op
    again = run_experiment(spec_of(graph)).result  # the same trainer, reused
    third = run_experiment(spec_of(graph)).result  # by now on traced graphs throughout
    graph_cache.clear()
    fresh = run_experiment(spec_of(graph)).result  # a trainer built anew
    assert again["timing"]["graph_reused"] and not fresh["timing"]["graph_reused"]
    for part in COMPARED:
        assert first[part] == again[part] == third[part] == fresh[part], part


def test_a_function_runs_op_by_op_for_its_first_calls_then_traced() -> None:
    python_calls = []

    def scaled_sum(x: tf.Tensor) -> tf.Tensor:
        python_calls.append(tf.executing_eagerly())
        return tf.reduce_sum(tf.sqrt(x) * 3.0)

    fn = graph_function(scaled_sum, jit=False, eager_calls=2)
    x = np.linspace(0.1, 7.0, 101, dtype=np.float32)
    results = [np.asarray(fn(x)) for _ in range(5)]
    # twice op by op, then traced once, and the traced graph serves every later call
    assert python_calls == [True, True, False]
    assert all(r.tobytes() == results[0].tobytes() for r in results)
    # a warm-up traces from the first call
    python_calls.clear()
    warmed = graph_function(scaled_sum, jit=False, eager_calls=2)
    with tracing_all():
        assert np.asarray(warmed(x)).tobytes() == results[0].tobytes()
    assert np.asarray(warmed(x)).tobytes() == results[0].tobytes()
    assert python_calls == [False]


def test_a_probe_unrolls_its_small_products_inside_an_xla_graph_only() -> None:
    seen: list[bool] = []

    def probe(x: tf.Tensor) -> tf.Tensor:
        seen.append(unrolls_probe(jit=True))
        return x

    probe(tf.zeros(1))  # op by op, as a run's start is probed: each term would be an op
    graph_function(probe, jit=True)(np.zeros(1, np.float32))
    on_a_cpu = not tf.config.list_physical_devices("GPU")
    assert seen == [False, on_a_cpu]
    assert not unrolls_probe(jit=False)


@pytest.mark.parametrize(
    "model",
    [
        {"activation": "sigmoid"},
        {"hidden_layers": [9, 4, 12], "activation": ["relu", "tanh", "softsign"]},
    ],
)
def test_the_two_kinds_agree_to_float32_rounding(model: dict[str, Any]) -> None:
    plain = run_experiment(spec_of("plain", model=model)).result
    xla = run_experiment(spec_of("xla", model=model)).result
    for part in COMPARED:
        assert_results_close(xla[part], plain[part], part)


def test_a_tiered_process_compiles_a_network_once_it_recurs(tiered: None) -> None:
    spec = spec_of()
    plain_held = [graph_cache.WarmGraph(graph_signature(spec), 1, False)]
    assert run_experiment(spec).result["timing"]["graph"] == "plain"
    # Run once, a network costs no compile: nothing queued, only its plain graph held.
    assert graph_cache.wait_for_compiles(timeout=0)
    assert graph_cache.warm_graphs() == plain_held

    assert run_experiment(spec_of(seed=6)).result["timing"]["graph"] == "plain"
    assert graph_cache.wait_for_compiles(timeout=120)
    assert graph_cache.warm_graphs() == [graph_cache.WarmGraph(graph_signature(spec), 1, True)]

    again = run_experiment(spec_of(seed=7)).result
    assert again["timing"] == again["timing"] | {"graph": "xla", "graph_reused": True}
    # a pinned kind is honoured all the same, and a pinned run does not count as a sighting
    assert run_experiment(spec_of("plain")).result["timing"]["graph"] == "plain"


class _NoCompileBeside(TrainingHook):
    """Notes, at each epoch's end, whether a compile is queued or under way."""

    def __init__(self) -> None:
        self.compiling: list[bool] = []

    def on_epoch_end(self, epoch: int, epochs: int, logs: Mapping[str, float | None]) -> None:
        self.compiling.append(not graph_cache.wait_for_compiles(timeout=0))


def test_the_run_that_asks_for_a_compile_is_not_run_beside_it(tiered: None) -> None:
    run_experiment(spec_of())
    asking = _NoCompileBeside()
    assert run_experiment(spec_of(seed=6), hooks=[asking]).result["timing"]["graph"] == "plain"
    assert asking.compiling == [False] * 6  # the compile waited for the run to end
    assert graph_cache.wait_for_compiles(timeout=120)
    assert run_experiment(spec_of(seed=7)).result["timing"]["graph"] == "xla"


class _CompileEndsDuringTheRun(TrainingHook):
    """At the first epoch's end, waits for the compile queued before the run to finish."""

    def __init__(self) -> None:
        self.compiled: list[bool] = []

    def on_epoch_end(self, epoch: int, epochs: int, logs: Mapping[str, float | None]) -> None:
        if epoch == 1:
            self.compiled.append(graph_cache.wait_for_compiles(timeout=120))


def test_a_run_whose_compile_ended_beside_it_asks_for_no_second_one(tiered: None) -> None:
    """A network's third run starts on the plain graph while its compile (asked for by
    the second) is under way; the compile ends before the run does. The run's end must
    not queue the same network's compile again: it would cost a core for nothing."""
    graph_cache.set_compile_gate(lambda: False)  # the second run's compile waits
    try:
        for seed in (5, 6):
            assert run_experiment(spec_of(seed=seed)).result["timing"]["graph"] == "plain"
        assert not graph_cache.wait_for_compiles(timeout=0)  # queued behind the gate
        graph_cache.set_compile_gate(graph_cache.always_open)
        during = _CompileEndsDuringTheRun()
        third = run_experiment(spec_of(seed=7), hooks=[during]).result
        assert third["timing"]["graph"] == "plain" and during.compiled == [True]
        assert graph_cache.wait_for_compiles(timeout=0)  # nothing queued again
        assert run_experiment(spec_of(seed=8)).result["timing"]["graph"] == "xla"
    finally:
        graph_cache.set_compile_gate(graph_cache.always_open)


def test_pinned_runs_do_not_make_a_network_recur(tiered: None) -> None:
    for seed in (1, 2):
        assert run_experiment(spec_of("plain", seed=seed)).result["timing"]["graph"] == "plain"
    assert run_experiment(spec_of()).result["timing"]["graph"] == "plain"
    assert graph_cache.wait_for_compiles(timeout=0)
    assert not any(graph.xla for graph in graph_cache.warm_graphs())


def test_compiling_after_one_run_compiles_from_a_networks_first(tiered: None) -> None:
    graph_cache.set_compile_after(1)
    assert run_experiment(spec_of()).result["timing"]["graph"] == "plain"
    assert graph_cache.wait_for_compiles(timeout=120)
    assert run_experiment(spec_of(seed=6)).result["timing"]["graph"] == "xla"


def test_compiling_after_fewer_than_one_run_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        graph_cache.set_compile_after(0)


def test_a_tiered_ensemble_compiles_for_its_members_too(tiered: None) -> None:
    specs = [spec_of(seed=seed) for seed in (1, 2)]
    for _ in range(2):
        assert graphs_of(run_ensemble(specs, [[], []])) == ["plain", "plain"]
    assert graph_cache.wait_for_compiles(timeout=120)
    assert graphs_of(run_ensemble(specs, [[], []])) == ["xla", "xla"]


def test_a_shut_gate_holds_the_compile_until_it_opens(tiered: None) -> None:
    asked, open_ = threading.Event(), threading.Event()

    def gate() -> bool:
        asked.set()
        return open_.is_set()

    graph_cache.set_compile_gate(gate)
    graph_cache.set_compile_after(1)
    try:
        spec = spec_of()
        assert run_experiment(spec).result["timing"]["graph"] == "plain"
        assert asked.wait(timeout=60)
        assert not graph_cache.wait_for_compiles(timeout=0.5)  # still queued
        assert run_experiment(spec_of(seed=6)).result["timing"]["graph"] == "plain"

        open_.set()
        assert graph_cache.wait_for_compiles(timeout=120)
        assert run_experiment(spec_of(seed=7)).result["timing"]["graph"] == "xla"
    finally:
        graph_cache.set_compile_gate(graph_cache.always_open)


def test_the_cache_holds_its_slots_of_networks_the_least_recently_used_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(graph_cache, "CACHE_SLOTS", 2)
    graph_cache.clear()
    specs = [spec_of("plain", model={"hidden_layers": [width]}) for width in (3, 4, 5)]
    for spec in (specs[0], specs[1], specs[0], specs[2]):
        run_experiment(spec)
    held = [graph.signature for graph in graph_cache.warm_graphs()]
    assert held == [graph_signature(specs[2]), graph_signature(specs[0])]
    again = run_experiment(specs[1]).result  # dropped: built anew
    assert not again["timing"]["graph_reused"]
    graph_cache.clear()


def test_a_tiered_process_compiles_only_where_it_pays(tiered: None) -> None:
    # An epoch too long for one call (core.engine.chunks) is arithmetic: no compile.
    graph_cache.set_compile_after(1)
    wide = spec_of(
        dataset={"n_samples": 600},
        model={"hidden_layers": [512, 512]},
        training={"epochs": 1, "batch_size": 1},
    )
    assert run_experiment(wide).result["timing"]["graph"] == "plain"
    assert graph_cache.wait_for_compiles(timeout=5)
    assert graph_cache.warm_graphs() == [graph_cache.WarmGraph(graph_signature(wide), 1, False)]


def test_specs_that_differ_only_where_a_graph_does_not_share_its_signature() -> None:
    base = spec_of()
    alike = [
        spec_of(seed=9),
        spec_of(training={"epochs": 50, "optimizer": {"learning_rate": 0.1}}),
        spec_of(model={"initializer": {"kind": "glorot_uniform"}}),
        spec_of(dataset={"n_samples": 300, "validation_split": 0.2, "noise": 0.3}),
    ]
    unlike = [
        spec_of(model={"hidden_layers": [5, 5, 5]}),
        spec_of(training={"batch_size": 16}),
        spec_of(dataset={"n_samples": 400, "validation_split": 0.2}),
        spec_of(capture={"every": "step"}),
        spec_of(training={"optimizer": {"kind": "adam"}}),
    ]
    assert {graph_signature(spec) for spec in alike} == {graph_signature(base)}
    assert len({graph_signature(spec) for spec in [base, *unlike]}) == 1 + len(unlike)
