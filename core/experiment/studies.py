"""Comparison studies: one request, a grid of experiments, one table.

A study is a `base` experiment spec, `axes` (a spec field path -> the values
to try) and `seeds` (runs per configuration). Its configurations are the
Cartesian product of the axes, in the order given; each configuration runs
`seeds` times with seeds `seed, seed + 1, ...`, the same for every
configuration, so configurations are compared on the same data and the same
initial draws. `{"preset": NAME}` names a ready study (see
`core.experiment.study_presets.STUDY_PRESETS`).

Everything here is pure: `expand_study` validates a request and returns the
child specs (core.experiment.study_axes names the axes and their values);
core.experiment.study_summary turns the finished children into the study's table.

Example:
    >>> plan = expand_study(StudyRequest.model_validate(
    ...     {"base": {"training": {"epochs": 5}},
    ...      "axes": {"model.activation": ["sigmoid", "relu"]}, "seeds": 2}))
    >>> [child.model.activation.value for child in plan.children]
    ['sigmoid', 'sigmoid', 'relu', 'relu']
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, StrictInt, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from core.experiment.limits import Limits, SpecLimitError
from core.experiment.spec import DatasetSpec, ExperimentSpec, draw_seed
from core.experiment.study_axes import (
    check_path,
    config_label,
    overlapping,
    set_path,
)
from core.experiment.study_presets import STUDY_PRESETS, study_preset

MAX_CHILDREN = 64  # experiments in one study, seeds included
MAX_SEEDS = 16
MAX_AXES = 6

AxisValues = Annotated[list[Any], Field(min_length=1, max_length=MAX_CHILDREN)]


class _DatasetAxisTyped:
    """Publishes the values of a `dataset` axis, each a whole dataset section replacing the
    base's, as `DatasetSpec`s (its union keyed on kind); any other axis's values are any."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        published = handler(schema)
        datasets = core_schema.list_schema(DatasetSpec.__pydantic_core_schema__)
        published["properties"] = {
            "dataset": {**published["additionalProperties"], "items": handler(datasets)["items"]}
        }
        return published


class StudyRequest(BaseModel):
    """What a client POSTs: a base spec, axes and seeds, or a preset's name.

    With `preset`, `seeds` and `name` may still be given; `base` and `axes`
    come from the preset.
    """

    model_config = ConfigDict(extra="forbid")

    preset: str | None = Field(None, max_length=64, description="a study preset's name")
    name: str | None = Field(None, max_length=Limits.NAME_LENGTH)
    base: dict[str, Any] = Field(
        default_factory=dict, description="an experiment spec; `{}` is the tutorial's"
    )
    axes: Annotated[dict[str, AxisValues], _DatasetAxisTyped()] = Field(
        default_factory=dict,
        max_length=MAX_AXES,
        description="spec field path -> values, e.g. {'model.activation': ['sigmoid', 'relu']}",
    )
    seeds: StrictInt = Field(1, ge=1, le=MAX_SEEDS, description="runs per configuration")


class StudyError(ValueError):
    """A study request that cannot run; `errors` are {"field", "reason"} like the API's."""

    def __init__(self, errors: Sequence[Mapping[str, str]]) -> None:
        self.errors = [dict(error) for error in errors]
        super().__init__("; ".join(f"{e['field']}: {e['reason']}" for e in self.errors))


@dataclass(frozen=True, slots=True)
class StudyConfig:
    """One point of the grid: its index, a short label and the value of each axis."""

    index: int
    label: str
    values: dict[str, Any]

    def to_json_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label, "values": self.values}


@dataclass(frozen=True, slots=True)
class StudyPlan:
    """A validated study: what to store (`request`), its grid and its child specs.

    `children` is configuration-major: child `c * seeds + s` is configuration
    `c`, seed number `s`.
    """

    request: dict[str, Any]
    configs: list[StudyConfig]
    seeds: int
    children: list[ExperimentSpec]

    def config_of(self, child: int) -> int:
        return child // self.seeds


