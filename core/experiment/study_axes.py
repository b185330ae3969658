"""A study's axes: which spec field an axis varies (a dotted path), and what its values
and configurations are called in labels, tables and plots.

Example:
    >>> check_path("model.activation") is None
    True
    >>> config_label({"model.activation": "relu", "model.initializer": {"kind": "he_normal"}})
    'activation=relu, initializer=he_normal'
"""

from __future__ import annotations

import copy
import itertools
import types
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

from core.experiment.spec import ExperimentSpec

# Fields a study does not vary along an axis: seeds have their own count, and a
# child's name is made from its configuration.
RESERVED_PATHS = frozenset({"seed", "name"})


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


def set_path(spec: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` (dotted) in a spec dict, making the sections on the way."""
    *sections, leaf = path.split(".")
    node = spec
    for part in sections:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = copy.deepcopy(value)


def overlapping(paths: Sequence[str]) -> tuple[str, str] | None:
    """Two paths of which one lies inside the other, if any do."""
    for a, b in itertools.permutations(paths, 2):
        if b.startswith(a + "."):
            return a, b
    return None


def value_label(value: Any) -> str:
    """A short, readable form of an axis value: `relu`, `true`, `glorot_uniform(gain=2)`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, Mapping) and "class_name" in value:
        return _layer_label(value)
    if isinstance(value, Mapping) and value.get("kind") == "uploaded":
        return str((value.get("data") or {}).get("name") or value.get("id"))
    if isinstance(value, Mapping) and "kind" in value:
        rest = ", ".join(f"{k}={value_label(v)}" for k, v in value.items() if k != "kind")
        return f"{value['kind']}({rest})" if rest else str(value["kind"])
    if isinstance(value, list) and value and all(_is_layer(item) for item in value):
        return _layers_label(value)
    if isinstance(value, list):
        return "-".join(value_label(item) for item in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={value_label(v)}" for k, v in value.items())
    return str(value)


def _is_layer(value: Any) -> bool:
    return isinstance(value, Mapping) and "class_name" in value


def _layers_label(layers: Sequence[Mapping[str, Any]]) -> str:
    """A layer list by what it holds, in order of first appearance, with counts:
    `Conv2D(8) x 8, sigmoid x 8, GlobalAveragePooling2D`."""
    counts = Counter(_layer_label(layer) for layer in layers)
    return ", ".join(f"{label} x {n}" if n > 1 else label for label, n in counts.items())


def _layer_label(layer: Mapping[str, Any]) -> str:
    """One layer by its class and size (`LSTM(16)`, `Conv2D(8, relu)`); an Activation by
    its activation; a residual block by its layers."""
    config = layer.get("config") or {}
    name = str(layer["class_name"])
    if not isinstance(config, Mapping):
        return name
    if isinstance(config.get("layers"), list):
        return f"{name}({_layers_label(config['layers'])})"
    activation = config.get("activation")
    if name == "Activation" and activation:
        return str(activation)
    size = config.get("units", config.get("filters"))
    details = [str(d) for d in (size, activation) if d is not None and d not in ("linear", "tanh")]
    return f"{name}({', '.join(details)})" if details else name


def axis_names(paths: Sequence[str]) -> dict[str, str]:
    """Each path's last part (`model.activation` -> `activation`), unless two share it."""
    lasts = Counter(path.rsplit(".", 1)[-1] for path in paths)
    return {
        path: path.rsplit(".", 1)[-1] if lasts[path.rsplit(".", 1)[-1]] == 1 else path
        for path in paths
    }


def config_label(values: Mapping[str, Any]) -> str:
    """e.g. `activation=relu, initializer=he_normal`; `base` for a study without axes."""
    names = axis_names(list(values))
    return ", ".join(f"{names[path]}={value_label(v)}" for path, v in values.items()) or "base"
