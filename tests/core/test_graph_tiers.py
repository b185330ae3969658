"""The tier rule per kind of network (core.engine.graph_cache.TIER_RULES): which kind of
graph `auto` gives an MLP, a convolutional and a recurrent network, and that an XLA
compile is queued in the background where the rule says XLA pays and nowhere else."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.engine import graph_cache
from core.engine.layered import LayeredArchitecture
from core.engine.network import Architecture
from core.engine.run import run_experiment
from core.experiment.grouping import graph_signature
from core.experiment.spec import ExperimentSpec
from tests.core.test_graph_kinds import tiered  # noqa: F401 (a fixture, used by name)

CONV = {
    "dataset": {"kind": "bars", "image_size": 8, "n_samples": 96},
    "model": {
        "layers": [
            {
                "class_name": "Conv2D",
                "config": {"filters": 4, "kernel_size": 3, "activation": "relu"},
            },
            {"class_name": "GlobalAveragePooling2D"},
        ]
    },
}


def recurrent(*layers: dict[str, Any], steps: int) -> dict[str, Any]:
    dataset = {"kind": "recall", "sequence_length": steps, "n_samples": 96, "classes": 3}
    return {"dataset": dataset, "model": {"layers": list(layers)}}


def cell(class_name: str) -> dict[str, Any]:
    return {"class_name": class_name, "config": {"units": 4}}


SHORT_RNN = recurrent(cell("SimpleRNN"), steps=6)
LONG_GRU = recurrent(cell("GRU"), steps=100)  # an epoch of several graph calls
LONG_LSTM = recurrent(cell("LSTM"), steps=100)
CONV_GRU = recurrent(
    {"class_name": "Conv1D", "config": {"filters": 4, "kernel_size": 3, "padding": "causal"}},
    cell("GRU"),
    steps=100,
)
MLP = {"dataset": {"n_samples": 96}, "model": {"hidden_layers": [5, 5]}}
# A layer list of dense layers alone is an MLP to the rule.
DENSE_LIST = {
    "dataset": {"n_samples": 96},
    "model": {"layers": [{"class_name": "Dense", "config": {"units": 5, "activation": "tanh"}}]},
}
LONG = 10**6  # optimizer steps: past any rule's `xla_min_steps`


def spec_of(network: dict[str, Any], graph: str = "auto", seed: int = 3) -> ExperimentSpec:
    training = {"epochs": 1, "batch_size": 32, "graph": graph}
    return ExperimentSpec.model_validate({**network, "seed": seed, "training": training})


def architecture_of(spec: ExperimentSpec) -> Architecture | LayeredArchitecture:
    if spec.model.layers is not None:
        return LayeredArchitecture.from_spec(spec)
    return Architecture.from_spec(spec.model, n_features=2, n_outputs=1, regression=False)


@pytest.mark.parametrize(
    ("network", "kind"),
    [
        (CONV, "conv"),
        (SHORT_RNN, "simple_rnn_or_gru"),
        (LONG_GRU, "simple_rnn_or_gru"),
        (LONG_LSTM, "lstm"),
        (CONV_GRU, "conv"),  # two kinds' layers: the one XLA pays less for
        (MLP, "mlp"),
        (DENSE_LIST, "mlp"),
    ],
)
def test_each_network_follows_its_kinds_rule(network: dict[str, Any], kind: str) -> None:
    assert graph_cache.network_kind(architecture_of(spec_of(network))) == kind


# (mode, steps, held): a worker's first run of a network, its run of one it holds
# XLA's graph for, its long run; a fresh process's long and short runs; the
# operator's override (GRADWATCH_XLA=always).
CASES: list[tuple[graph_cache.XlaMode, int, bool]] = [
    ("tiered", 3, False),
    ("tiered", 3, True),
    ("tiered", LONG, False),
    ("auto", LONG, False),
    ("auto", 3, False),
    ("always", 3, False),
    ("auto", 5_000, False),  # past a long loop's `xla_min_steps`, short of an MLP's
]
# (XLA, compile XLA in the background) in each case
PLAIN_ALWAYS = [
    (False, False),
    (True, False),
    (False, False),
    (False, False),
    (False, False),
    (True, False),
    (False, False),
]
MLP_TIERS = [
    (False, True),
    (True, False),
    (True, False),
    (True, False),
    (False, False),
    (True, False),
    (False, False),
]
LONG_LOOP_TIERS = [*MLP_TIERS[:-1], (True, False)]


@pytest.mark.parametrize(
    ("network", "expected"),
    [
        (CONV, PLAIN_ALWAYS),
        (SHORT_RNN, PLAIN_ALWAYS),
        (LONG_LSTM, PLAIN_ALWAYS),
        (CONV_GRU, PLAIN_ALWAYS),
        (LONG_GRU, LONG_LOOP_TIERS),
        (MLP, MLP_TIERS),
        (DENSE_LIST, MLP_TIERS),
    ],
)
def test_auto_resolves_to_the_tier_the_kinds_rule_says(
    network: dict[str, Any], expected: list[tuple[bool, bool]]
) -> None:
    architecture = architecture_of(spec_of(network))
    resolved = [
        graph_cache.auto_graph(architecture, steps=steps, mode=mode, held=held)
        for mode, steps, held in CASES
    ]
    assert resolved == expected


@pytest.fixture
def tiered_and_shut() -> Iterator[None]:
    """A tiered process (a worker's pool process) whose compile gate stays shut: a
    compile asked for stays queued, where `wait_for_compiles(timeout=0)` sees it."""
    mode = graph_cache.xla_mode()
    graph_cache.clear()
    graph_cache.set_xla_mode("tiered")
    graph_cache.set_compile_gate(lambda: False)
    try:
        yield
    finally:
        graph_cache.clear()  # the queued compiles dropped before the gate opens
        graph_cache.set_compile_gate(graph_cache.always_open)
        graph_cache.set_xla_mode(mode)


@pytest.mark.parametrize("network", [CONV, SHORT_RNN, LONG_LSTM])
def test_a_worker_queues_no_xla_compile_where_the_rule_says_it_never_pays(
    tiered_and_shut: None, network: dict[str, Any]
) -> None:
    for seed in (1, 2):  # a first run and a repeat
        result = run_experiment(spec_of(network, seed=seed)).result
        assert result["timing"]["graph"] == "plain"
        assert graph_cache.wait_for_compiles(timeout=0)  # nothing queued, nothing compiling
    signature = graph_signature(spec_of(network))
    assert graph_cache.warm_graphs() == [graph_cache.WarmGraph(signature, 1, xla=False)]


@pytest.mark.parametrize("network", [MLP, LONG_GRU])
def test_a_worker_queues_an_xla_compile_where_the_rule_says_it_pays_once_it_recurs(
    tiered_and_shut: None, network: dict[str, Any]
) -> None:
    assert run_experiment(spec_of(network)).result["timing"]["graph"] == "plain"
    assert graph_cache.wait_for_compiles(timeout=0)  # a first run costs no compile
    assert run_experiment(spec_of(network, seed=2)).result["timing"]["graph"] == "plain"
    assert not graph_cache.wait_for_compiles(timeout=0)  # queued behind the shut gate


def test_a_pinned_xla_is_honoured_for_a_convolution(tiered_and_shut: None) -> None:
    result = run_experiment(spec_of(CONV, graph="xla")).result
    assert result["timing"]["graph"] == "xla"
    assert result["spec"]["training"]["graph"] == "xla"


EXITS_WHILE_COMPILING = """
from core.engine import graph_cache
from core.engine.run import run_experiment
from core.experiment.spec import ExperimentSpec

graph_cache.set_xla_mode("tiered")
spec = ExperimentSpec.model_validate({"seed": 1, "training": {"epochs": 1}})
for _ in range(3):  # it recurs: its XLA graph compiles in the background
    run_experiment(spec)
assert not graph_cache.wait_for_compiles(timeout=0.3), "no compile under way"
print("exiting while XLA compiles", flush=True)
"""


def test_a_process_that_ends_while_xla_compiles_exits_cleanly() -> None:
    """The compile thread is a daemon: left inside XLA as the interpreter ends, it aborted
    the process (exit 134, "FATAL: exception not rethrown"): a pool process recycled, a
    worker shut down or a test run ending at that moment."""
    ended = subprocess.run(
        [sys.executable, "-c", EXITS_WHILE_COMPILING],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert "exiting while XLA compiles" in ended.stdout, ended.stderr[-2000:]
    assert ended.returncode == 0, ended.stderr[-2000:]
    assert "FATAL" not in ended.stderr


@pytest.mark.usefixtures("tiered")
def test_a_long_recurrent_loop_that_recurs_trains_on_xla_once_compiled() -> None:
    # The background compile builds its graphs on zeros of a sequence's shape, not of
    # an MLP's flat rows: a run of the network then takes the compiled trainer.
    first, second = (run_experiment(spec_of(LONG_GRU, seed=seed)).result for seed in (1, 2))
    assert first["timing"]["graph"] == second["timing"]["graph"] == "plain"
    assert graph_cache.wait_for_compiles(timeout=120)
    signature = graph_signature(spec_of(LONG_GRU))
    assert graph_cache.warm_graphs() == [graph_cache.WarmGraph(signature, 1, xla=True)]
    third = run_experiment(spec_of(LONG_GRU, seed=3)).result
    assert third["timing"] == third["timing"] | {"graph": "xla", "graph_reused": True}
