"""Long epochs in several calls (core.engine.chunks): the same numbers as one call, the
same again bit for bit, and a hook between the calls stops a run mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from core.engine import chunks
from core.engine.run import RunOutput, run_ensemble, run_experiment
from core.experiment.hooks import TrainingCancelled, TrainingHook
from core.experiment.spec import ExperimentSpec
from tests.core.test_ensemble import assert_results_close

# 32 steps an epoch; at a budget of a few steps' cost, each epoch takes several calls.
SPEC: dict[str, Any] = {
    "seed": 3,
    "dataset": {"n_samples": 400, "validation_split": 0.2},
    "training": {"epochs": 3, "batch_size": 10},
    "capture": {"every": "step", "histogram_snapshots": 3},
}
SMALL_BUDGET = 3e6


def spec_of(**sections: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate({**SPEC, **sections})


@pytest.fixture
def small_calls() -> Iterator[None]:
    """Calls of a few steps, as a wide network's epoch would take."""
    budget = chunks.CALL_FLOPS
    chunks.CALL_FLOPS = SMALL_BUDGET
    try:
        yield
    finally:
        chunks.CALL_FLOPS = budget


class StopAfterCalls(TrainingHook):
    """Cancels at its `calls`-th pause between calls."""

    def __init__(self, calls: int) -> None:
        self.calls = calls
        self.paused: list[int] = []
        self.epochs: list[int] = []

    def on_chunk_end(self, epoch: int, epochs: int) -> None:
        self.paused.append(epoch)
        if len(self.paused) == self.calls:
            raise TrainingCancelled

    def on_epoch_end(self, epoch: int, epochs: int, logs: Any) -> None:
        self.epochs.append(epoch)


def test_a_spec_is_split_by_its_cost() -> None:
    tutorial = chunks.steps_per_call((2, 5, 5, 5, 5, 1), batch_size=32, activations_every_step=True)
    assert tutorial >= 32  # the tutorial's epoch, 32 steps, is one call
    widest = chunks.steps_per_call(
        (2, 512, 512, 512, 512, 1), batch_size=1, activations_every_step=True
    )
    assert widest < 100  # an epoch of 4,000 such steps takes 40 calls or more
    wide_batch = chunks.steps_per_call(
        (2, 512, 512, 512, 512, 1), batch_size=512, activations_every_step=True
    )
    assert wide_batch == 1
    assert (
        chunks.rows_per_call((2, 512, 512, 512, 512, 1))
        < 20_000
        < chunks.rows_per_call((2, 5, 5, 5, 5, 1))
    )


@pytest.mark.parametrize("every", ["step", "epoch"])
def test_an_epoch_in_calls_computes_what_one_call_does(small_calls: None, every: str) -> None:
    spec = spec_of(capture={"every": every, "histogram_snapshots": 3})
    calls = StopAfterCalls(calls=-1)
    in_calls = run_experiment(spec, [calls]).result
    assert len(calls.paused) > 3 * 2  # several pauses an epoch
    chunks.CALL_FLOPS = 1e12
    in_one = run_experiment(spec).result
    assert_results_close(in_calls, in_one)


def test_the_same_spec_in_calls_gives_the_same_numbers(small_calls: None) -> None:
    first, again = run_experiment(spec_of()).result, run_experiment(spec_of()).result
    for key in ("series", "history", "metrics", "tutorial", "histograms", "boundary"):
        assert first[key] == again[key], key


def test_a_hook_stops_a_run_between_calls(small_calls: None) -> None:
    hook = StopAfterCalls(calls=3)
    with pytest.raises(TrainingCancelled):
        run_experiment(spec_of(), [hook])
    assert hook.paused == [1, 1, 1]  # mid-way through the first epoch
    assert hook.epochs == []


def test_ensemble_members_stop_between_calls_and_the_others_go_on(small_calls: None) -> None:
    specs = [spec_of(seed=seed) for seed in (3, 4)]
    hooks = [StopAfterCalls(calls=3), StopAfterCalls(calls=-1)]
    outcomes = run_ensemble(specs, [[hook] for hook in hooks])
    assert isinstance(outcomes[0], TrainingCancelled)
    assert hooks[0].epochs == []
    assert isinstance(outcomes[1], RunOutput)
    assert hooks[1].epochs == [1, 2, 3]
    assert_results_close(outcomes[1].result, run_experiment(specs[1]).result)

    every = [StopAfterCalls(calls=2), StopAfterCalls(calls=3)]
    outcomes = run_ensemble(specs, [[hook] for hook in every])
    assert all(isinstance(outcome, TrainingCancelled) for outcome in outcomes)
    assert [hook.epochs for hook in every] == [[], []]
