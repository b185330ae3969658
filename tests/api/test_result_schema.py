"""The result's schema (api.result_schema) reads results of versions 1 and 2, kept from
real runs, and a convolution's per-channel gradient norms (version 3).

Version 3 results are read from real runs too, by a generated client
(tests/api/test_generated_client.py): an MLP's and a recurrent layer list's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from api.result_schema import ExperimentResult

STORED = Path(__file__).resolve().parent.parent / "core" / "fixtures"
FIXTURES = sorted(STORED.glob("v1_*.json"))
V2 = sorted(STORED.glob("v2_*.json"))


def load(path: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(path.read_text())
    return result


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.name)
def test_the_schema_reads_a_version_1_result(path: Path) -> None:
    result = load(path)
    read = ExperimentResult.model_validate(result)
    assert read.version == 1 and read.through_time is None
    assert set(read.series) == set(result["series"])
    # What the models do not name is kept, not dropped: a layer's weights by their names.
    for layer in read.series.values():
        assert layer.model_extra is not None and set(layer.model_extra) == {"kernel", "bias"}


@pytest.mark.parametrize("path", V2, ids=lambda path: path.name)
def test_the_schema_reads_a_version_2_result(path: Path) -> None:
    """Its step points' activations were on the probe: it says nothing of their source."""
    result = load(path)
    read = ExperimentResult.model_validate(result)
    assert read.version == 2 and read.capture.activations is None and read.channels is None
    assert set(read.series) == set(result["series"])
    assert (read.through_time is not None) == ("lstm_1" in result["series"])


def test_the_schema_reads_a_convolutions_channels() -> None:
    from core.engine.run import run_experiment
    from core.experiment.result import dumps_result
    from core.experiment.spec import ExperimentSpec
    from tests.core.test_channels import SEQUENCE_LAYERS, conv_spec

    result = json.loads(dumps_result(run_experiment(conv_spec(SEQUENCE_LAYERS)).result))
    read = ExperimentResult.model_validate(result)
    assert read.version == 3 and read.channels is not None
    conv = read.channels["conv1d_1"]
    assert conv.channels == list(range(5)) and conv.epoch == [1, 2]
    assert len(conv.gradient_norm) == read.capture.points == 2
    assert all(len(row) == 5 for row in conv.gradient_norm) and len(conv.initial) == 5
    assert read.model_dump(mode="json", exclude_unset=True)["channels"] == result["channels"]
    assert isinstance(read.spec, ExperimentSpec)


def test_a_result_missing_a_section_is_refused() -> None:
    result = load(FIXTURES[0])
    del result["metrics"]
    with pytest.raises(ValueError, match="metrics"):
        ExperimentResult.model_validate(result)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda path: path.name)
def test_a_version_1_result_reads_its_spec_and_evidence_typed(path: Path) -> None:
    """The spec as run is an ExperimentSpec, the evidence its typed members: the gradient
    flow (before `first_layer` was added), the activations' fractions, `not_judged`."""
    result = load(path)
    read = ExperimentResult.model_validate(result)
    assert read.spec.seed == result["seed"]
    assert read.spec.model_dump(mode="json", exclude_unset=True) == result["spec"]
    evidence = read.diagnosis.evidence
    assert evidence.gradient_flow.first_layer is None
    flow = result["diagnosis"]["evidence"]["gradient_flow"]
    assert evidence.gradient_flow.first_to_last_rms_ratio == flow["first_to_last_rms_ratio"]
    assert evidence.dead_units or evidence.saturated
    assert evidence.model_dump(exclude_unset=True) == result["diagnosis"]["evidence"]