def resolve_preset(request: StudyRequest) -> StudyRequest:
    """The request a preset stands for (its `seeds` and `name` kept when given)."""
    if request.preset is None:
        return request
    if request.base or request.axes:
        raise StudyError([{"field": "preset", "reason": "give a preset, or base and axes"}])
    try:
        found = study_preset(request.preset)
    except KeyError:
        choices = ", ".join(p.name for p in STUDY_PRESETS)
        reason = f"no study preset {request.preset!r}; choose one of {choices}"
        raise StudyError([{"field": "preset", "reason": reason}]) from None
    resolved = StudyRequest.model_validate(found.study)
    updates: dict[str, Any] = {"preset": found.name}
    for name in ("seeds", "name"):
        if name in request.model_fields_set:
            updates[name] = getattr(request, name)
    return resolved.model_copy(update=updates)


def parse_study(body: Any) -> StudyRequest:
    """A request from a client's JSON body; raises StudyError naming each bad field."""
    try:
        return StudyRequest.model_validate(body)
    except ValidationError as error:
        errors: dict[str, list[str]] = {}
        for item in error.errors():
            loc = list(item.get("loc", ()))
            if len(loc) >= 2 and loc[0] == "axes":
                # An axis is named by its path, dots and all: `axes.model.activation[3]`.
                field = f"axes.{loc[1]}" + "".join(f"[{part}]" for part in loc[2:3])
            else:
                field = _spec_error(item)[0] or "body"
            reason = str(item.get("msg", "invalid")).removeprefix("Value error, ")
            errors.setdefault(field, []).append(reason)
        raise StudyError(
            [{"field": field, "reason": " or ".join(reasons)} for field, reasons in errors.items()]
        ) from None


def expand_study(request: StudyRequest) -> StudyPlan:
    """Validate a study request and expand it into its child specs.

    Raises StudyError naming each bad field: a path that is not a spec field,
    a value a path does not accept (`axes.model.activation[2]`), a grid over
    `MAX_CHILDREN`, a base that is not a valid spec.
    """
    request = resolve_preset(request)
    paths = list(request.axes)
    _check_shape(request, paths)
    base = {key: value for key, value in request.base.items() if key != "seed"}
    seed = _base_seed(request.base)
    _check_base(base, seed)
    _check_values(base, seed, request.axes)
    configs = [
        StudyConfig(index, config_label(values), values)
        for index, values in enumerate(
            dict(zip(paths, combination, strict=True))
            for combination in itertools.product(*request.axes.values())
        )
    ]
    name = request.name or base.get("name") or request.preset
    children = [
        _child(base, config, seed, number, request.seeds, name)
        for config in configs
        for number in range(request.seeds)
    ]
    stored = {
        "name": name,
        "preset": request.preset,
        "base": base,
        "axes": request.axes,
        "seeds": request.seeds,
        "seed": seed,
    }
    return StudyPlan(stored, configs, request.seeds, children)


def _check_shape(request: StudyRequest, paths: Sequence[str]) -> None:
    errors = [
        {"field": f"axes.{path}", "reason": reason}
        for path in paths
        if (reason := check_path(path)) is not None
    ]
    if pair := overlapping(paths):
        errors.append({"field": f"axes.{pair[1]}", "reason": f"overlaps the axis {pair[0]}"})
    for path, values in request.axes.items():
        keys = [repr(value) for value in values]
        if len(set(keys)) != len(keys):
            errors.append({"field": f"axes.{path}", "reason": "lists a value twice"})
    if errors:
        raise StudyError(errors)
    configs = math.prod(len(values) for values in request.axes.values())
    if configs > MAX_CHILDREN:
        sizes = " x ".join(str(len(values)) for values in request.axes.values())
        reason = f"{sizes} = {configs} configurations exceed the limit of {MAX_CHILDREN}"
        raise StudyError([{"field": "axes", "reason": reason}])
    if configs * request.seeds > MAX_CHILDREN:
        reason = (
            f"{configs} configurations x {request.seeds} seeds = {configs * request.seeds} "
            f"experiments exceed the limit of {MAX_CHILDREN}"
        )
        raise StudyError([{"field": "seeds", "reason": reason}])


def _base_seed(base: Mapping[str, Any]) -> int:
    seed = base.get("seed")
    if seed is None:
        return draw_seed()
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= Limits.SEED:
        raise StudyError(
            [{"field": "base.seed", "reason": f"must be an integer from 0 to {Limits.SEED}"}]
        )
    return seed


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a field, not a union tag like `list[int]`
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_.]*): (.+)$", re.DOTALL)


