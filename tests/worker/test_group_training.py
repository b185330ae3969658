"""One group message whose children fall into parts that train one after the other:
a part that ended stays ended when a later part fails."""

from __future__ import annotations

from typing import Any

import pytest

from core.experiment.jobs import JobStatus
from core.experiment.spec import ExperimentSpec
from core.settings import Settings
from core.store.stores import JobStore
from tests.worker.test_group_datasets import ended, train_as_one_group


def test_a_part_that_ended_is_not_failed_again_by_a_later_part(
    settings: Settings, store: JobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two children of different widths share no graph, so the worker trains them one
    after the other; the second one's training fails (a fault injected into the engine).
    The first keeps its success, in the store and in what the task returns."""
    from core.engine import run as engine  # TensorFlow, in this process

    trained = engine.run_experiment
    calls: list[int] = []

    def second_fails(spec: ExperimentSpec, hooks: Any = ()) -> Any:
        calls.append(spec.seed)
        if len(calls) == 2:
            raise RuntimeError("the engine failed")
        return trained(spec, hooks=hooks)

    monkeypatch.setattr(engine, "run_experiment", second_fails)
    specs = [
        {"seed": 1, "model": {"hidden_layers": [5, 5]}, "training": {"epochs": 2}},
        {"seed": 2, "model": {"hidden_layers": [6, 6]}, "training": {"epochs": 2}},
    ]
    ids, statuses = train_as_one_group(settings, store, specs)

    assert calls == [1, 2]
    assert statuses == {ids[0]: JobStatus.SUCCEEDED, ids[1]: JobStatus.FAILED}
    assert ended(store, ids[0]).status is JobStatus.SUCCEEDED
    failed = ended(store, ids[1])
    assert failed.status is JobStatus.FAILED and failed.error is not None
    assert failed.error["type"] == "RuntimeError"
