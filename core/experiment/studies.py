"""Comparison studies: one request, a grid of experiments, one table.

A study is a `base` experiment spec, `axes` (a spec field path -> the values
to try) and `seeds` (runs per configuration). Its configurations are the
Cartesian product of the axes, in the order given; each configuration runs
`seeds` times with seeds `seed, seed + 1, ...`, the same for every
configuration, so configurations are compared on the same data and the same
initial draws. `{"preset": NAME}` names a ready study (see
`core.experiment.presets.STUDY_PRESETS`).

Everything here is pure: `expand_study` validates a request and returns the
child specs; `summarize` turns the children's summaries into one row per
configuration (mean and spread over seeds), `summary_csv` writes those rows.

Example:
    >>> plan = expand_study(StudyRequest.model_validate(
    ...     {"base": {"training": {"epochs": 5}},
    ...      "axes": {"model.activation": ["sigmoid", "relu"]}, "seeds": 2}))
    >>> [child.model.activation.value for child in plan.children]
    ['sigmoid', 'sigmoid', 'relu', 'relu']
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import math
import re
import statistics
import types
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.experiment.jobs import JobStatus
from core.experiment.spec import ExperimentSpec, Limits, SpecLimitError, draw_seed
from core.experiment.study_presets import STUDY_PRESETS, study_preset

MAX_CHILDREN = 64  # experiments in one study, seeds included
MAX_SEEDS = 16
MAX_AXES = 6
# Fields a study does not vary along an axis: seeds have their own count, and a
# child's name is made from its configuration.
RESERVED_PATHS = frozenset({"seed", "name"})

AxisValues = Annotated[list[Any], Field(min_length=1, max_length=MAX_CHILDREN)]


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
    axes: dict[str, AxisValues] = Field(
        default_factory=dict,
        max_length=MAX_AXES,
        description="spec field path -> values, e.g. {'model.activation': ['sigmoid', 'relu']}",
    )
    seeds: int = Field(1, ge=1, le=MAX_SEEDS, description="runs per configuration")


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


# --------------------------------------------------------------------------- paths


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds, if it holds one (unwrapping `X | None`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [m for m in map(_model_of, get_args(annotation)) if m is not None]
        return models[0] if len(models) == 1 else None
    return None


def check_path(path: str) -> str | None:
    """Why `path` is not a spec field an axis can vary, or None when it is one."""
    if path in RESERVED_PATHS:
        return f"{path!r} cannot be an axis (use `seeds` for seeds)"
    model: type[BaseModel] | None = ExperimentSpec
    walked: list[str] = []
    for part in path.split("."):
        if model is None:
            return f"{'.'.join(walked)} has no fields; {path!r} is not a spec field"
        field = model.model_fields.get(part)
        if field is None:
            where = ".".join(walked) or "the spec"
            choices = ", ".join(model.model_fields)
            return f"{where} has no field {part!r}; choose one of {choices}"
        walked.append(part)
        model = _model_of(field.annotation)
    return None


def _set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` (dotted) in a spec dict, making the sections on the way."""
    *sections, leaf = path.split(".")
    node = spec
    for part in sections:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = copy.deepcopy(value)


def _overlapping(paths: Sequence[str]) -> tuple[str, str] | None:
    for a, b in itertools.permutations(paths, 2):
        if b.startswith(a + "."):
            return a, b
    return None


# -------------------------------------------------------------------------- labels


def value_label(value: Any) -> str:
    """A short, readable form of an axis value: `relu`, `true`, `glorot_uniform(gain=2)`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping) and "kind" in value:
        rest = ", ".join(f"{k}={value_label(v)}" for k, v in value.items() if k != "kind")
        return f"{value['kind']}({rest})" if rest else str(value["kind"])
    if isinstance(value, list):
        return "-".join(value_label(item) for item in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={value_label(v)}" for k, v in value.items())
    return str(value)


def _axis_names(paths: Sequence[str]) -> dict[str, str]:
    """Each path's last part (`model.activation` -> `activation`), unless two share it."""
    lasts = Counter(path.rsplit(".", 1)[-1] for path in paths)
    return {
        path: path.rsplit(".", 1)[-1] if lasts[path.rsplit(".", 1)[-1]] == 1 else path
        for path in paths
    }


def config_label(values: Mapping[str, Any]) -> str:
    """e.g. `activation=relu, initializer=he_normal`; `base` for a study without axes."""
    names = _axis_names(list(values))
    return ", ".join(f"{names[path]}={value_label(v)}" for path, v in values.items()) or "base"