def _spec_error(item: Mapping[str, Any]) -> tuple[str, str]:
    """(field, reason) of one pydantic error of a spec, named as the API names them."""
    cause = (item.get("ctx") or {}).get("error")
    if isinstance(cause, SpecLimitError):
        return cause.field, cause.message
    field = ""
    for part in item.get("loc", ()):
        if isinstance(part, int):
            field += f"[{part}]"
        elif _NAME.fullmatch(part):
            field += f".{part}" if field else part
    reason = str(item.get("msg", "invalid")).removeprefix("Value error, ")
    # Validators spanning a section name their field first ("activation: ...").
    if match := _FIELD_PREFIX.match(reason):
        field = f"{field}.{match[1]}" if field else match[1]
        reason = match[2]
    return field, reason


def _spec_errors(error: ValidationError, prefix: str) -> list[dict[str, str]]:
    """One {"field", "reason"} per field of a spec's errors, fields under `prefix`."""
    merged: dict[str, list[str]] = {}
    for item in error.errors():
        field, reason = _spec_error(item)
        reasons = merged.setdefault(f"{prefix}.{field}" if field else prefix, [])
        if reason not in reasons:
            reasons.append(reason)
    return [{"field": field, "reason": " or ".join(reasons)} for field, reasons in merged.items()]


def _validate(spec: dict[str, Any], seed: int) -> ExperimentSpec:
    return ExperimentSpec.model_validate({**spec, "seed": seed})


def _check_base(base: dict[str, Any], seed: int) -> None:
    try:
        _validate(base, seed)
    except ValidationError as error:
        raise StudyError(_spec_errors(error, "base")) from None


def _check_values(base: dict[str, Any], seed: int, axes: Mapping[str, list[Any]]) -> None:
    """Each value with the base alone; an error names the value: `axes.<path>[i]`."""
    errors: list[dict[str, str]] = []
    for path, values in axes.items():
        for index, value in enumerate(values):
            spec = copy.deepcopy(base)
            set_path(spec, path, value)
            try:
                _validate(spec, seed)
            except ValidationError as error:
                for item in _spec_errors(error, "spec"):
                    errors.append(_value_error(path, index, item))
    if errors:
        raise StudyError(errors)


def _value_error(path: str, index: int, item: Mapping[str, str]) -> dict[str, str]:
    """A spec error caused by value `index` of axis `path`, named after that value."""
    field = item["field"].removeprefix("spec").removeprefix(".")
    if field == path or field.startswith((path + ".", path + "[")):
        return {"field": f"axes.{path}[{index}]{field[len(path) :]}", "reason": item["reason"]}
    # The value broke a limit spanning fields (a sample count below the batch size).
    return {"field": f"axes.{path}[{index}]", "reason": f"{field}: {item['reason']}"}


def child_name(name: str | None, label: str, number: int, seeds: int) -> str:
    """A child's name: the study's, its configuration's label, which seed of how many."""
    label = label if seeds == 1 else f"{label}, seed {number + 1}/{seeds}"
    return (f"{name}: {label}" if name else label)[: Limits.NAME_LENGTH]


def child_seed(seed: int, number: int) -> int:
    """The seed of a configuration's `number`th run: the same in every configuration."""
    return (seed + number) % (Limits.SEED + 1)


def _child(
    base: dict[str, Any],
    config: StudyConfig,
    seed: int,
    number: int,
    seeds: int,
    name: str | None,
) -> ExperimentSpec:
    spec = copy.deepcopy(base)
    for path, value in config.values.items():
        set_path(spec, path, value)
    spec["name"] = child_name(name, config.label, number, seeds)
    try:
        return _validate(spec, child_seed(seed, number))
    except ValidationError as error:
        # Each value passed with the base alone: this combination of values fails.
        reasons = "; ".join(f"{e['field']}: {e['reason']}" for e in _spec_errors(error, ""))
        reason = f"the configuration {config.label} is not a valid spec ({reasons.lstrip('.')})"
        raise StudyError([{"field": "axes", "reason": reason}]) from None
