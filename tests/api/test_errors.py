"""Mapping pydantic errors to problem fields, without a server."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api.errors import field_errors
from core.experiment.limits import SpecLimitError
from core.experiment.spec import ExperimentSpec


def error(loc: tuple[Any, ...], msg: str, **ctx: Any) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": "value_error", "ctx": ctx}


def test_locations_become_dotted_paths_with_indices() -> None:
    errors = [error(("body", "model", "hidden_layers", 2), "too small")]
    assert field_errors(errors) == [{"field": "model.hidden_layers[2]", "reason": "too small"}]


def test_union_member_tags_are_dropped_and_reasons_joined() -> None:
    errors = [
        error(("body", "model", "activation", "str-enum[Activation]"), "not an activation"),
        error(("body", "model", "activation", "list[str-enum[Activation]]"), "not a list"),
    ]
    assert field_errors(errors) == [
        {"field": "model.activation", "reason": "not an activation or not a list"}
    ]


def test_spec_limit_errors_name_their_own_field() -> None:
    limit = SpecLimitError("training.epochs", "too many steps")
    errors = [error(("body",), "Value error, training.epochs: too many steps", error=limit)]
    assert field_errors(errors) == [{"field": "training.epochs", "reason": "too many steps"}]


def test_section_validators_name_their_field() -> None:
    with pytest.raises(ValidationError) as caught:
        ExperimentSpec.model_validate({"model": {"activation": ["tanh"], "hidden_layers": [3, 3]}})
    [problem] = field_errors(caught.value.errors())
    assert problem["field"] == "model.activation"
    assert problem["reason"].startswith("a list must name one activation per hidden layer")


def test_errors_on_the_whole_body_name_the_body() -> None:
    assert field_errors([error(("body",), "Input should be a valid dictionary")]) == [
        {"field": "body", "reason": "Input should be a valid dictionary"}
    ]