# ----------------------------------------------------------------------- expansion


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
    if pair := _overlapping(paths):
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
            _set_path(spec, path, value)
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
        _set_path(spec, path, value)
    spec["name"] = child_name(name, config.label, number, seeds)
    try:
        return _validate(spec, child_seed(seed, number))
    except ValidationError as error:
        # Each value passed with the base alone: this combination of values fails.
        reasons = "; ".join(f"{e['field']}: {e['reason']}" for e in _spec_errors(error, ""))
        reason = f"the configuration {config.label} is not a valid spec ({reasons.lstrip('.')})"
        raise StudyError([{"field": "axes", "reason": reason}]) from None


# ------------------------------------------------------------------------- summary


@dataclass(frozen=True, slots=True)
class ChildOutcome:
    """What a study needs of one finished child: its status and its record's summary."""

    id: str
    status: JobStatus | None  # None: the child's record is gone (deleted or expired)
    summary: Mapping[str, Any] | None = None


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean, sample S.D., min and max of the finite `values`, and how many there were."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None}
    return {
        "n": len(finite),
        "mean": statistics.fmean(finite),
        "std": statistics.stdev(finite) if len(finite) > 1 else None,
        "min": min(finite),
        "max": max(finite),
    }


def study_status(outcomes: Sequence[ChildOutcome]) -> JobStatus:
    """A finished study's status: cancelled if any child was, failed if any failed or
    vanished, succeeded when every child succeeded."""
    statuses = {outcome.status for outcome in outcomes}
    if JobStatus.CANCELLED in statuses:
        return JobStatus.CANCELLED
    if JobStatus.FAILED in statuses or None in statuses:
        return JobStatus.FAILED
    return JobStatus.SUCCEEDED


def summarize(
    configs: Sequence[Mapping[str, Any]], seeds: int, outcomes: Sequence[ChildOutcome]
) -> dict[str, Any]:
    """One row per configuration: axis values, final loss and accuracy over seeds, verdicts.

    `configs` are `StudyConfig.to_json_dict()`s; `outcomes` are in child order.
    """
    rows = []
    for config in configs:
        index = int(config["index"])
        mine = outcomes[index * seeds : (index + 1) * seeds]
        succeeded = [o for o in mine if o.status is JobStatus.SUCCEEDED and o.summary]
        verdicts: Counter[str] = Counter()
        for outcome in succeeded:
            verdicts.update(str(v) for v in (outcome.summary or {}).get("verdicts", []))
        counts = Counter("missing" if o.status is None else o.status.value for o in mine)
        rows.append(
            {
                "config": index,
                "label": config["label"],
                "values": config["values"],
                "seeds": len(mine),
                "succeeded": counts["succeeded"],
                "failed": counts["failed"] + counts["missing"],
                "cancelled": counts["cancelled"],
                "loss": spread([_number(o.summary, "loss") for o in succeeded]),
                "accuracy": spread([_number(o.summary, "accuracy") for o in succeeded]),
                "diverged": sum(bool((o.summary or {}).get("diverged")) for o in succeeded),
                "verdicts": dict(sorted(verdicts.items())),
                "children": [o.id for o in mine],
            }
        )
    return {"rows": rows}


def _number(summary: Mapping[str, Any] | None, name: str) -> float:
    value = (summary or {}).get(name)
    return float(value) if isinstance(value, int | float) else math.nan


_STATS = ("mean", "std", "min", "max")


def summary_csv(summary: Mapping[str, Any], axes: Sequence[str]) -> str:
    """The summary's rows as CSV: one line per configuration, one column per axis."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    metrics = [f"{metric}_{stat}" for metric in ("loss", "accuracy") for stat in _STATS]
    counts = ["seeds", "succeeded", "failed", "cancelled"]
    writer.writerow(["config", "label", *axes, *counts, *metrics, "diverged", "verdicts"])
    for row in summary["rows"]:
        values = [_csv_value(row["values"].get(path)) for path in axes]
        numbers = [
            _csv_value(row[metric][stat]) for metric in ("loss", "accuracy") for stat in _STATS
        ]
        verdicts = ";".join(f"{name}:{count}" for name, count in row["verdicts"].items())
        tally = [row[name] for name in counts]
        writer.writerow(
            [row["config"], row["label"], *values, *tally, *numbers, row["diverged"], verdicts]
        )
    return buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool | int | str):
        return value_label(value) if isinstance(value, bool) else str(value)
    return value_label(value)
